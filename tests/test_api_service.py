"""Service lifecycle through the real REST server of a real node on the real Docker engine."""

from __future__ import annotations

import time

import docker
import pytest
import requests

from tests.helpers import TEST_IMAGE, MoteyNode, unique_name, wait_for


def blueprint(name: str, *images: str) -> str:
    body = "".join(images) or (
        f'  - name: {TEST_IMAGE}\n    engine: docker\n    parameters:\n      command: "sleep 300"\n'
    )
    return f"service_name: {name}\nimages:\n{body}"


def image_entry(command: str = "sleep 300", extra: str = "") -> str:
    return (
        f"  - name: {TEST_IMAGE}\n    engine: docker\n    parameters:\n"
        f'      command: "{command}"\n{extra}'
    )


def containers_of(client: docker.DockerClient, service_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"motey.service_id={service_id}"})


def test_post_deploys_and_reaches_running(node: MoteyNode, docker_client) -> None:
    name = unique_name()
    r = node.post_yaml(blueprint(name, image_entry(), image_entry("sleep 301")))
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["Location"] == f"/v1/service/{body['id']}"
    assert body["service_name"] == name and body["name"] == name
    assert body["state"] in ("INITIAL", "INSTANTIATING", "RUNNING")

    service = node.wait_service_state(body["id"], "RUNNING")
    states = [h["state"] for h in service["history"]]
    assert states[:3] == ["INITIAL", "INSTANTIATING", "RUNNING"]
    assert len(service["images"]) == 2
    for image in service["images"]:
        assert image["state"] == "RUNNING"
        assert image["node"] == node.ip
        assert image["engine"] == "docker"

    containers = containers_of(docker_client, body["id"])
    assert len(containers) == 2
    for c in containers:
        assert c.status == "running"
        assert c.labels["motey.node_id"] == node.node_id
        assert c.labels["motey.image_id"] in {i["id"] for i in service["images"]}

    listed = node.get("/v1/service").json()
    assert [s["id"] for s in listed] == [body["id"]]
    assert listed[0]["state"] == "RUNNING"


def test_empty_list_is_an_array(node: MoteyNode) -> None:
    r = node.get("/v1/service")
    assert r.status_code == 200
    assert r.json() == []


def test_delete_terminates_and_removes_containers(node: MoteyNode, docker_client) -> None:
    sid = node.post_yaml(blueprint(unique_name())).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    r = node.delete(f"/v1/service/{sid}")
    assert r.status_code == 202
    assert r.json()["state"] in ("STOPPING", "TERMINATED")
    service = node.wait_service_state(sid, "TERMINATED")
    assert [i["state"] for i in service["images"]] == ["TERMINATED"]
    assert "STOPPING" in [h["state"] for h in service["history"]]
    assert containers_of(docker_client, sid) == []
    # Deleting again is harmless and says the same.
    again = node.delete(f"/v1/service/{sid}")
    assert again.status_code == 202 and again.json()["state"] == "TERMINATED"


def test_delete_with_yaml_body_terminates_by_name(node: MoteyNode, docker_client) -> None:
    name = unique_name()
    text = blueprint(name)
    sid = node.post_yaml(text).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    r = node.delete(
        "/v1/service", data=text.encode(), headers={"Content-Type": "application/x-yaml"}
    )
    assert r.status_code == 202, r.text
    assert [s["id"] for s in r.json()] == [sid]
    node.wait_service_state(sid, "TERMINATED")
    assert containers_of(docker_client, sid) == []
    missing = node.delete(
        "/v1/service",
        data=blueprint(unique_name()).encode(),
        headers={"Content-Type": "application/x-yaml"},
    )
    assert missing.status_code == 404
    assert missing.json()["field"] == "service_name"


def test_unknown_service_is_404(node: MoteyNode) -> None:
    assert node.get("/v1/service/does-not-exist").status_code == 404
    r = node.delete("/v1/service/does-not-exist")
    assert r.status_code == 404
    assert "does-not-exist" in r.json()["message"]


