#!/usr/bin/env python3
"""Measure a real Motey node: start-up, deployment and termination times, memory, threads.

The script starts ``python -m motey run --config FILE`` as a subprocess on a loopback
address (default 127.0.99.1, no MQTT broker: a single-node cluster) with the local Docker
engine, and measures

* the same containers started and stopped with the Docker SDK alone (the baseline that
  shows Motey's own share; skip it with ``--no-baseline``);
* start-up: from process start until ``GET /v1/node`` says ``OPERATE``, the first start
  and ``--restarts`` restarts with the filled data folder;
* ``POST /v1/service`` → ``201`` (p50/p95) and POST → ``RUNNING`` for N services
  posted one after another, and N services posted by 8 parallel clients;
* ``DELETE /v1/service/<id>`` → ``TERMINATED``, sequential and parallel;
* ``GET /v1/service`` with N services;
* the node's resident memory (RSS and USS, psutil) and thread count, idle, with N
  services running and after all were terminated;
* shutdown: from SIGTERM until the process has exited.

Each service is one container of the local test image ``motey-test/busybox:latest``
whose command exits at once on SIGTERM, so termination times are Motey's and Docker's,
not a stop timeout. One thread polls ``GET /v1/service`` every ``--poll`` seconds
(default 0.05) and notes when each service first shows a state, so times to RUNNING and
TERMINATED are accurate to about one poll interval.

At the end every container labelled ``motey.node_id=<this node's id>`` is removed and the
node is stopped by its PID. Network traffic goes to the loopback address only.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = "motey-test/busybox:latest"
#: A container that keeps running and exits with 0 at once on SIGTERM (PID 1 ignores
#: signals it has no handler for, so a plain ``sleep`` would wait for Docker's kill).
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


class BenchmarkError(Exception):
    """Something the benchmark needs is missing or the node misbehaved."""


# -- statistics ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary_ms(values: list[float]) -> str:
    """``p50 / p95 / max`` of seconds, shown in milliseconds."""
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50) * 1000:7.1f} ms   p95 {percentile(values, 95) * 1000:7.1f} ms"
        f"   max {max(values) * 1000:7.1f} ms   (n={len(values)})"
    )


@dataclass
class Phase:
    """Timings of one way of deploying and terminating N services."""

    name: str
    post_201: list[float] = field(default_factory=list)
    post_running: list[float] = field(default_factory=list)
    delete_202: list[float] = field(default_factory=list)
    delete_terminated: list[float] = field(default_factory=list)
    deploy_wall: float = 0.0
    terminate_wall: float = 0.0


@dataclass
class Sample:
    """Memory and threads of the node process at one moment."""

    label: str
    rss_mb: float
    uss_mb: float
    threads: int


# -- the node ------------------------------------------------------------------------------


class Node:
    """A ``motey run`` subprocess with its own config and data folder under ``workdir``."""

    def __init__(self, workdir: Path, ip: str, port: int, log_level: str) -> None:
        self.workdir = workdir
        self.ip = ip
        self.port = port
        self.url = f"http://{ip}:{port}"
        self.config = workdir / "config.ini"
        self.config.write_text(
            "\n".join(
                [
                    "[GENERAL]",
                    "pid = motey.pid",
                    "[LOGGER]",
                    "log_path = log",
                    f"level = {log_level}",
                    "[WEBSERVER]",
                    f"port = {port}",
                    "[NODE]",
                    f"ip = {ip}",
                    "name = benchmark-node",
                    "[DATABASE]",
                    "path = db",
                    "[ZEROMQ]",
                    f"capability_engine_ipc_path = {workdir / 'capability_engine.ipc'}",
                    "[MQTT]",
                    "ip =",
                    "[DOCKER]",
                    "pull_missing = false",
                    # One node and no cell: open mode (secure vs open is measured by
                    # secure_cell_benchmark.py).
                    "[SECURITY]",
                    "mode = open",
                    "",
                ]
            )
        )
        self.log_file = workdir / "stdout.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.node_id: str | None = None

    def start(self, timeout: float) -> float:
        """Start the process; return the seconds until it reports ``OPERATE``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTEY_")}
        started = time.perf_counter()
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "motey", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )
        deadline = started + timeout
        with requests.Session() as session:
            while True:
                if self.process.poll() is not None:
                    raise BenchmarkError(
                        f"node exited with {self.process.returncode}:\n{self.log()}"
                    )
                try:
                    r = session.get(f"{self.url}/v1/node", timeout=1)
                    if r.status_code == 200 and r.json().get("lifecycle") == "OPERATE":
                        self.node_id = r.json()["id"]
                        return time.perf_counter() - started
                except requests.RequestException:
                    pass
                if time.perf_counter() > deadline:
                    raise BenchmarkError(f"node not OPERATE within {timeout} s:\n{self.log()}")
                time.sleep(0.01)

    def stored_node_id(self) -> str | None:
        """The id the node keeps in its data folder (known even if start-up failed)."""
        path = self.workdir / "db" / "node_id"
        return path.read_text().strip() if path.exists() else self.node_id

    def sample(self, label: str) -> Sample:
        """RSS, USS and thread count of the node process now."""
        assert self.process is not None
        proc = psutil.Process(self.process.pid)
        info = proc.memory_full_info()
        return Sample(label, info.rss / 2**20, info.uss / 2**20, proc.num_threads())

    def stop(self, timeout: float = 30.0) -> float | None:
        """SIGTERM by PID and wait (SIGKILL after ``timeout``); return the seconds it took."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is not None:
            return None
        started = time.perf_counter()
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"node did not stop within {timeout} s; sending SIGKILL to {process.pid}")
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            return None
        return time.perf_counter() - started

    def log(self) -> str:
        """The last lines of the node's console output."""
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


