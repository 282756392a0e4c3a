#!/usr/bin/env python3
"""Per-request costs side by side with their baselines (issue 12), as ratios.

One real node (``motey run``, open mode, no broker, on a loopback address) and:

* **node-to-node**: the capability request and image status requests (of an image the
  node runs, and of one it never ran) through Motey's own client (``ZeroMQNodeClient``:
  pooled REQ socket, reply decoded and validated), one after another for ``--seconds``
  each, in quarter-second turns with raw pyzmq REQ/REP (a REP server in its own process
  answering the same bytes the node answered), so the shared machine's load changes hit
  both alike; ``--secure``: a secure node (CURVE) against raw CURVE REQ/REP;
* **REST**: ``GET /v1/service`` with 0 and with ``--services`` stored services (each
  waits for a capability no node has, so no container is started; measured once the
  list has stopped changing), with ``wrk`` (8 connections, 2 threads) for ``--seconds``;
  against Flask on cheroot (8 threads) returning the same body from memory, and bare
  cheroot returning it. The three take turns for ``--rounds`` rounds; each figure is
  the median. ``--secure`` measures a secure node too (HTTPS, bearer token) against the
  same baselines over HTTPS with the node's certificate; ``--rest-only`` skips the
  node-to-node part.

Run it with ``PYTHONPATH=<source tree>`` to measure another version of Motey (the
client and the node both come from there; the script prints which). Every process it
starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))  # tests.helpers; motey itself may come from PYTHONPATH

import zmq  # noqa: E402

import motey  # noqa: E402
from motey.communication.zeromq_client import ZeroMQNodeClient  # noqa: E402
from motey.models.image import Image  # noqa: E402
from motey.models.node import Node  # noqa: E402
from motey.security.credentials import load_credentials  # noqa: E402
from tests.helpers import MoteyNode, free_port, next_loopback, unique_name  # noqa: E402

REP_SERVER = textwrap.dedent(
    """
    import sys, zmq
    ctx = zmq.Context(); sock = ctx.socket(zmq.REP)
    if sys.argv[3]:  # CURVE server with this secret key
        sock.curve_server = True; sock.curve_secretkey = sys.argv[3].encode()
    sock.bind(sys.argv[1])
    reply = open(sys.argv[2], "rb").read()
    while True:
        sock.recv(); sock.send(reply)
    """
)

HTTP_SERVER = textwrap.dedent(
    """
    import sys
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter
    body = open(sys.argv[3], "rb").read()
    if sys.argv[4] == "flask":
        from flask import Flask, Response
        app = Flask("baseline")
        @app.get("/v1/service")
        def listing():
            return Response(body, mimetype="application/json")
    else:
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
    server = wsgi.Server((sys.argv[1], int(sys.argv[2])), app, numthreads=8)
    server.error_log = lambda *a, **k: None  # wrk's TLS disconnects at its end; as the node
    if len(sys.argv) > 5:  # certificate and key: HTTPS, as a secure node serves
        server.ssl_adapter = BuiltinSSLAdapter(sys.argv[5], sys.argv[6])
    server.safe_start()
    """
)


def rate(call: Any, seconds: float) -> float:
    """Calls per second of ``call`` one after another for ``seconds``."""
    for _ in range(50):
        call()
    count = 0
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        call()
        count += 1
    return count / (time.monotonic() - began)


def wrk(url: str, seconds: float, token: str | None = None) -> float:
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    done = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds:g}s", *auth, url],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


def spawn(code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code, *args])


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_listening(ip: str, port: int) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {ip}:{port}")


def interleaved(calls: dict[str, Any], seconds: float, slice_s: float = 0.25) -> dict[str, float]:
    """Calls per second of each of ``calls``, run in turns of ``slice_s`` for ``seconds``
    each: a change of the machine's load (it is shared) then hits all of them alike, so
    their ratios hold even when the absolute rates move."""
    counts = dict.fromkeys(calls, 0)
    spent = dict.fromkeys(calls, 0.0)
    for call in calls.values():
        for _ in range(50):
            call()
    while min(spent.values()) < seconds:
        for name, call in calls.items():
            count = 0
            began = time.monotonic()
            while time.monotonic() - began < slice_s:
                call()
                count += 1
            spent[name] += time.monotonic() - began
            counts[name] += count
    return {name: counts[name] / spent[name] for name in calls}


def node_to_node(node: MoteyNode, tmp: Path, seconds: float) -> dict[str, Any]:
    """Motey's client against the node, in turns with raw REQ/REP answering the same bytes.

    Status is asked for an image the node runs (a busybox container it started for the
    benchmark, what an owner's watcher asks about) and for one it never ran. Over CURVE
    (a secure node) the baseline is raw CURVE REQ/REP with the same keys.
    """
    ctx = zmq.Context()
    credentials = None
    if node.secure:  # the node's own member credentials: its repliers admit its own key
        credentials = load_credentials(
            {"GENERAL": {}, "NODE": {"name": node.name, "ip": node.ip},
             "SECURITY": {"credentials": str(node.dir / "credentials")}}
        )  # fmt: skip
    client = ZeroMQNodeClient(ctx, request_timeout=5, action_timeout=60, credentials=credentials)
    client.start()
    peer = Node(
        ip=node.ip,
        id=node.node_id,
        version="bench",
        curve_key=credentials.curve_public if credentials else None,
    )
    running = Image(
        id=str(uuid.uuid4()),
        name="motey-test/busybox:latest",
        parameters={"command": "sleep 3600", "network_mode": "none"},
        node=node.ip,
    )
    unknown = Image(id="00000000-0000-4000-8000-000000000000", name="busybox", node=node.ip)
    results: dict[str, Any] = {"secure": node.secure}
    server = None
    try:
        running.instance_id = client.deploy_image(peer, running)
        state = client.image_status(peer, running).state.value
        assert state == "RUNNING", state
        # the baseline answers what the node answered, byte for byte
        raw = ctx.socket(zmq.REQ)
        secret = ""
        if credentials is not None:
            secret = credentials.curve_secret
            raw.curve_serverkey = credentials.curve_public.encode()
            raw.curve_publickey = credentials.curve_public.encode()
            raw.curve_secretkey = credentials.curve_secret.encode()
        raw.connect(f"tcp://{node.ip}:{peer.ports['capabilities_replier']}")
        raw.send(b'{"version": 2}')
        reply_file = tmp / "reply.bin"
        reply_file.write_bytes(raw.recv())
        raw.close(linger=0)
        results["reply_bytes"] = reply_file.stat().st_size
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        server = spawn(REP_SERVER, endpoint, str(reply_file), secret)
        sock = ctx.socket(zmq.REQ)
        if credentials is not None:  # raw CURVE: the same keys, no ZAP (handshake only)
            sock.curve_serverkey = credentials.curve_public.encode()
            sock.curve_publickey = credentials.curve_public.encode()
            sock.curve_secretkey = credentials.curve_secret.encode()
        sock.connect(endpoint)

        def raw_call() -> None:
            sock.send(b'{"version": 2}')
            sock.recv()

        time.sleep(1.0)  # Docker settles after the start
        rates = interleaved(
            {
                "capability_req_s": lambda: client.describe(peer),
                "raw_reqrep_req_s": raw_call,
                "status_req_s": lambda: client.image_status(peer, running),
                "status_unknown_req_s": lambda: client.image_status(peer, unknown),
            },
            seconds,
        )
        results.update(rates)
        sock.close(linger=0)
    finally:
        if server is not None:
            stop(server)
        if running.instance_id:
            client.terminate_image(peer, running)
        client.stop()
        ctx.destroy(linger=0)
    for key in ("capability", "status", "status_unknown"):
        results[f"{key}_ratio"] = results[f"{key}_req_s"] / results["raw_reqrep_req_s"]
    return results


def settled_listing(node: MoteyNode, quiet: float = 1.0, timeout: float = 30.0) -> bytes:
    """The list once it has not changed for ``quiet`` seconds.

    Right after the posts the node is still placing the new services (each write moves
    the list); measured then, Motey would re-render while the baselines serve one body.
    """
    body = node.get("/v1/service").content
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet)
        again = node.get("/v1/service").content
        if again == body:
            return body
        body = again
    raise AssertionError(f"the service list still changes after {timeout} s")


def rest(
    node: MoteyNode, tmp: Path, services: int, seconds: float, rounds: int = 3
) -> dict[str, Any]:
    """``GET /v1/service`` against Flask and bare cheroot serving the node's own body.

    A secure node is measured over HTTPS with its bearer token, the baselines over
    HTTPS with the node's certificate. Motey and the two baselines take turns for
    ``rounds`` rounds (all three servers up throughout); each figure is the median.
    """
    tls: list[str] = []
    if node.secure:
        tls = [str(node.dir / "credentials" / name) for name in ("node.crt", "node.key")]
    scheme = "https" if tls else "http"
    results: dict[str, Any] = {"secure": node.secure}
    for count in (0, services):
        have = len(node.get("/v1/service").json())
        for _ in range(count - have):
            text = (
                f"service_name: {unique_name('bench')}\nimages:\n  - name: busybox\n"
                "    capabilities: [nobody-has-this]\n"
            )
            assert node.post_yaml(text).status_code == 201
        body = settled_listing(node)
        (tmp / "body.json").write_bytes(body)
        row: dict[str, Any] = {"services": count, "body_bytes": len(body)}
        urls = {"motey": f"{node.url}/v1/service"}
        servers = []
        try:
            for kind in ("flask", "cheroot"):
                ip, port = "127.0.0.1", free_port()
                servers.append(
                    spawn(HTTP_SERVER, ip, str(port), str(tmp / "body.json"), kind, *tls)
                )
                wait_listening(ip, port)
                urls[kind] = f"{scheme}://{ip}:{port}/v1/service"
            runs: dict[str, list[float]] = {kind: [] for kind in urls}
            for _ in range(rounds):
                for kind, url in urls.items():
                    token = node.token if kind == "motey" else None
                    runs[kind].append(wrk(url, seconds, token))
        finally:
            for server in servers:
                stop(server)
        for kind, figures in runs.items():
            row[f"{kind}_req_s"] = statistics.median(figures)
            row[f"{kind}_runs"] = figures
        row["ratio_to_flask"] = row["motey_req_s"] / row["flask_req_s"]
        row["ratio_to_cheroot"] = row["motey_req_s"] / row["cheroot_req_s"]
        results[f"services_{count}"] = row
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--label", default="after")
    parser.add_argument("--json", help="append the results to this JSON file")
    parser.add_argument(
        "--only", choices=("node", "rest"), help="run only the node-to-node or the REST part"
    )
    parser.add_argument("--rest-only", action="store_true", help="the same as --only rest")
    parser.add_argument("--rounds", type=int, default=3, help="REST: rounds of Motey/Flask/cheroot")
    parser.add_argument(
        "--secure",
        action="store_true",
        help="node-to-node over CURVE (a secure node of a test cell) against raw CURVE "
        "REQ/REP; REST: also a secure node (HTTPS, bearer token) against HTTPS baselines",
    )
    args = parser.parse_args()
    if args.rest_only:
        args.only = "rest"
    results: dict[str, Any] = {
        "label": args.label + (" secure" if args.secure else ""),
        "motey": str(Path(motey.__file__).parent),
        "load_before": os.getloadavg(),
    }
    print("motey from", results["motey"], flush=True)
    with tempfile.TemporaryDirectory(prefix="motey-requests-") as tmp:
        if args.only != "rest":
            node = MoteyNode(
                Path(tmp),
                ip=next_loopback(),
                extra={
                    "SECURITY": {"mode": "secure" if args.secure else "open"},
                    "LOGGER": {"level": "INFO"},
                },
            ).start()
            try:
                results["node_to_node"] = node_to_node(node, Path(tmp), args.seconds)
                print(json.dumps(results["node_to_node"]), flush=True)
            finally:
                node.stop()
        if args.only != "node":
            node = MoteyNode(
                Path(tmp),
                ip=next_loopback(),
                extra={"SECURITY": {"mode": "open"}, "LOGGER": {"level": "INFO"}},
            ).start()
            try:
                results["rest"] = rest(node, Path(tmp), args.services, args.seconds, args.rounds)
                print(json.dumps(results["rest"]), flush=True)
            finally:
                node.stop()
            if args.secure:
                node = MoteyNode(Path(tmp), ip=next_loopback(), extra={"LOGGER": {"level": "INFO"}})
                try:
                    node.start()
                    results["rest_secure"] = rest(
                        node, Path(tmp), args.services, args.seconds, args.rounds
                    )
                    print(json.dumps(results["rest_secure"]), flush=True)
                finally:
                    node.stop()
    results["load_after"] = os.getloadavg()
    if args.json:
        path = Path(args.json)
        existing = json.loads(path.read_text()) if path.exists() else []
        existing.append(results)
        path.write_text(json.dumps(existing, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