def test_container_exit_and_removal_behind_motey_are_seen(node: MoteyNode, docker_client) -> None:
    sid = node.post_yaml(blueprint(unique_name())).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    (container,) = containers_of(docker_client, sid)
    container.kill()  # exits with 137 behind Motey's back
    service = node.wait_service_state(sid, "ERROR")
    assert "exited with code 137" in service["images"][0]["state_message"]
    assert "exited with code 137" in service["state_message"]

    sid2 = node.post_yaml(blueprint(unique_name())).json()["id"]
    node.wait_service_state(sid2, "RUNNING")
    (container2,) = containers_of(docker_client, sid2)
    container2.remove(force=True)
    service2 = node.wait_service_state(sid2, "ERROR")
    # Seen either while Docker removes it or once it is gone.
    assert "outside Motey" in service2["images"][0]["state_message"]


def test_container_that_finishes_cleanly_terminates_service(node: MoteyNode) -> None:
    sid = node.post_yaml(blueprint(unique_name(), image_entry("sleep 1"))).json()["id"]
    service = node.wait_service_state(sid, "TERMINATED")
    assert service["images"][0]["state"] == "TERMINATED"


@pytest.mark.parametrize(("content_type"), ["application/x-yaml", "application/yaml", "text/yaml"])
def test_yaml_content_types_accepted(node: MoteyNode, content_type: str) -> None:
    r = node.post_yaml(blueprint(unique_name()), content_type=content_type)
    assert r.status_code == 201, r.text
    node.wait_service_state(r.json()["id"], "RUNNING")


def _assert_rejected(node: MoteyNode, docker_client, response, status: int, field: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["field"] == field, body
    assert body["message"]
    assert node.get("/v1/service").json() == []
    assert (
        docker_client.containers.list(all=True, filters={"label": f"motey.node_id={node.node_id}"})
        == []
    )
    return body


def test_wrong_content_type_is_415(node: MoteyNode, docker_client) -> None:
    r = node.post_yaml(blueprint(unique_name()), content_type="application/json")
    body = _assert_rejected(node, docker_client, r, 415, "Content-Type")
    assert "application/x-yaml" in body["message"]


def test_invalid_yaml_is_400_with_position(node: MoteyNode, docker_client) -> None:
    r = node.post_yaml("service_name: x\nimages: [\n  - {name: \n")
    body = _assert_rejected(node, docker_client, r, 400, "(document)")
    assert "line" in body["message"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("images:\n  - name: busybox\n", "service_name"),
        ("service_name: x\n", "images"),
        ("service_name: x\nimages: []\n", "images"),
        ("service_name: x\nimages:\n  - engine: docker\n", "images[0].name"),
        ("service_name: x\nimages:\n  - name: 42\n", "images[0].name"),
        (
            "service_name: x\nimages:\n  - name: a\n    capabilities: zigbee\n",
            "images[0].capabilities",
        ),
        ("service_name: x\nimages:\n  - name: a\n    bogus: 1\n", "images[0]"),
        ("- just\n- a list\n", "(document)"),
    ],
)
def test_schema_errors_name_the_field(
    node: MoteyNode, docker_client, text: str, field: str
) -> None:
    _assert_rejected(node, docker_client, node.post_yaml(text), 400, field)


def test_unknown_engine_is_422(node: MoteyNode, docker_client) -> None:
    text = f"service_name: x\nimages:\n  - name: {TEST_IMAGE}\n  - name: a\n    engine: rkt\n"
    body = _assert_rejected(node, docker_client, node.post_yaml(text), 422, "images[1].engine")
    assert "rkt" in body["message"] and "docker" in body["message"]


def test_unknown_docker_parameter_is_400(node: MoteyNode, docker_client) -> None:
    text = f"service_name: x\nimages:\n  - name: {TEST_IMAGE}\n    parameters: {{colour: red}}\n"
    _assert_rejected(node, docker_client, node.post_yaml(text), 400, "images[0].parameters.colour")


def test_missing_image_that_cannot_be_pulled_is_422(node: MoteyNode, docker_client) -> None:
    # A registry on a closed loopback port: the pull is really attempted and really fails.
    text = (
        f"service_name: x\nimages:\n  - name: {TEST_IMAGE}\n"
        "  - name: 127.0.0.1:9/motey/absent:1.0\n"
    )
    body = _assert_rejected(node, docker_client, node.post_yaml(text), 422, "images[1].name")
    assert "cannot be pulled" in body["message"]


