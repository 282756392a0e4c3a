"""The web client in a real headless browser against real nodes.

Debian's chromium is driven by playwright-core (``tests/browser/drive.mjs``); the
nodes are real ``motey run`` processes with Docker. Both come from
``scripts/install_browser_deps.sh``, which ``scripts/setup.sh`` runs. Screenshots go to
a temporary folder, or to ``$MOTEY_WEBCLIENT_SCREENSHOTS`` (e.g. ``docs/screenshots``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from tests.helpers import (
    REPO_ROOT,
    TEST_IMAGE,
    Mosquitto,
    MoteyNode,
    free_port,
    next_loopback,
    unique_name,
    wait_for,
)

WEBCLIENT = REPO_ROOT / "webclient"
# npm tooling (package.json, node_modules, driver) stays out of the folder nodes serve.
TOOLING = REPO_ROOT / "tests" / "browser"
DRIVER = TOOLING / "drive.mjs"
CHROMIUM = "/usr/bin/chromium"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

BLUEPRINT = """\
service_name: {name}
images:
  - name: {image}
    engine: docker
    parameters:
      command: "sleep 300"
"""

# Valid for the page (the shape is right), refused by the node: docker has no "comand".
SERVER_REJECTED = """\
service_name: typo_service
images:
  - name: {image}
    engine: docker
    parameters:
      comand: "sleep 300"
