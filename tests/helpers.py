"""Shared test machinery: real Motey processes, a real Mosquitto, Docker clean-up.

Every node gets its own loopback address, chosen per test run, so tests may run next to
a developer's demo cluster (which uses 127.0.1.x) without port clashes.
"""

from __future__ import annotations

import atexit
import fcntl
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import EllipsisType
from typing import Any

import requests

TEST_IMAGE = "motey-test/busybox:latest"
#: ``motey`` commands that act on a node's own files and so take its ``--config``.
NODE_COMMANDS = frozenset({"token", "run", "start", "stop", "restart", "status"})
REPO_ROOT = Path(__file__).resolve().parent.parent

# One address block per test run: 127.<block>.<counter>.<counter>. Several test runs
# share the machine (and port 5023 on their nodes' addresses), so a run claims its block
# with a lock file held until it exits; a pid-derived block alone collided now and then,
# and a test then talked to another run's node.
_BLOCK_LOCKS = Path(tempfile.gettempdir()) / "motey-test-blocks"
_block_lock: Any = None
_BLOCK = 0
_counter = itertools.count(1)


def _block_unused(block: int) -> bool:
    """Whether no node listens on the block's first addresses."""
    for n in range(1, 9):
        with socket.socket() as s:
            try:
                s.bind((f"127.{block}.0.{n + 1}", 5023))
            except OSError:
                return False
    return True


def _claim_block() -> int:
    global _block_lock
    _BLOCK_LOCKS.mkdir(exist_ok=True)
    start = os.getpid() % 200
    for offset in range(200):
        block = 20 + (start + offset) % 200
        handle = (_BLOCK_LOCKS / f"{block}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        if not _block_unused(block):  # a run with older helpers may be using it
            handle.close()
            continue
        _block_lock = handle  # held (open) for the life of this test run
        atexit.register(handle.close)
        return block
    raise RuntimeError("no free loopback block for this test run")


def next_loopback() -> str:
    """A loopback address no other node of this test run (or of another run) uses."""
    global _BLOCK
    if not _BLOCK:
        _BLOCK = _claim_block()
    n = next(_counter)
    return f"127.{_BLOCK}.{n // 250}.{n % 250 + 1}"


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling through transient errors
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last_exc}")