# -- the client ----------------------------------------------------------------------------


def blueprint(name: str, image: str) -> bytes:
    """A one-image blueprint in the original Motey YAML format."""
    return (
        f"service_name: {name}\n"
        "images:\n"
        f"  - name: {image}\n"
        "    engine: docker\n"
        "    parameters:\n"
        f"      command: {json.dumps(COMMAND)}\n"
    ).encode()


class Watcher:
    """One thread that polls ``GET /v1/service`` and notes when each service got a state.

    A single poller, however many clients post, keeps the load that measuring puts on
    the node small and the same in every phase.
    """

    def __init__(self, url: str, poll: float) -> None:
        self.url = url
        self.poll = poll
        self._seen: dict[tuple[str, str], float] = {}
        self._messages: dict[str, str] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self.error: Exception | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    r = session.get(f"{self.url}/v1/service", timeout=10)
                    r.raise_for_status()
                    now = time.perf_counter()
                    with self._changed:
                        for service in r.json():
                            key = (service["id"], service["state"])
                            self._seen.setdefault(key, now)
                            if service["state"] == "ERROR":
                                self._messages[service["id"]] = service.get("state_message", "")
                        self._changed.notify_all()
                except (requests.RequestException, ValueError) as exc:
                    self.error = exc
                self._stop.wait(self.poll)

    def wait(self, ids: list[str], state: str, timeout: float) -> dict[str, float]:
        """Wait until every service of ``ids`` was seen in ``state``; when, per id."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                failed = [i for i in ids if (i, "ERROR") in self._seen]
                if failed:
                    raise BenchmarkError(f"service {failed[0]} ERROR: {self._messages[failed[0]]}")
                missing = [i for i in ids if (i, state) not in self._seen]
                if not missing:
                    return {i: self._seen[(i, state)] for i in ids}
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchmarkError(
                        f"{len(missing)} service(s) not {state} within {timeout} s "
                        f"(last poll error: {self.error})"
                    )
                self._changed.wait(min(left, 1.0))


class Client:
    """REST calls against one node; one HTTP session per thread."""

    def __init__(self, url: str, image: str) -> None:
        self.url = url
        self.image = image
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def post(self, name: str) -> tuple[str, float, float]:
        """POST a blueprint; return the service id, when the POST began, seconds to 201."""
        started = time.perf_counter()
        r = self.session.post(
            f"{self.url}/v1/service",
            data=blueprint(name, self.image),
            headers={"Content-Type": "application/x-yaml"},
            timeout=30,
        )
        elapsed = time.perf_counter() - started
        if r.status_code != 201:
            raise BenchmarkError(f"POST /v1/service answered {r.status_code}: {r.text}")
        return r.json()["id"], started, elapsed

    def delete(self, service_id: str) -> tuple[str, float, float]:
        """DELETE a service; return its id, when the DELETE began, seconds to 202."""
        started = time.perf_counter()
        r = self.session.delete(f"{self.url}/v1/service/{service_id}", timeout=30)
        elapsed = time.perf_counter() - started
        if r.status_code != 202:
            raise BenchmarkError(f"DELETE answered {r.status_code}: {r.text}")
        return service_id, started, elapsed

    def list_latency(self, times: int) -> list[float]:
        """Seconds of ``times`` calls of ``GET /v1/service``."""
        result = []
        for _ in range(times):
            started = time.perf_counter()
            self.session.get(f"{self.url}/v1/service", timeout=10).raise_for_status()
            result.append(time.perf_counter() - started)
        return result


def run_phase(
    client: Client,
    watcher: Watcher,
    name: str,
    count: int,
    workers: int,
    timeout: float,
    on_running: Callable[[], None],
) -> Phase:
    """Deploy ``count`` services with ``workers`` clients, call ``on_running``, terminate.

    With one worker each service must be RUNNING (or TERMINATED) before the next request
    goes out; with more, the workers send their requests as fast as the node answers.
    """
    phase = Phase(name)
    names = [f"bench-{name}-{os.getpid()}-{i:03d}" for i in range(count)]

    def deploy_one(service_name: str) -> tuple[str, float, float]:
        posted = client.post(service_name)
        if workers == 1:
            watcher.wait([posted[0]], "RUNNING", timeout)
        return posted

    def terminate_one(service_id: str) -> tuple[str, float, float]:
        deleted = client.delete(service_id)
        if workers == 1:
            watcher.wait([service_id], "TERMINATED", timeout)
        return deleted

    def batch(
        func: Callable[[str], tuple[str, float, float]], items: list[str], state: str
    ) -> tuple[list[tuple[str, float, float]], dict[str, float], float]:
        """Run ``func`` over ``items``; wait until all reached ``state``; wall seconds."""
        started = time.perf_counter()
        if workers == 1:
            done = [func(item) for item in items]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                done = list(pool.map(func, items))
        reached = watcher.wait([service_id for service_id, _, _ in done], state, timeout * count)
        return done, reached, max(reached.values()) - started

    posted, running, phase.deploy_wall = batch(deploy_one, names, "RUNNING")
    for service_id, began, answered in posted:
        phase.post_201.append(answered)
        phase.post_running.append(running[service_id] - began)
    on_running()
    deleted, terminated, phase.terminate_wall = batch(
        terminate_one, [service_id for service_id, _, _ in posted], "TERMINATED"
    )
    for service_id, began, answered in deleted:
        phase.delete_202.append(answered)
        phase.delete_terminated.append(terminated[service_id] - began)
    return phase


# -- preflight and clean-up ----------------------------------------------------------------


def check_docker(image: str) -> Any:
    """A Docker client for the local engine that has ``image``, or BenchmarkError."""
    import docker
    import docker.errors

    hint = "run scripts/setup.sh (as root) to install and start Docker and build the image"
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise BenchmarkError(f"no Docker engine answers ({exc}); {hint}") from exc
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        client.close()
        raise BenchmarkError(
            f"image {image} is missing; {hint} (or scripts/build_test_image.sh)"
        ) from None
    return client


def check_address(ip: str, port: int) -> None:
    """The address must be loopback and Motey's ports on it free."""
    if not ipaddress.ip_address(ip).is_loopback:
        raise BenchmarkError(f"{ip} is not a loopback address; this benchmark stays on loopback")
    for p in (port, 5091, 5092, 5093, 5094):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                s.bind((ip, p))
            except OSError as exc:
                raise BenchmarkError(f"{ip}:{p} is in use ({exc}); choose another --ip") from exc