"""


def _require(path: Path | str, what: str) -> None:
    if not Path(path).exists():
        pytest.fail(
            f"{what} missing ({path}); run scripts/setup.sh (it calls "
            "scripts/install_browser_deps.sh)"
        )


@pytest.fixture(scope="module")
def browser_deps() -> None:
    """Chromium, Node.js and playwright-core must be installed by the setup script."""
    _require(CHROMIUM, "Debian's chromium")
    _require(TOOLING / "node_modules" / "playwright-core" / "package.json", "playwright-core")
    if shutil.which("node") is None:
        pytest.fail("node (Node.js) missing; run scripts/setup.sh")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = os.environ.get("MOTEY_WEBCLIENT_SCREENSHOTS")
    path = Path(target).resolve() if target else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_browser(
    scenario: str,
    config: dict[str, Any],
    handlers: dict[str, Callable[..., Any]] | None = None,
    timeout: float = 150.0,
) -> list[str]:
    """Run one scenario of the driver; answer its ``@@ask`` lines with ``handlers``."""
    handlers = handlers or {}
    config = {"chromium": CHROMIUM, "totalTimeoutMs": int(timeout * 1000) - 5000, **config}
    process = subprocess.Popen(
        ["node", str(DRIVER), scenario, json.dumps(config)],
        cwd=TOOLING,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    # Last resort if the driver's own watchdog fails: end it by its PID.
    watchdog = threading.Timer(timeout, process.terminate)
    watchdog.start()
    lines: list[str] = []
    errors: list[str] = []
    assert process.stdout is not None and process.stdin is not None
    try:
        for raw in process.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if not line.startswith("@@ask "):
                continue
            request = json.loads(line[len("@@ask ") :])
            try:
                data = handlers[request["action"]](**request.get("data", {}))
                answer: dict[str, Any] = {"ok": True, "data": data}
            except Exception as exc:  # reported to the driver and to pytest
                errors.append(f"{request['action']}: {type(exc).__name__}: {exc}")
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            process.stdin.write(json.dumps(answer) + "\n")
            process.stdin.flush()
        code = process.wait(timeout=30)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        process.stdin.close()
        process.stdout.close()
    output = "\n".join(lines)
    print(output)
    assert not errors, f"checks outside the browser failed: {errors}\n{output}"
    assert code == 0, f"browser scenario {scenario} failed (exit {code}):\n{output}"
    return lines


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


def containers_of(client: docker.DockerClient, service_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"motey.service_id={service_id}"})


# ----------------------------------------------------------------------- static checks


class _AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.urls.append(value)


def test_node_serves_the_client_with_local_assets_only(node: MoteyNode) -> None:
    """``GET /`` is the page; every file it loads comes from the node itself."""
    r = node.get("/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    parser = _AssetCollector()
    parser.feed(r.text)
    assets = [u for u in parser.urls if u != "v1"]
    assert {"vendor/vue.global.prod.js", "vendor/bootstrap.min.css"} <= set(assets)
    for url in assets:
        assert not re.match(r"^([a-z]+:)?//", url), f"page loads {url} from elsewhere"
        asset = node.get(f"/{url}")
        assert asset.status_code == 200, f"{url}: {asset.status_code}"
        assert len(asset.content) > 0
    for url in ("vendor/vue.global.prod.js", "js/app.js", "css/motey.css"):
        text = node.get(f"/{url}").text
        assert "cdn." not in text.lower() and "unpkg" not in text.lower(), url


def test_vendored_assets_match_the_lock_file(browser_deps: None) -> None:
    """``webclient/vendor`` is what ``scripts/vendor_webclient.sh`` makes from the lock."""
    lock = json.loads((TOOLING / "package-lock.json").read_text())
    versions = (WEBCLIENT / "vendor" / "VERSIONS.txt").read_text()
    for package in ("vue", "bootstrap", "js-yaml"):
        locked = lock["packages"][f"node_modules/{package}"]["version"]
        assert f"{package} {locked} " in versions, f"vendor/ is not {package} {locked}"
    sums = (WEBCLIENT / "vendor" / "SHA256SUMS").read_text().split("\n")
    for line in filter(None, sums):
        digest, name = line.split()
        data = (WEBCLIENT / "vendor" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"vendor/{name} changed by hand"
    vue = (WEBCLIENT / "vendor" / "vue.global.prod.js").read_bytes()
    installed = (TOOLING / "node_modules" / "vue" / "dist" / "vue.global.prod.js").read_bytes()
    assert (
        vue.split(b"//# sourceMappingURL")[0].strip()
        == installed.split(b"//# sourceMappingURL")[0].strip()
    )


def test_blueprint_check_unit_tests(browser_deps: None) -> None:
    """The page's blueprint check and API calls (node's test runner, no browser)."""
    r = subprocess.run(
        ["node", "--test", "blueprint.test.cjs", "api.test.cjs"],
        cwd=TOOLING,
        # webclient/js/blueprint.js requires js-yaml; it lives in the tooling folder.
        env={**os.environ, "NODE_PATH": str(TOOLING / "node_modules")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^# fail 0$", r.stdout, re.M), r.stdout
    assert not re.search(r"^# pass 0$", r.stdout, re.M), r.stdout


# ----------------------------------------------------------------------- browser


def test_deploy_watch_running_and_terminate(
    browser_deps: None, node_factory: Any, docker_client: docker.DockerClient, screenshots: Path
) -> None:
    """Deploy through the form, see RUNNING live, terminate after a confirmation."""
    node: MoteyNode = node_factory()
    name = unique_name("gui")

    def service_running(name: str) -> dict[str, Any]:
        services = [s for s in node.get("/v1/service").json() if s["service_name"] == name]
        assert len(services) == 1, services
        service = node.wait_service_state(services[0]["id"], "RUNNING")
        containers = containers_of(docker_client, service["id"])
        assert len(containers) == 1 and containers[0].status == "running", containers
        return {"id": service["id"], "state": service["state"]}

    def service_state(id: str, state: str) -> None:
        assert node.service(id)["state"] == state

    def service_terminated(id: str) -> None:
        node.wait_service_state(id, "TERMINATED")
        wait_for(lambda: not containers_of(docker_client, id), timeout=20, what="containers gone")

    lines = run_browser(
        "deploy",
        {
            "url": f"{node.url}/?poll=500",
            "token": node.token,
            "screenshots": str(screenshots),
            "serviceName": name,
            "blueprint": BLUEPRINT.format(name=name, image=TEST_IMAGE),
            "nodeIp": node.ip,
            "nodeName": node.name,
        },
        {
            "service-running": service_running,
            "service-state": service_state,
            "service-terminated": service_terminated,
        },
    )
    assert any("deployed service state RUNNING" in line for line in lines)
    for png in ("deploy.png", "services.png", "overview.png", "terminate-confirm.png"):
        assert_png(screenshots / png)


def test_schema_errors_before_and_after_sending(
    browser_deps: None, node_factory: Any, screenshots: Path
) -> None:
    """Client-side errors block sending; the node's 400 names the field next to the text."""
    node: MoteyNode = node_factory()

    def no_services() -> None:
        assert node.get("/v1/service").json() == []

    run_browser(
        "schema_errors",
        {
            "url": f"{node.url}/?poll=500",
            "token": node.token,
            "screenshots": str(screenshots),
            "serverRejectedBlueprint": SERVER_REJECTED.format(image=TEST_IMAGE),
            "serverRejectedField": "images[0].parameters.comand",
        },
        {"no-services": no_services},
    )
    for png in ("deploy-client-error.png", "deploy-server-error.png"):
        assert_png(screenshots / png)


def test_capabilities_add_and_remove(
    browser_deps: None, node_factory: Any, screenshots: Path
) -> None:
    node: MoteyNode = node_factory(capabilities=["zigbee", "camera"])

    def capability(name: str, present: bool) -> None:
        entries = [c for c in node.get("/v1/capabilities").json() if c["capability"] == name]
        if present:
            assert entries and entries[0]["source"] == "rest", entries
        else:
            assert not entries, entries

    run_browser(
        "capabilities",
        {
            "url": f"{node.url}/?poll=500",
            "token": node.token,
            "screenshots": str(screenshots),
            "configCapabilities": ["zigbee", "camera"],
            "newCapability": "gpio_bank_2",
        },
        {"capability": capability},
    )
    assert_png(screenshots / "capabilities.png")