def test_failure_midway_removes_what_started(node: MoteyNode, docker_client) -> None:
    # The second image's command does not exist: Docker creates it but cannot start it.
    text = blueprint(unique_name(), image_entry(), image_entry("/no/such/program"))
    sid = node.post_yaml(text).json()["id"]
    service = node.wait_service_state(sid, "ERROR")
    assert "/no/such/program" in service["state_message"] or "start" in service["state_message"]
    first, second = service["images"]
    assert first["state"] == "TERMINATED"
    assert second["state"] == "ERROR"
    wait_for(lambda: containers_of(docker_client, sid) == [], what="rollback to remove containers")


def test_oversized_body_is_refused(node: MoteyNode) -> None:
    # The node answers 413 from the Content-Length alone and closes the connection
    # without reading the body. Over HTTPS a client still sending then sees the TLS
    # connection end (an SSL EOF) instead of the 413, depending on timing: both refuse.
    try:
        r = node.post_yaml("service_name: x\n" + "#" * (2 * 1024 * 1024))
    except requests.exceptions.ConnectionError:  # SSLError is one
        pass
    else:
        assert r.status_code == 413
    assert node.get("/v1/service").json() == []


def test_api_index_openapi_and_unknown_path(node: MoteyNode) -> None:
    index = node.get("/v1").json()
    assert index["links"]["services"] == "/v1/service"
    spec = node.get("/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/service" in spec["paths"]
    missing = node.get("/v1/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound"
    wrong = node.delete("/v1/nodes")
    assert wrong.status_code == 405


def test_nodestatus_answers_at_once(node: MoteyNode) -> None:
    started = time.monotonic()
    r = node.get("/v1/nodestatus")
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    body = r.json()
    assert 0 <= body["cpu"]["percent"] <= 100
    assert body["memory"]["total"] > 0 and body["disk"]["total"] > 0
    assert body["lifecycle"] == "OPERATE" and body["id"] == node.node_id
    # Generous bound: the point is "no multi-second sampling inside the request".
    assert elapsed < 1.0, elapsed


def test_nodes_lists_this_node(node: MoteyNode) -> None:
    nodes = node.get("/v1/nodes").json()
    assert isinstance(nodes, list) and nodes[0]["self"] is True
    me = nodes[0]
    assert me["ip"] == node.ip and me["id"] == node.node_id and me["name"] == node.name
    assert me["state"] == "REACHABLE" and me["lifecycle"] == "OPERATE"
    assert isinstance(me["load"], float) and me["load"] >= 0


def test_cors_headers_for_other_origins(node: MoteyNode) -> None:
    r = node.get("/v1/service", headers={"Origin": "http://panel.example"})
    assert r.headers.get("Access-Control-Allow-Origin") in ("*", "http://panel.example")
    pre = node.get("/v1/service")  # no Origin, no CORS header needed
    assert pre.status_code == 200


def test_cors_can_be_disabled(node_factory) -> None:
    closed = node_factory(extra={"WEBSERVER": {"cors_origins": ""}})
    r = closed.get("/v1/service", headers={"Origin": "http://panel.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_node_outside_operate_refuses_blueprints(node: MoteyNode) -> None:
    r = node.put_json("/v1/node", {"lifecycle": "RECOVER", "reason": "maintenance"})
    assert r.status_code == 200 and r.json()["lifecycle"] == "RECOVER"
    refused = node.post_yaml(blueprint(unique_name()))
    assert refused.status_code == 503
    assert "RECOVER" in refused.json()["message"] and "maintenance" in refused.json()["message"]
    assert node.get("/v1/service").json() == []
    bad = node.put_json("/v1/node", {"lifecycle": "SLEEPING"})
    assert bad.status_code == 400 and bad.json()["field"] == "lifecycle"
    assert node.put_json("/v1/node", {"lifecycle": "OPERATE"}).status_code == 200
    assert node.post_yaml(blueprint(unique_name())).status_code == 201


def test_web_client_served_but_not_the_source_tree(node: MoteyNode) -> None:
    index = node.get("/")
    assert index.status_code == 200 and "<html" in index.text.lower()
    assert node.get("/vendor/vue.global.prod.js").status_code == 200
    for private in ("/package.json", "/node_modules/.package-lock.json", "/tests/drive.mjs"):
        assert node.get(private).status_code == 404, private