def pick_address(port: int) -> str:
    """The first address of 127.0.99.1-50 on which Motey's ports are free."""
    for last in range(1, 51):
        ip = f"127.0.99.{last}"
        try:
            check_address(ip, port)
        except BenchmarkError:
            continue
        return ip
    raise BenchmarkError("no free address in 127.0.99.1-50; choose one with --ip")


def docker_baseline(docker_client: Any, image: str, count: int, label: str) -> Phase:
    """The same containers started and stopped with the Docker SDK alone, one by one.

    ``containers.run(detach=True)`` returns once the container runs; ``stop`` + ``remove``
    is what terminating does. The difference to Motey's times is Motey's own share.
    """
    phase = Phase("Docker SDK alone (no Motey), sequential")
    containers = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        containers.append(
            docker_client.containers.run(
                image, COMMAND, detach=True, labels=dict([label.split("=", 1)])
            )
        )
        phase.post_running.append(time.perf_counter() - t0)
    phase.deploy_wall = time.perf_counter() - started
    started = time.perf_counter()
    for container in containers:
        t0 = time.perf_counter()
        container.stop(timeout=10)
        container.remove()
        phase.delete_terminated.append(time.perf_counter() - t0)
    phase.terminate_wall = time.perf_counter() - started
    return phase


def remove_labelled(docker_client: Any, label: str) -> int:
    """Remove every container that carries ``label``; return how many there were."""
    containers = docker_client.containers.list(all=True, filters={"label": label})
    for container in containers:
        container.remove(force=True)
    return len(containers)