def test_nodes_page_of_a_small_cluster(
    browser_deps: None,
    node_factory: Any,
    mosquitto: Mosquitto,
    docker_client: docker.DockerClient,
    screenshots: Path,
) -> None:
    """Three nodes find each other over MQTT; the page of one lists all three, shows an
    image placed on another node by its capability and a crashed node as UNREACHABLE,
    and switches to another node's API with its Open button."""
    broker = (mosquitto.ip, mosquitto.port)
    cells = [
        node_factory(name=f"cell-{i}", mqtt=broker, capabilities=caps)
        for i, caps in enumerate((["zigbee"], ["lidar", "arch=amd64"], ["camera"]), start=1)
    ]
    first, lidar_node, crashing = cells
    wait_for(lambda: len(first.get("/v1/nodes").json()) == 3, timeout=30, what="3 nodes discovered")
    expected = [
        {
            "id": n.node_id,
            "name": n.name,
            "ip": n.ip,
            "capabilities": caps,
        }
        for n, caps in zip(cells, (["zigbee"], ["lidar", "arch=amd64"], ["camera"]), strict=True)
    ]
    remote_name = unique_name("lidar")

    def remote_running(name: str) -> None:
        services = [s for s in first.get("/v1/service").json() if s["service_name"] == name]
        assert len(services) == 1, services
        image = services[0]["images"][0]
        assert services[0]["state"] == "RUNNING" and image["node"] == lidar_node.ip, services
        assert image["node_id"] == lidar_node.node_id
        running = containers_of(docker_client, services[0]["id"])
        assert [c.labels.get("motey.node_id") for c in running] == [lidar_node.node_id]

    def kill_node(id: str) -> None:
        assert id == crashing.node_id
        crashing.kill()

    run_browser(
        "nodes",
        {
            "url": f"{first.url}/?poll=500",
            "token": first.token,
            "screenshots": str(screenshots),
            "nodes": expected,
            "remote": {
                "serviceName": remote_name,
                "blueprint": BLUEPRINT.format(name=remote_name, image=TEST_IMAGE)
                + "    capabilities: [lidar]\n",
                "nodeName": lidar_node.name,
                "nodeIp": lidar_node.ip,
            },
            "stopOne": {"id": crashing.node_id},
            "openNode": {
                "id": lidar_node.node_id,
                "name": lidar_node.name,
                "apiBase": lidar_node.url,
            },
        },
        {"remote-running": remote_running, "kill-node": kill_node},
    )
    for png in ("nodes.png", "services-cluster.png", "nodes-one-unreachable.png"):
        assert_png(screenshots / png)


def test_unreachable_banner(browser_deps: None, node_factory: Any, screenshots: Path) -> None:
    """Stopping the node shows a banner within seconds; starting it again clears it."""
    node: MoteyNode = node_factory()

    def stop_node() -> None:
        assert node.stop() == 0

    def start_node() -> None:
        node.start()

    run_browser(
        "unreachable",
        {
            "url": f"{node.url}/?poll=500",
            "token": node.token,
            "screenshots": str(screenshots),
            "apiBase": node.url,
            "nodeName": node.name,
        },
        {"stop-node": stop_node, "start-node": start_node},
    )
    assert_png(screenshots / "unreachable.png")


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[str]:
    """The web client served by a plain HTTP server: another origin than any node."""
    ip = next_loopback()
    port = free_port(ip)
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", ip, "--directory", WEBCLIENT],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{ip}:{port}"
    try:
        wait_for(
            lambda: requests.get(f"{url}/index.html", timeout=1).ok,
            timeout=15,
            what="static server",
        )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_page_from_another_origin_talks_to_any_node(
    browser_deps: None,
    node_factory: Any,
    static_server: str,
    docker_client: docker.DockerClient,
    screenshots: Path,
) -> None:
    """Opened from another origin (a static server, the file system) with ``?api=``:
    reads, PUTs and POSTs pass CORS; the settings page switches nodes."""
    node: MoteyNode = node_factory()
    name = unique_name("xorigin")
    dead_ip = next_loopback()

    def capability(name: str, present: bool) -> None:
        names = [c["capability"] for c in node.get("/v1/capabilities").json()]
        assert (name in names) is present, names

    run_browser(
        "cross_origin",
        {
            "url": f"{static_server}/index.html?api={node.url}",
            "token": node.token,
            "screenshots": str(screenshots),
            "apiBase": node.url,
            "nodeName": node.name,
            "newCapability": "opcua",
            "blueprint": BLUEPRINT.format(name=name, image=TEST_IMAGE),
            "deadApi": f"http://{dead_ip}:{free_port(dead_ip)}",
            "fileUrl": f"{(WEBCLIENT / 'index.html').as_uri()}?api={node.url}&poll=500#/overview",
        },
        {"capability": capability},
    )
    services = [s for s in node.get("/v1/service").json() if s["service_name"] == name]
    assert len(services) == 1 and services[0]["state"] == "RUNNING", services
    assert_png(screenshots / "settings.png")