class MoteyNode:
    """A real ``motey run`` process with its own config, data folder and address."""

    def __init__(
        self,
        workdir: Path,
        *,
        name: str | None = None,
        ip: str | None = None,
        mqtt: tuple[str, int] | None = None,
        capabilities: list[str] | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.ip = ip or next_loopback()
        self.name = name or f"node-{self.ip}"
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 5023
        self.mqtt = mqtt
        sections: dict[str, dict[str, Any]] = {
            "NODE": {
                "ip": self.ip,
                "name": self.name,
                "capabilities": ",".join(capabilities or []),
            },
            "WEBSERVER": {"port": self.port, "cors_origins": "*"},
            "DATABASE": {"path": "db"},
            "LOGGER": {"log_path": "log", "level": "DEBUG"},
            "GENERAL": {"pid": "motey.pid"},
            "DOCKER": {"stop_timeout": 1, "pull_missing": "true"},
            "ORCHESTRATOR": {"watch_interval": 0.5, "placement_timeout": 2},
            "ZEROMQ": {
                "request_timeout": 2,
                "capability_engine_ipc_path": str(self.dir / "capability_engine.ipc"),
            },
            "MQTT": {
                "ip": mqtt[0] if mqtt else "",
                "port": mqtt[1] if mqtt else 1883,
                "keepalive": 2,
            },
        }
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        #: The bearer token request() sends unless told otherwise (None: none).
        self.token: str | None = None
        #: Secure (the default): HTTPS verified against the test cell's CA, and the
        #: cell's admin token; credentials issued by the real `motey cell` code.
        security = sections.setdefault("SECURITY", {})
        self.secure = security.get("mode", "secure") != "open"
        if self.secure and not security.get("credentials"):
            security["credentials"] = "credentials"
            issue_node_credentials(self.name, self.ip, self.dir / "credentials")
        if self.secure:
            self.token = cell_admin_token()
        self.sections = sections
        self.config_path = self.dir / "config.ini"
        self.write_config()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file = self.dir / "stdout.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.ip}:{self.port}"

    @property
    def node_id(self) -> str | None:
        path = self.dir / "db" / "node_id"
        return path.read_text().strip() if path.exists() else None

    def write_config(self) -> None:
        lines = []
        for section, values in self.sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {v}" for k, v in values.items())
            lines.append("")
        self.config_path.write_text("\n".join(lines))

    def start(self, wait: bool = True) -> MoteyNode:
        env = dict(os.environ)
        env.pop("MOTEY_CONFIG", None)
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "motey", "run", "--config", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"node {self.name} exited early:\n{self.log()}")
            r = self.get("/v1/node", timeout=1)
            return r.status_code == 200 and r.json()["lifecycle"] == "OPERATE"

        try:
            wait_for(ready, timeout=timeout, what=f"node {self.name} to operate")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log ---\n{self.log()}") from None

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-8000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
                raise AssertionError(f"node {self.name} did not stop within {timeout}s") from None
        code = self.process.returncode
        self.process = None
        return code

    def create_token(self, name: str, role: str) -> str:
        """A new token of this node (``motey token create``), as the command prints it."""
        done = self.cli("token", "create", "--name", name, "--role", role)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    # -- REST helpers ----------------------------------------------------------------
    # Every call to a node's REST API in the tests goes through request(), so that the
    # transport (HTTPS, the cell CA) and the caller's credentials are set in one place.
    def request(
        self, method: str, path: str, *, token: str | None | EllipsisType = ..., **kw: Any
    ) -> requests.Response:
        """One REST call to this node; ``path`` starts with ``/``.

        Sends ``Authorization: Bearer`` with ``token``: by default :attr:`token`, ``None``
        for no header at all.
        """
        kw.setdefault("timeout", 10)
        if self.secure:
            kw.setdefault("verify", str(session_cell().dir / "ca.crt"))
        bearer = self.token if token is ... else token
        if bearer is not None:
            kw["headers"] = {"Authorization": f"Bearer {bearer}", **(kw.get("headers") or {})}
        return requests.request(method, f"{self.url}{path}", **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post_yaml(
        self,
        text: str,
        content_type: str = "application/x-yaml",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.request(
            "POST",
            "/v1/service",
            data=textwrap.dedent(text).encode(),
            headers={"Content-Type": content_type, **(headers or {})},
            **kw,
        )

    def post_json(self, path: str, body: Any, **kw: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def put_json(self, path: str, body: Any, **kw: Any) -> requests.Response:
        return self.request("PUT", path, json=body, **kw)

    def client_env(self) -> dict[str, str]:
        """The environment for ``motey`` client commands aimed at this node: like
        :meth:`request`, the one place that says how to reach it (address, token, CA)."""
        env = dict(os.environ)
        env.pop("MOTEY_CONFIG", None)
        env["MOTEY_ADDR"] = self.url
        if self.secure:
            env["MOTEY_CACERT"] = str(session_cell().dir / "ca.crt")
        if self.token is not None:
            env["MOTEY_TOKEN"] = self.token
        return env

    def cli(self, *args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run ``motey ARGS`` against this node.

        Client commands (``deploy``, ``services``, ...) reach it over REST through
        :meth:`client_env`; the node's own commands (``token``, ``run``, ...) get
        ``--config`` with this node's config file.
        """
        command = [sys.executable, "-m", "motey", *args]
        if args and args[0] in NODE_COMMANDS:
            command += ["--config", str(self.config_path)]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.client_env(),
            cwd=kw.pop("cwd", self.dir),
            **kw,
        )

    def service(self, service_id: str) -> dict[str, Any]:
        r = self.get(f"/v1/service/{service_id}")
        r.raise_for_status()
        return r.json()

    def wait_service_state(self, service_id: str, state: str, timeout: float = 30.0) -> dict:
        last: dict[str, Any] = {}

        def check() -> bool:
            nonlocal last
            last = self.service(service_id)
            return last["state"] == state

        try:
            wait_for(check, timeout=timeout, what=f"service {service_id} to be {state}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast: {last}\n--- log ---\n{self.log()}") from None
        return last


# -- the test cell ------------------------------------------------------------------
# One cell per test session, made by the real `motey cell` code; every secure node and
# broker of the session belongs to it.
_cell: Any = None
#: (ip, port) of every secure broker started, so raw clients know to bring a certificate.
SECURE_BROKERS: set[tuple[str, int]] = set()


def session_cell() -> Any:
    """The session's cell (created on first use, removed at exit)."""
    global _cell
    if _cell is None:
        import atexit
        import tempfile

        from motey.security.cell import Cell

        folder = Path(tempfile.mkdtemp(prefix="motey-test-cell-"))
        atexit.register(shutil.rmtree, folder, True)
        _cell, _token = Cell.init(folder / "cell", broker="127.0.0.1")
    return _cell


def cell_admin_token() -> str:
    """The plain admin token of the test cell (what `motey cell init` wrote)."""
    return (session_cell().dir / "admin.token").read_text().strip()


def issue_node_credentials(name: str, ip: str, folder: Path) -> Path:
    """A node's credentials folder, as `motey cell add-node` writes it."""
    return session_cell().add_node(name, ip, out=folder, replace=True)  # type: ignore[no-any-return]


def client_tls(name: str = "test-observer") -> tuple[str, str, str]:
    """(CA, certificate, key) of a valid cell client certificate called ``name``."""
    from motey.security import pki

    cell = session_cell()
    folder = cell.dir / "clients" / name
    if not (folder / "client.crt").exists():
        ca_key, ca_cert = cell.ca()
        key, cert = pki.issue_cert(ca_key, ca_cert, name, [])
        pki.write_private(folder / "client.key", pki.key_pem(key))
        pki.write_public(folder / "client.crt", pki.cert_pem(cert))
    return str(cell.dir / "ca.crt"), str(folder / "client.crt"), str(folder / "client.key")


def secure_broker_config(folder: Path, ip: str, port: int) -> str:
    """The cell's generated Mosquitto configuration, with a broker certificate for ``ip``."""
    from motey.security import pki
    from motey.security.cell import broker_config

    cell = session_cell()
    ca_key, ca_cert = cell.ca()
    key, cert = pki.issue_cert(ca_key, ca_cert, "motey-broker", [ip])
    pki.write_private(folder / "broker.key", pki.key_pem(key))
    pki.write_public(folder / "broker.crt", pki.cert_pem(cert))
    text = broker_config(cell.dir, ip, port)
    text = text.replace(str(cell.dir / "broker" / "broker.crt"), str(folder / "broker.crt"))
    text = text.replace(str(cell.dir / "broker" / "broker.key"), str(folder / "broker.key"))
    # pytest's folders are private to root: the test broker keeps root's rights to read them.
    return text + "user root\n"


def unique_name(prefix: str = "svc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Mosquitto:
    """A real Mosquitto broker on a loopback address and a free port.

    Secure (the default): the test cell's generated configuration and ACL, TLS with
    client certificates, a broker certificate for ``ip``. ``secure=False``: the original
    anonymous plain broker, for tests about the original wire format.
    """

    def __init__(self, workdir: Path, ip: str = "127.0.0.1", secure: bool = True) -> None:
        self.ip = ip
        self.port = free_port(ip)
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.secure = secure
        log_lines = f"log_dest file {self.dir / 'mosquitto.log'}\nlog_type all\n"
        if secure:
            SECURE_BROKERS.add((self.ip, self.port))
            self.conf.write_text(secure_broker_config(self.dir, ip, self.port) + log_lines)
        else:
            self.conf.write_text(
                f"listener {self.port} {self.ip}\nallow_anonymous true\npersistence false\n"
                + log_lines
            )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def listening() -> bool:
            with socket.create_connection((self.ip, self.port), timeout=0.5):
                return True

        wait_for(listening, timeout=10, what="mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
