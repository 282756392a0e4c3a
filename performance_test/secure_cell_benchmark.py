#!/usr/bin/env python3
"""Secure cell versus open mode: what TLS and CURVE cost a real two-node cluster.

For each mode (``open``: plain MQTT, ZeroMQ and HTTP; ``secure``: a cell made by the real
``motey cell`` code, TLS broker with the generated config, CURVE, HTTPS with a token) the
script starts a Mosquitto broker and two ``motey run`` processes on loopback addresses
(A without capabilities, B with ``camera``) and measures

* **deploy → RUNNING, remote**: a blueprint whose image needs ``camera`` is posted to A,
  which places it on B over ZeroMQ; the time from the POST until ``GET /v1/service/<id>``
  on A says ``RUNNING`` (polled every 20 ms), ``--services`` times one after another;
* **node-to-node request rate**: Motey's own ``ZeroMQNodeClient`` with A's credentials
  asks B for its capabilities for ``--seconds`` seconds, from 1 and from 4 threads;
* **REST latency**: ``GET /v1/node`` on A through one keep-alive session.

Every container labelled with B's node id is removed at the end; nodes and broker are
stopped by their PIDs. Traffic goes to loopback addresses only.
"""

from __future__ import annotations

import argparse
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from motey.communication.zeromq_client import ZeroMQNodeClient  # noqa: E402
from motey.models.node import Node  # noqa: E402
from motey.security.cell import Cell, broker_config  # noqa: E402
from motey.security.credentials import load_credentials  # noqa: E402

IMAGE = "motey-test/busybox:latest"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


class Proc:
    """A subprocess stopped by its PID."""

    def __init__(self, args: list[str], cwd: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTEY_")}
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class Cluster:
    """A broker and nodes A and B in one mode."""

    def __init__(self, mode: str, workdir: Path, net: str) -> None:
        self.mode, self.workdir = mode, workdir
        self.broker_ip = f"{net}.254"
        self.port = free_port(self.broker_ip)
        self.procs: list[Proc] = []
        self.cell: Cell | None = None
        conf = workdir / "mosquitto.conf"
        if mode == "secure":
            self.cell, _token = Cell.init(workdir / "cell", broker=f"{self.broker_ip}:{self.port}")
            root = "user root\n" if os.geteuid() == 0 else ""
            conf.write_text(broker_config(self.cell.dir, self.broker_ip, self.port) + root)
        else:
            conf.write_text(
                f"listener {self.port} {self.broker_ip}\nallow_anonymous true\npersistence false\n"
            )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.procs.append(Proc([binary, "-c", str(conf)], workdir, workdir / "mosquitto.log"))
        self.nodes = {
            "A": self._node("bench-a", f"{net}.1", ""),
            "B": self._node("bench-b", f"{net}.2", "camera"),
        }

    def _node(self, name: str, ip: str, caps: str) -> dict[str, Any]:
        folder = self.workdir / name
        folder.mkdir()
        security = "mode = open"
        if self.cell is not None:
            self.cell.add_node(name, ip, out=folder / "credentials")
            security = "mode = secure\ncredentials = credentials"
        config = folder / "config.ini"
        config.write_text(
            f"[NODE]\nip = {ip}\nname = {name}\ncapabilities = {caps}\n"
            f"[DATABASE]\npath = db\n[LOGGER]\nlog_path = log\nlevel = WARNING\n"
            f"[GENERAL]\npid = motey.pid\n[MQTT]\nip = {self.broker_ip}\nport = {self.port}\n"
            f"[ZEROMQ]\ncapability_engine_ipc_path = {folder / 'ipc'}\n"
            f"[DOCKER]\npull_missing = false\nstop_timeout = 1\n[SECURITY]\n{security}\n"
        )
        self.procs.append(
            Proc(
                [sys.executable, "-m", "motey", "run", "--config", str(config)],
                folder,
                folder / "stdout.log",
            )
        )
        session = requests.Session()
        scheme = "http"
        if self.cell is not None:
            scheme = "https"
            session.trust_env = False  # else REQUESTS_CA_BUNDLE would replace the cell CA
            session.verify = str(self.cell.dir / "ca.crt")
            token = (self.cell.dir / "admin.token").read_text().strip()
            session.headers["Authorization"] = f"Bearer {token}"
        return {"name": name, "ip": ip, "url": f"{scheme}://{ip}:5023", "session": session,
                "config": config, "folder": folder}  # fmt: skip

    def get(self, key: str, path: str) -> Any:
        node = self.nodes[key]
        response = node["session"].get(node["url"] + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                peers = self.get("A", "/v1/nodes")
                if len(peers) == 2 and all(p["lifecycle"] == "OPERATE" for p in peers):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.mode} cluster did not come up; see {self.workdir}")

    def node_id(self, key: str) -> str:
        return (self.nodes[key]["folder"] / "db" / "node_id").read_text().strip()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def deploy_to_running(cluster: Cluster, count: int) -> list[float]:
    a = cluster.nodes["A"]
    blueprint = (
        f"service_name: bench\nimages:\n  - name: {IMAGE}\n    capabilities: [camera]\n"
        "    parameters: {command: [sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]}\n"
    )
    times = []
    for _ in range(count):
        started = time.perf_counter()
        r = a["session"].post(
            a["url"] + "/v1/service",
            data=blueprint.encode(),
            headers={"Content-Type": "application/x-yaml"},
            timeout=30,
        )
        if r.status_code != 201:
            raise SystemExit(f"POST answered {r.status_code} in {cluster.mode} mode: {r.text}")
        service_id = r.json()["id"]
        while True:
            state = cluster.get("A", f"/v1/service/{service_id}")["state"]
            if state == "RUNNING":
                times.append(time.perf_counter() - started)
                break
            if state == "ERROR" or time.perf_counter() - started > 60:
                raise SystemExit(f"service did not run in {cluster.mode} mode: {state}")
            time.sleep(0.02)
        a["session"].delete(f"{a['url']}/v1/service/{service_id}", timeout=30)
        while cluster.get("A", f"/v1/service/{service_id}")["state"] != "TERMINATED":
            time.sleep(0.05)
    return times


def request_rate(cluster: Cluster, seconds: float, threads: int) -> float:
    import zmq

    a = cluster.nodes["A"]
    credentials = None
    if cluster.mode == "secure":
        credentials = load_credentials(
            {"GENERAL": {}, "NODE": {"name": a["name"], "ip": a["ip"]},
             "SECURITY": {"credentials": str(a["folder"] / "credentials")}}
        )  # fmt: skip
    entry = next(p for p in cluster.get("A", "/v1/nodes") if p["ip"] == cluster.nodes["B"]["ip"])
    peer = Node.from_dict(entry)
    context = zmq.Context()
    client = ZeroMQNodeClient(context, request_timeout=5, credentials=credentials)
    client.start()
    counts = [0] * threads
    stop = threading.Event()

    def loop(i: int) -> None:
        while not stop.is_set():
            client.describe(peer)
            counts[i] += 1

    for _ in range(20):
        client.describe(peer)  # warm up: connections and handshakes
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(loop, i) for i in range(threads)]
        time.sleep(seconds)
        stop.set()
        for f in futures:
            f.result()
    client.stop()
    context.destroy(linger=0)
    return sum(counts) / seconds