def remove_containers(docker_client: Any, node_id: str | None) -> int:
    """Remove every container labelled with this node's id; return how many there were."""
    if not node_id:
        return 0
    containers = docker_client.containers.list(
        all=True, filters={"label": f"motey.node_id={node_id}"}
    )
    for container in containers:
        container.remove(force=True)
    return len(containers)


# -- local and remote deploy against the Docker SDK, interleaved ---------------------------


class EventClock:
    """Reads a node's ``GET /v1/events`` stream; when each service first reached a state.

    The time is the node's own (``at``: when it stored the state; same machine, same
    clock), so the figure carries no polling delay and puts no polling load on the node.
    """

    def __init__(self, node: Any) -> None:
        self._node = node
        self._seen: dict[tuple[str, str], float] = {}
        self._changed = threading.Condition()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)

    def start(self) -> None:
        self._response = self._node.get("/v1/events", stream=True, timeout=(5, None))
        self._response.raise_for_status()
        self._thread.start()

    def stop(self) -> None:
        if self._response is not None:
            self._response.close()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            for line in self._response.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data:"):
                    continue
                data = json.loads(line[5:])
                if "state" in data and data.get("id") and "name" in data:
                    with self._changed:
                        self._seen.setdefault((data["id"], data["state"]), data["at"])
                        self._changed.notify_all()
        except Exception:  # the stream ends when stop() closes it
            return

    def wait(self, service_id: str, state: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while (service_id, state) not in self._seen:
                if (service_id, "ERROR") in self._seen:
                    raise BenchmarkError(f"service {service_id} ERROR")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchmarkError(f"service {service_id} not {state} within {timeout} s")
                self._changed.wait(min(left, 0.5))
            return self._seen[(service_id, state)]


def deploy_ratios(docker_client: Any, image: str, count: int, source: str | None) -> dict:
    """Deploy → RUNNING on the node itself, on a peer, and with the Docker SDK alone.

    A broker and two nodes (open mode): B has the capability ``bench-remote``, A has
    none. Each round, in a rotating order: the SDK starts a container
    (``containers.run(detach=True)``: create + start); B is posted a one-image service it
    runs itself (local); A is posted one that needs ``bench-remote``, which it places on
    B (remote). Each is removed (SDK) or deleted and waited for (Motey) before the next,
    so every start meets the same engine. Interleaving makes the ratios robust against
    the load of a shared machine, which moves between phases run one after another.
    """
    sys.path.insert(0, str(REPO_ROOT))
    from tests.helpers import Mosquitto, MoteyNode

    work = Path(tempfile.mkdtemp(prefix="motey-ratio-bench-"))
    env_before = os.environ.get("PYTHONPATH")
    if source:
        os.environ["PYTHONPATH"] = str(Path(source).resolve())
    broker = Mosquitto(work / "mosquitto", secure=False).start()
    extra = {
        "SECURITY": {"mode": "open"},
        "LOGGER": {"level": "INFO"},
        "ORCHESTRATOR": {"watch_interval": 2},
        "MQTT": {"keepalive": 10},
        "DOCKER": {"pull_missing": "false"},
    }
    a = MoteyNode(work, name="a", mqtt=(broker.ip, broker.port), extra=extra)
    b = MoteyNode(
        work, name="b", mqtt=(broker.ip, broker.port), capabilities=["bench-remote"], extra=extra
    )
    label = f"motey-benchmark.ratio={os.getpid()}-{time.time_ns()}"
    times: dict[str, list[float]] = {"sdk": [], "local": [], "remote": []}
    clocks: list[EventClock] = []
    try:
        b.start()
        a.start()
        deadline = time.monotonic() + 30
        while not any(
            n.get("ip") == b.ip and n.get("lifecycle") == "OPERATE"
            for n in a.get("/v1/nodes").json()
        ):
            if time.monotonic() > deadline:
                raise BenchmarkError("node A did not see node B operating within 30 s")
            time.sleep(0.1)
        clock_a, clock_b = EventClock(a), EventClock(b)
        clocks = [clock_a, clock_b]
        for clock in clocks:
            clock.start()
        command = json.dumps(COMMAND)

        def sdk() -> None:
            began = time.time()
            container = docker_client.containers.run(
                image, COMMAND, detach=True, labels=dict([label.split("=", 1)])
            )
            times["sdk"].append(time.time() - began)
            container.remove(force=True)

        def motey(kind: str, node: Any, clock: EventClock, caps: str) -> None:
            text = (
                f"service_name: ratio-{kind}-{len(times[kind])}\nimages:\n"
                f"  - name: {image}\n    parameters: {{command: {command}}}\n{caps}"
            )
            began = time.time()
            r = node.post_yaml(text)
            if r.status_code != 201:
                raise BenchmarkError(f"POST answered {r.status_code}: {r.text}")
            sid = r.json()["id"]
            times[kind].append(clock.wait(sid, "RUNNING", 60) - began)
            node.delete(f"/v1/service/{sid}")
            clock.wait(sid, "TERMINATED", 60)

        steps = [
            sdk,
            lambda: motey("local", b, clock_b, ""),
            lambda: motey("remote", a, clock_a, "    capabilities: [bench-remote]\n"),
        ]
        for _ in range(2):  # warm-up: first requests open connections and sockets
            for step in steps:
                step()
        for key in times:
            times[key].clear()
        for i in range(count):
            for step in steps[i % 3 :] + steps[: i % 3]:
                step()
    finally:
        for clock in clocks:
            clock.stop()
        for node in (a, b):
            node_id = node.node_id
            with contextlib.suppress(AssertionError):
                node.stop(timeout=30)
            remove_containers(docker_client, node_id)
        remove_labelled(docker_client, label)
        broker.stop()
        if source:
            if env_before is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = env_before
        shutil.rmtree(work, ignore_errors=True)
    return times


def ratio_report(times: dict[str, list[float]]) -> str:
    """The three deploy times side by side, and Motey's as ratios to the SDK's."""
    sdk50, sdkmean = percentile(times["sdk"], 50), sum(times["sdk"]) / len(times["sdk"])
    lines = [
        f"deploy → RUNNING, interleaved, n={len(times['sdk'])} each",
        f"  {'':28} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}"
        f" {'p50 ÷ SDK':>10} {'mean ÷ SDK':>11}",
    ]
    for key, name in (
        ("sdk", "Docker SDK containers.run"),
        ("local", "Motey local POST → RUNNING"),
        ("remote", "Motey remote POST → RUNNING"),
    ):
        values = times[key]
        p50, p95, mean = percentile(values, 50), percentile(values, 95), sum(values) / len(values)
        lines.append(
            f"  {name:28} {p50 * 1000:8.1f} {p95 * 1000:8.1f} {mean * 1000:8.1f}"
            f" {p50 / sdk50:9.2f}× {mean / sdkmean:10.2f}×"
        )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def report(
    startup: float,
    restarts: list[float],
    shutdowns: list[float],
    phases: list[Phase],
    samples: list[Sample],
    list_times: list[float],
    count: int,
) -> str:
    """All measurements as text."""
    lines = [
        f"node start-up to OPERATE, first start  {startup * 1000:7.0f} ms",
        f"  restarts (data folder with {2 * count} services) {summary_ms(restarts)}",
        f"node shutdown (SIGTERM → exit)    {summary_ms(shutdowns)}",
    ]
    for phase in phases:
        if not phase.post_201:  # the Docker baseline
            lines += [
                "",
                f"{phase.name}: {count} containers",
                f"  containers.run → running  {summary_ms(phase.post_running)}",
                f"  stop + remove             {summary_ms(phase.delete_terminated)}",
            ]
            continue
        lines += [
            "",
            f"{phase.name}: {count} services",
            f"  POST → 201                {summary_ms(phase.post_201)}",
            f"  POST → RUNNING            {summary_ms(phase.post_running)}",
            f"  all {count} RUNNING after     {phase.deploy_wall:6.2f} s"
            f"  ({count / phase.deploy_wall:.1f} services/s)",
            f"  DELETE → 202              {summary_ms(phase.delete_202)}",
            f"  DELETE → TERMINATED       {summary_ms(phase.delete_terminated)}",
            f"  all {count} TERMINATED after  {phase.terminate_wall:6.2f} s",
        ]
    lines += ["", f"GET /v1/service, {count} services stored  {summary_ms(list_times)}", ""]
    lines.append(f"{'node process':34} {'RSS MB':>8} {'USS MB':>8} {'threads':>8}")
    for s in samples:
        lines.append(f"{s.label:34} {s.rss_mb:8.1f} {s.uss_mb:8.1f} {s.threads:8d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start a node, run the phases, print the numbers, clean up."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Needs the local Docker engine and the image motey-test/busybox:latest "
        "(scripts/setup.sh builds it).",
    )
    parser.add_argument("--services", type=int, default=20, help="services per phase (20)")
    parser.add_argument("--parallel", type=int, default=8, help="parallel clients (8)")
    parser.add_argument(
        "--ip",
        help="loopback address of the node (default: the first of 127.0.99.1-50 whose "
        "ports are free)",
    )
    parser.add_argument("--port", type=int, default=5023, help="REST port (5023)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"image ({DEFAULT_IMAGE})")
    parser.add_argument(
        "--poll", type=float, default=0.05, help="seconds between two state polls (0.05)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds one service may take (60)"
    )
    parser.add_argument(
        "--restarts", type=int, default=3, help="extra start/stop cycles timed at the end (3)"
    )
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip timing the same containers with the Docker SDK alone",
    )
    parser.add_argument(
        "--ratios",
        type=int,
        default=10,
        help="rounds of SDK / local / remote deploys, interleaved (10; 0 skips them)",
    )
    parser.add_argument(
        "--ratios-only", action="store_true", help="only the interleaved deploy ratios"
    )
    parser.add_argument("--source", help="run the ratio nodes from this source tree")
    parser.add_argument("--log-level", default="INFO", help="the node's [LOGGER] level (INFO)")
    parser.add_argument("--keep", action="store_true", help="keep the node's work folder")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    if args.services < 1 or args.parallel < 1 or args.poll <= 0 or args.restarts < 0:
        parser.error("--services, --parallel and --poll must be positive, --restarts not negative")

    try:
        args.ip = args.ip or pick_address(args.port)
        check_address(args.ip, args.port)
        docker_client = check_docker(args.image)
    except BenchmarkError as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="motey-orch-bench-"))
    node = Node(workdir, args.ip, args.port, args.log_level)
    client = Client(node.url, args.image)
    watcher = Watcher(node.url, args.poll)
    samples: list[Sample] = []
    phases: list[Phase] = []
    shutdowns: list[float] = []
    restarts: list[float] = []
    code = 0
    print(
        f"orchestration benchmark: node {node.url}, {args.services} services per phase, "
        f"{args.parallel} parallel clients, {os.cpu_count()} CPUs, work folder {workdir}"
    )
    print("load average before the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    baseline_label = f"motey-benchmark.baseline={os.getpid()}-{time.time_ns()}"
    ratios: dict[str, list[float]] = {}
    if args.ratios:
        try:
            ratios = deploy_ratios(docker_client, args.image, args.ratios, args.source)
            print(ratio_report(ratios))
        except (BenchmarkError, requests.RequestException) as exc:
            print(f"ratio phase failed: {exc}", file=sys.stderr)
            code = 1
        if args.ratios_only:
            print("load average after the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            if args.json:
                Path(args.json).write_text(json.dumps({"ratios": ratios}, indent=2))
            shutil.rmtree(workdir, ignore_errors=True)
            docker_client.close()
            return code
    try:
        if args.baseline:
            base = docker_baseline(docker_client, args.image, args.services, baseline_label)
            phases.append(base)
            print(f"Docker baseline done in {base.deploy_wall + base.terminate_wall:.1f} s")
        startup = node.start(timeout=60)
        print(f"node {node.node_id} OPERATE after {startup:.2f} s")
        time.sleep(2)  # let start-up work (reconciliation, first samples) settle
        samples.append(node.sample("idle, after start-up"))

        watcher.start()
        list_times: list[float] = []

        def sample(label: str) -> Callable[[], None]:
            return lambda: samples.append(node.sample(f"{label}, {args.services} RUNNING"))

        def sequential_running() -> None:
            sample("sequential")()
            list_times.extend(client.list_latency(20))

        for name, workers, on_running in (
            ("sequential", 1, sequential_running),
            (f"{args.parallel}-parallel", args.parallel, sample(f"{args.parallel}-parallel")),
        ):
            phase = run_phase(
                client, watcher, name, args.services, workers, args.timeout, on_running
            )
            phases.append(phase)
            print(f"{name} phase done in {phase.deploy_wall + phase.terminate_wall:.1f} s")
        watcher.stop()
        time.sleep(2)
        samples.append(node.sample("idle, after all TERMINATED"))
        shutdowns.append(node.stop() or float("nan"))
        for _ in range(args.restarts):
            restarts.append(node.start(timeout=60))
            time.sleep(1)
            shutdowns.append(node.stop() or float("nan"))
        print()
        print(report(startup, restarts, shutdowns, phases, samples, list_times, args.services))
        if ratios:
            print()
            print(ratio_report(ratios))
        print("load average after the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "startup_s": startup,
                        "restart_s": restarts,
                        "shutdown_s": shutdowns,
                        "phases": [p.__dict__ for p in phases],
                        "samples": [s.__dict__ for s in samples],
                        "list_s": list_times,
                        "ratios": ratios,
                    },
                    indent=2,
                )
            )
    except (BenchmarkError, requests.RequestException) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        code = 130
    finally:
        watcher.stop()
        node.stop()
        removed = remove_containers(docker_client, node.stored_node_id())
        removed += remove_labelled(docker_client, baseline_label)
        print(f"\nclean-up: node stopped, {removed} leftover container(s) removed")
        docker_client.close()
        if args.keep or code:
            print(f"node work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
