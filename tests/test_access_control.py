"""Tokens and roles on real nodes: 401/403/429, the token commands, masking, audit, open mode.

Tokens are made with the real ``motey token`` command against the node's config while
the node runs; the node must see them (and their revocation) without a restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest

from motey.config import default_config_path, load_config
from tests.helpers import TEST_IMAGE, Mosquitto, MoteyNode, unique_name, wait_for

BLUEPRINT = """\
service_name: {name}
images:
  - name: {image}
    engine: docker
    parameters:
      command: "sleep 300"
      environment: {{DB_PASSWORD: hunter2, MODE: line-3}}
{extra}"""

# One request of each endpoint class, with the weakest role that may make it.
CALLS: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", "/v1/service", {}, "viewer"),
    ("GET", "/v1/nodes", {}, "viewer"),
    ("GET", "/v1/node", {}, "viewer"),
    ("GET", "/v1/nodestatus", {}, "viewer"),
    ("GET", "/v1/capabilities", {}, "viewer"),
    (
        "POST",
        "/v1/service",
        {"data": b"service_name: [", "headers": {"Content-Type": "application/x-yaml"}},
        "operator",
    ),
    ("DELETE", "/v1/service/no-such-service", {}, "operator"),
    (
        "PUT",
        "/v1/capabilities",
        {"json": [{"capability": "x1", "capability_type": "t"}]},
        "operator",
    ),
    (
        "DELETE",
        "/v1/capabilities",
        {"json": [{"capability": "x1", "capability_type": "t"}]},
        "operator",
    ),
    ("PUT", "/v1/node", {"json": {"lifecycle": "OPERATE", "reason": "test"}}, "admin"),
]
ROLES = ("viewer", "operator", "admin")


def audit_lines(node: MoteyNode) -> list[dict[str, Any]]:
    path = node.dir / "log" / "audit.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_no_token_or_a_bad_one_is_401_json_and_public_parts_stay_public(node: MoteyNode) -> None:
    for n, (method, path, kw, _role) in enumerate(CALLS):
        # A wrong token counts towards the failure limit (10 a minute); no token does not.
        for token in (None, "", "motey_wrong") if n % 2 else (None, ""):
            r = node.request(method, path, token=token, **kw)
            assert r.status_code == 401, (method, path, token, r.text)
            assert r.json()["error"] == "Unauthorized"
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # The same answer for a revoked token as for one that never existed.
    token = node.create_token("short-lived", "viewer")
    assert node.get("/v1/node", token=token).status_code == 200
    assert node.cli("token", "revoke", "short-lived").returncode == 0
    gone = node.get("/v1/node", token=token)
    never = node.get("/v1/node", token="motey_never-issued")
    assert (gone.status_code, gone.json()) == (never.status_code, never.json())
    # The page, its assets and the API description need no token.
    for path in ("/", "/js/app.js", "/vendor/bootstrap.min.css", "/v1/openapi.json"):
        assert node.get(path, token=None).status_code == 200, path


def test_each_role_may_what_its_role_may_and_gets_403_json_otherwise(node: MoteyNode) -> None:
    tokens = {
        "viewer": node.create_token("v", "viewer"),
        "operator": node.create_token("o", "operator"),
        "admin": node.create_token("a", "admin"),
    }
    for method, path, kw, needed in CALLS:
        for role, token in tokens.items():
            r = node.request(method, path, token=token, **kw)
            if ROLES.index(role) < ROLES.index(needed):
                assert r.status_code == 403, (role, method, path, r.text)
                assert r.json()["error"] == "Forbidden"
                assert needed in r.json()["message"]
            else:
                assert r.status_code not in (401, 403, 429), (role, method, path, r.text)
    links = node.get("/v1", token=tokens["viewer"]).json()["links"]
    assert (links["whoami"], links["tokens"]) == ("/v1/whoami", "/v1/tokens")
    who = node.get("/v1/whoami", token=tokens["operator"]).json()
    assert who == {"name": "o", "role": "operator", "source": "node", "mode": "secure"}
    # The cell's admin token (from `motey cell init`) works on this node too.
    cell = node.get("/v1/whoami").json()
    assert (cell["role"], cell["source"]) == ("admin", "cell")


def test_token_commands_against_a_running_node(node: MoteyNode) -> None:
    created = node.cli("token", "create", "--name", "line-3-dashboard", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("motey_") and "\n" not in token
    assert "shown only this once" in created.stderr
    assert node.get("/v1/service", token=token).status_code == 200
    stored = (node.dir / "db" / "tokens.json").read_text()
    assert token not in stored, "only the hash is stored"
    assert oct((node.dir / "db" / "tokens.json").stat().st_mode & 0o777) == "0o600"

    listed = node.cli("token", "list")
    assert listed.returncode == 0
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert ["line-3-dashboard", "viewer", "node"] in [row[:3] for row in rows]
    assert ["admin", "admin", "cell"] in [row[:3] for row in rows]
    assert token not in listed.stdout

    again = node.cli("token", "create", "--name", "line-3-dashboard", "--role", "admin")
    assert again.returncode == 1 and "exists already" in again.stderr
    bad_role = node.cli("token", "create", "--name", "x", "--role", "root")
    assert bad_role.returncode == 2
    bad_name = node.cli("token", "create", "--name", "../x", "--role", "viewer")
    assert bad_name.returncode == 1

    revoked = node.cli("token", "revoke", "line-3-dashboard")
    assert revoked.returncode == 0, revoked.stderr
    assert node.get("/v1/service", token=token).status_code == 401
    assert node.cli("token", "revoke", "line-3-dashboard").returncode == 1
    cell_token = node.cli("token", "revoke", "admin")
    assert cell_token.returncode == 1 and "cell token" in cell_token.stderr
    assert node.get("/v1/service").status_code == 200, "the cell admin token still works"
    lines = [(e["who"].split(":")[0], e["what"]) for e in audit_lines(node)]
    assert ("cli", "token create line-3-dashboard") in lines
    assert ("cli", "token revoke line-3-dashboard") in lines


def test_failed_attempts_are_rate_limited_per_address(node: MoteyNode) -> None:
    for _ in range(10):
        assert node.get("/v1/node", token="motey_guess").status_code == 401
    limited = node.get("/v1/node", token="motey_guess")
    assert limited.status_code == 429
    assert limited.json()["error"] == "TooManyRequests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # A good token from the same address still passes (the brake refuses guesses, not
    # holders); a request without one waits like a guess.
    assert node.get("/v1/node").status_code == 200
    assert node.get("/v1/node", token=None).status_code == 429
    assert node.get("/v1/node", token="motey_guess").status_code == 429
    # The page and the API description stay reachable.
    assert node.get("/v1/openapi.json", token=None).status_code == 200


def test_viewer_sees_environment_values_masked(
    node: MoteyNode, docker_client: docker.DockerClient
) -> None:
    name = unique_name("env")
    created = node.post_yaml(BLUEPRINT.format(name=name, image=TEST_IMAGE, extra=""))
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert created.json()["images"][0]["parameters"]["environment"]["DB_PASSWORD"] == "hunter2"
    viewer = node.create_token("env-viewer", "viewer")
    operator = node.create_token("env-operator", "operator")
    one = node.get(f"/v1/service/{sid}", token=viewer).json()
    listed = [s for s in node.get("/v1/service", token=viewer).json() if s["id"] == sid][0]
    for body in (one, listed):
        assert body["images"][0]["parameters"]["environment"] == {
            "DB_PASSWORD": "***",
            "MODE": "***",
        }
        assert body["images"][0]["parameters"]["command"] == "sleep 300"
        assert "hunter2" not in json.dumps(body)
    seen = node.get(f"/v1/service/{sid}", token=operator).json()
    assert seen["images"][0]["parameters"]["environment"]["DB_PASSWORD"] == "hunter2"
    # Masking is for the answer only: the container has the real value.
    node.wait_service_state(sid, "RUNNING")
    (container,) = docker_client.containers.list(filters={"label": f"motey.service_id={sid}"})
    assert "DB_PASSWORD=hunter2" in container.attrs["Config"]["Env"]


def test_every_change_is_audited_with_who_what_and_result(node: MoteyNode) -> None:
    viewer = node.create_token("auditor", "viewer")
    cap = [{"capability": "plc", "capability_type": "hardware"}]
    assert node.put_json("/v1/capabilities", cap).status_code == 201
    assert node.put_json("/v1/capabilities", cap, token=viewer).status_code == 403
    assert node.put_json("/v1/capabilities", cap, token="motey_nope").status_code == 401
    assert node.get("/v1/service").status_code == 200  # reads are not audited
    name = unique_name("audit")
    created = node.post_yaml(BLUEPRINT.format(name=name, image=TEST_IMAGE, extra=""))
    assert created.status_code == 201
    sid = created.json()["id"]
    assert node.delete(f"/v1/service/{sid}").status_code == 202
    entries = [
        e for e in audit_lines(node) if e["what"].startswith(("PUT", "POST", "DELETE", "GET"))
    ]
    summary = [(e["who"], e["what"], e["result"]) for e in entries]
    assert summary == [
        ("admin", "PUT /v1/capabilities", 201),
        ("auditor", "PUT /v1/capabilities", 403),
        ("(no valid token)", "PUT /v1/capabilities", 401),
        ("admin", "POST /v1/service", 201),
        ("admin", f"DELETE /v1/service/{sid}", 202),
    ]
    assert entries[3]["location"] == f"/v1/service/{sid}"
    for entry in entries:
        assert entry["from"] == "127.0.0.1" or entry["from"].startswith("127.")
        assert entry["at"].endswith("+00:00")
    node.wait_service_state(sid, "TERMINATED")


def test_peer_deploy_and_terminate_are_audited_with_the_peer_identity(
    node_factory: Any, mosquitto: Mosquitto
) -> None:
    broker = (mosquitto.ip, mosquitto.port)
    owner = node_factory(name=unique_name("owner"), mqtt=broker)
    runner = node_factory(name=unique_name("runner"), mqtt=broker, capabilities=["lidar"])
    wait_for(
        lambda: runner.ip in {n["ip"] for n in owner.get("/v1/nodes").json()},
        what="owner sees runner",
    )
    created = owner.post_yaml(
        BLUEPRINT.format(
            name=unique_name("peer"), image=TEST_IMAGE, extra="    capabilities: [lidar]\n"
        )
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    service = owner.wait_service_state(sid, "RUNNING")
    image_id = service["images"][0]["id"]
    assert service["images"][0]["node"] == runner.ip
    assert owner.delete(f"/v1/service/{sid}").status_code == 202
    owner.wait_service_state(sid, "TERMINATED")

    def peer_lines() -> list[tuple[str, str, str]]:
        return [
            (e["who"], e["what"], e["result"])
            for e in audit_lines(runner)
            if e["what"].startswith("peer") and e.get("image") == image_id
        ]

    wait_for(lambda: len(peer_lines()) >= 2, what="runner audited deploy and terminate")
    assert (owner.name, "peer deploy image request", "ok") in peer_lines()
    assert (owner.name, "peer terminate image request", "ok") in peer_lines()
    origins = {e["from"] for e in audit_lines(runner) if e["what"].startswith("peer")}
    # The connection's source address (the client does not bind to [NODE] ip).
    assert origins and all(o.startswith("127.") for o in origins), origins


def test_open_mode_asks_for_no_token(node_factory: Any) -> None:
    node: MoteyNode = node_factory(extra={"SECURITY": {"mode": "open"}})
    assert node.get("/v1/service", token=None).status_code == 200
    cap = [{"capability": "plc", "capability_type": "hardware"}]
    assert node.put_json("/v1/capabilities", cap, token=None).status_code == 201
    assert node.get("/v1/whoami", token=None).json()["mode"] == "open"
    (line,) = audit_lines(node)
    assert (line["who"], line["what"], line["result"]) == ("anonymous", "PUT /v1/capabilities", 201)
    made = node.cli("token", "create", "--name", "later", "--role", "viewer")
    assert made.returncode == 0 and "mode = open" in made.stderr


def test_cors_is_off_by_default(node_factory: Any, tmp_path: Path) -> None:
    assert load_config(default_config_path(), environ={})["WEBSERVER"]["cors_origins"] == []
    node: MoteyNode = node_factory(extra={"WEBSERVER": {"cors_origins": ""}})
    preflight = node.request(
        "OPTIONS",
        "/v1/service",
        token=None,
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8080"])
def test_a_listed_origin_may_send_the_authorization_header(node_factory: Any, origin: str) -> None:
    node: MoteyNode = node_factory(extra={"WEBSERVER": {"cors_origins": origin}})
    preflight = node.request(
        "OPTIONS",
        "/v1/service",
        token=None,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()


def test_admin_manages_tokens_over_rest(node: MoteyNode) -> None:
    operator = node.create_token("ops", "operator")
    assert node.get("/v1/tokens", token=operator).status_code == 403
    assert (
        node.post_json("/v1/tokens", {"name": "x", "role": "admin"}, token=operator).status_code
        == 403
    )

    created = node.post_json("/v1/tokens", {"name": "hmi-7", "role": "viewer"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["role"]) == ("hmi-7", "viewer")
    assert created.headers["Location"] == "/v1/tokens/hmi-7"
    token = body["token"]
    assert node.get("/v1/whoami", token=token).json()["name"] == "hmi-7"

    listed = node.get("/v1/tokens").json()
    assert {(t["name"], t["role"], t["source"]) for t in listed} >= {
        ("admin", "admin", "cell"),
        ("ops", "operator", "node"),
        ("hmi-7", "viewer", "node"),
    }
    assert token not in json.dumps(listed) and "sha256" not in json.dumps(listed)
    assert node.cli("token", "list").stdout.count("hmi-7") == 1, "the CLI sees the same file"

    for bad, status in (
        ({"name": "hmi-7", "role": "viewer"}, 409),
        ({"name": "../etc", "role": "viewer"}, 400),
        ({"name": "y", "role": "root"}, 400),
        ([], 400),
    ):
        r = node.post_json("/v1/tokens", bad)
        assert r.status_code == status, (bad, r.text)
    assert node.request("POST", "/v1/tokens", data="x").status_code == 415

    assert node.delete("/v1/tokens/hmi-7").status_code == 200
    assert node.get("/v1/whoami", token=token).status_code == 401
    assert node.delete("/v1/tokens/hmi-7").status_code == 404
    assert node.delete("/v1/tokens/admin").status_code == 409
    # The plain token is in no audit line; the changes are.
    text = (node.dir / "log" / "audit.log").read_text()
    assert token not in text
    assert '"what": "POST /v1/tokens"' in text and '"what": "DELETE /v1/tokens/hmi-7"' in text


def test_an_unauthenticated_caller_changes_nothing(node: MoteyNode) -> None:
    """The issue's attack: without a token, no deploy, no capability, no RECOVER."""
    blueprint = BLUEPRINT.format(name=unique_name("attack"), image=TEST_IMAGE, extra="")
    assert node.post_yaml(blueprint, token=None).status_code == 401
    cap = [{"capability": "zigbee", "capability_type": "hardware"}]
    assert node.put_json("/v1/capabilities", cap, token=None).status_code == 401
    recover = {"lifecycle": "RECOVER", "reason": "attack"}
    assert node.put_json("/v1/node", recover, token=None).status_code == 401
    viewer = node.create_token("curious", "viewer")
    assert node.put_json("/v1/node", recover, token=viewer).status_code == 403
    assert node.get("/v1/service").json() == []
    assert "zigbee" not in {c["capability"] for c in node.get("/v1/capabilities").json()}
    assert node.get("/v1/node").json()["lifecycle"] == "OPERATE"


def test_the_failure_brake_follows_its_config_keys(node_factory: Any) -> None:
    node: MoteyNode = node_factory(
        extra={"SECURITY": {"failed_token_limit": 3, "failed_token_window": 1.5}}
    )
    for _ in range(3):
        assert node.get("/v1/node", token="motey_guess").status_code == 401
    assert node.get("/v1/node", token="motey_guess").status_code == 429
    # Once the failures are older than the window, the address may try again.
    wait_for(
        lambda: node.get("/v1/node", token=None).status_code == 401,
        timeout=10,
        what="brake released",
    )