def rest_latency(cluster: Cluster, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        cluster.get("A", "/v1/node")
        times.append(time.perf_counter() - started)
    return times


def remove_containers(node_id: str) -> None:
    import docker

    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"motey.node_id={node_id}"}):
        c.remove(force=True)
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10, help="remote deployments (10)")
    parser.add_argument("--seconds", type=float, default=5.0, help="request-rate window (5)")
    parser.add_argument("--net", default="127.0.98", help="loopback /24 to use (127.0.98)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--mode", dest="modes", action="append", choices=["open", "secure"])
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    print(f"load average before: {os.getloadavg()}")
    for mode in args.modes or ["open", "secure"]:
        workdir = Path(tempfile.mkdtemp(prefix=f"motey-bench-{mode}-"))
        cluster = Cluster(mode, workdir, args.net)
        done = False
        try:
            cluster.wait_ready()
            deploy = deploy_to_running(cluster, args.services)
            results[mode] = {
                "deploy_to_running_s": deploy,
                "rate_1": request_rate(cluster, args.seconds, 1),
                "rate_4": request_rate(cluster, args.seconds, 4),
                "rest_get_s": rest_latency(cluster, 200),
            }
            done = True
        finally:
            b_id = cluster.node_id("B") if (cluster.nodes["B"]["folder"] / "db").exists() else None
            cluster.stop()
            if b_id:
                remove_containers(b_id)
            if done:
                shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}\n")

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:.1f}"

    if set(results) != {"open", "secure"}:
        print(json.dumps(results, indent=1))
        return 0
    o, s = results["open"], results["secure"]
    rows = [
        ("deploy → RUNNING, remote, p50 ms", ms(o["deploy_to_running_s"], 50),
         ms(s["deploy_to_running_s"], 50)),
        ("deploy → RUNNING, remote, p95 ms", ms(o["deploy_to_running_s"], 95),
         ms(s["deploy_to_running_s"], 95)),
        ("node-to-node requests/s, 1 thread", f"{o['rate_1']:.0f}", f"{s['rate_1']:.0f}"),
        ("node-to-node requests/s, 4 threads", f"{o['rate_4']:.0f}", f"{s['rate_4']:.0f}"),
        ("REST GET /v1/node p50 ms (keep-alive)", ms(o["rest_get_s"], 50),
         ms(s["rest_get_s"], 50)),
    ]  # fmt: skip
    print("| measure | open | secure |\n| --- | ---: | ---: |")
    for label, open_value, secure_value in rows:
        print(f"| {label} | {open_value} | {secure_value} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