def test_live_updates_logs_and_cell_switch(
    browser_deps: None, node_factory: Any, docker_client: docker.DockerClient, screenshots: Path
) -> None:
    """With polling at a minute, changes still show at once: they come over /v1/events."""
    node: MoteyNode = node_factory()
    created: dict[str, Any] = {}

    def deploy() -> dict[str, Any]:
        name = unique_name("live")
        response = node.post_yaml(
            f"""
            service_name: {name}
            images:
              - name: {TEST_IMAGE}
                parameters:
                  command: ["sh", "-c", "echo hello-from-the-container; sleep 600"]
            """
        )
        assert response.status_code == 201, response.text
        created.update(response.json())
        return {"name": name, "id": created["id"]}

    def print_line() -> None:
        image_id = created["images"][0]["id"]
        labels = {"label": f"motey.image_id={image_id}"}
        container = docker_client.containers.list(filters=labels)[0]
        container.exec_run(["sh", "-c", "echo printed-while-following > /proc/1/fd/1"])

    def terminate() -> None:
        assert node.delete(f"/v1/service/{created['id']}").status_code == 202

    lines = run_browser(
        "live",
        {
            "url": f"{node.url}/?poll=60000",
            "screenshots": str(screenshots),
            "nodeName": node.name,
            "token": node.token,
        },
        {"deploy": deploy, "print-line": print_line, "terminate": terminate},
    )
    assert any("followed log line arrived" in line for line in lines)
    assert_png(screenshots / "services-live-logs.png")


def test_an_image_awaiting_placement(
    browser_deps: None, node_factory: Any, docker_client: docker.DockerClient, screenshots: Path
) -> None:
    """The service view shows a waiting image and what it waits for, then its placement."""
    node: MoteyNode = node_factory()
    name = unique_name("await")
    text = (
        f"service_name: {name}\nimages:\n  - name: {TEST_IMAGE}\n"
        '    parameters: {command: "sleep 600"}\n    capabilities: [camera]\n'
    )
    sid = node.post_yaml(text).json()["id"]

    def add_camera() -> None:
        camera = [{"capability": "camera", "capability_type": "hardware"}]
        assert node.put_json("/v1/capabilities", camera).status_code == 201

    run_browser(
        "awaiting",
        {
            "url": f"{node.url}/?poll=500",
            "screenshots": str(screenshots),
            "serviceName": name,
            "token": node.token,
        },
        {"add-camera": add_camera},
    )
    assert node.wait_service_state(sid, "RUNNING")["images"][0]["node"] == node.ip
    assert_png(screenshots / "awaiting.png")


def test_login_roles_and_a_revoked_token_returns_to_login(
    browser_deps: None, node_factory: Any, docker_client: docker.DockerClient, screenshots: Path
) -> None:
    """The page asks for a token; a viewer sees no action, an operator deploys, and a
    token revoked with ``motey token revoke`` while the page is open brings the login
    page back (the node answers 401)."""
    node: MoteyNode = node_factory()
    viewer = node.create_token("gui-viewer", "viewer")
    operator = node.create_token("gui-operator", "operator")
    existing = unique_name("before")
    assert node.post_yaml(BLUEPRINT.format(name=existing, image=TEST_IMAGE)).status_code == 201
    name = unique_name("operator")

    def service_running(name: str) -> None:
        services = [s for s in node.get("/v1/service").json() if s["service_name"] == name]
        assert len(services) == 1, services
        node.wait_service_state(services[0]["id"], "RUNNING")

    def revoke_operator() -> None:
        done = node.cli("token", "revoke", "gui-operator")
        assert done.returncode == 0, done.stderr
        # Refused: 401, or 429 when the page's own refused polls from this same address
        # engaged the failure brake first (it polls every 500 ms, several requests a round).
        assert node.get("/v1/node", token=operator).status_code in (401, 429)

    run_browser(
        "login_roles",
        {
            "url": f"{node.url}/?poll=500",
            "screenshots": str(screenshots),
            "viewerToken": viewer,
            "viewerName": "gui-viewer",
            "operatorToken": operator,
            "existingService": existing,
            "serviceName": name,
            "blueprint": BLUEPRINT.format(name=name, image=TEST_IMAGE),
        },
        {"service-running": service_running, "revoke-operator": revoke_operator},
    )
    for png in ("login.png", "viewer-deploy.png", "login-after-401.png"):
        assert_png(screenshots / png)
