"""``/v1/capabilities`` with the original's request format, on a real node."""

from __future__ import annotations

from tests.helpers import MoteyNode, wait_for


def put(node: MoteyNode, body, method: str = "PUT", content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else __import__("json").dumps(body).encode()
    return node.request(
        method, "/v1/capabilities", data=data, headers={"Content-Type": content_type}
    )


def names(node: MoteyNode, source: str | None = None) -> set[str]:
    return {
        c["capability"]
        for c in node.get("/v1/capabilities").json()
        if source is None or c["source"] == source
    }


def test_put_get_delete_with_201_and_304(node: MoteyNode) -> None:
    entry = [{"capability": "zigbee", "capability_type": "hardware"}]
    first = put(node, entry)
    assert first.status_code == 201
    assert "zigbee" in names(node, "rest")
    again = put(node, entry)
    assert again.status_code == 304 and again.content == b""
    removed = put(node, entry, method="DELETE")
    assert removed.status_code == 201
    assert "zigbee" not in names(node)
    assert put(node, entry, method="DELETE").status_code == 304


def test_engine_and_static_capabilities_survive_rest_delete(node_factory) -> None:
    node = node_factory(capabilities=["gpu", "arch_label=arm64"])
    caps = node.get("/v1/capabilities").json()
    by_name = {(c["capability"], c["source"]) for c in caps}
    assert ("docker", "engine") in by_name and ("gpu", "config") in by_name
    assert any(c["capability"] == "arch_label" and c.get("value") == "arm64" for c in caps)
    r = put(node, [{"capability": "gpu", "capability_type": "x"}], method="DELETE")
    assert r.status_code == 304  # REST never added gpu, so REST cannot remove it
    assert "gpu" in names(node, "config")


def test_invalid_capability_input_is_400_and_changes_nothing(node: MoteyNode) -> None:
    before = node.get("/v1/capabilities").json()
    cases = [
        (b"not json", "application/json"),
        (b'{"capability": "a", "capability_type": "b"}', "application/json"),
        (b'[{"capability": "a"}]', "application/json"),
        (b'[{"capability": 5, "capability_type": "b"}]', "application/json"),
        (b'[{"capability": "two  spaces", "capability_type": "b"}]', "application/json"),
        (b'[{"capability": " leading", "capability_type": "b"}]', "application/json"),
        (b'[{"capability": "a", "capability_type": "b"}]', "text/plain"),
    ]
    for body, content_type in cases:
        r = put(node, body, content_type=content_type)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["message"]
        d = put(node, body, method="DELETE", content_type=content_type)
        assert d.status_code == 400
    assert node.get("/v1/capabilities").json() == before


def test_capability_decides_whether_an_image_can_run(node: MoteyNode) -> None:
    text = (
        "service_name: needs-zigbee\nimages:\n  - name: motey-test/busybox:latest\n"
        '    parameters: {command: "sleep 300"}\n    capabilities: [zigbee]\n'
    )
    waiting = node.post_yaml(text).json()["id"]
    service = node.wait_service_state(waiting, "INSTANTIATING")
    wait_for(
        lambda: node.service(waiting)["images"][0]["awaiting_placement"],
        what="the image to wait for a node with zigbee",
    )
    assert "no node has zigbee" in node.service(waiting)["state_message"]

    put(node, [{"capability": "zigbee", "capability_type": "hardware"}])
    # the waiting image is placed as soon as the node qualifies; a new one runs at once
    service = node.wait_service_state(waiting, "RUNNING")
    assert service["images"][0]["node"] == node.ip
    assert service["images"][0]["awaiting_placement"] is False
    ok = node.post_yaml(text.replace("needs-zigbee", "has-zigbee")).json()["id"]
    assert node.wait_service_state(ok, "RUNNING")["images"][0]["node"] == node.ip


def test_a_name_with_a_space_works_over_rest_and_in_a_blueprint(node: MoteyNode) -> None:
    """The original took "test capability" over REST; it is accepted and placed on."""
    entry = [{"capability": "test capability", "capability_type": "person"}]
    added = node.request("PUT", "/v1/capabilities", json=entry)
    assert added.status_code == 201, added.text
    assert "test capability" in names(node, "rest")
    text = (
        "service_name: spaced\nimages:\n  - name: motey-test/busybox:latest\n"
        '    parameters: {command: "sleep 300"}\n    capabilities: ["test capability"]\n'
    )
    created = node.post_yaml(text)
    assert created.status_code == 201, created.text
    assert node.wait_service_state(created.json()["id"], "RUNNING")["images"][0]["node"] == node.ip
    refused = node.post_yaml(text.replace('"test capability"', '"test  capability"'))
    assert refused.status_code == 400 and "capabilities[0]" in refused.json()["message"]
    assert node.request("DELETE", "/v1/capabilities", json=entry).status_code == 201
    assert "test capability" not in names(node)
    doubled = [{"capability": "test  capability", "capability_type": "person"}]
    refused = node.request("PUT", "/v1/capabilities", json=doubled)
    assert refused.status_code == 400
    assert "'test  capability' is not a capability name" in refused.json()["message"]
