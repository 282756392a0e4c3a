#!/usr/bin/env python3
"""Re-run the thesis' HTTP / MQTT / ZeroMQ comparison on this machine, over loopback only.

The thesis (appendix A.1) sent 10,000 messages between two Raspberry Pis (a Pi 2 and a
Pi 3 on 100 Mbit/s Ethernet, the MQTT broker on a laptop over WiFi) and timed the lot:

* HTTP request/reply to a Flask app,
* MQTT publish → receive through a broker at QoS 0, 1 and 2,
* ZeroMQ REQ/REP with one constant connection, and with a new connection per message.

This script does the same with the libraries Motey uses today, each server in its own
process (so that client and server, like on two Pis, do not share one interpreter):

* HTTP: a Flask app on cheroot (Motey's production WSGI server), called with
  ``requests`` through one keep-alive session and with a new connection per request;
* MQTT: a real Mosquitto started here on 127.0.0.1 and a free port, a paho-mqtt 2.x
  publisher in this process and a paho-mqtt subscriber in another; the time runs from
  the first publish until the subscriber has received the last message;
* ZeroMQ: a REP socket in another process; a REQ client with one constant connection,
  and with a new REQ socket (new TCP connection) per message.

Every server echoes the message. All traffic stays on 127.0.0.1; every process started
here is stopped by its PID before the script exits.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"

#: The thesis' averages (appendix A.1): seconds per 10,000 messages, and where measured.
#: The first entry of each transport is the one this script compares against; the others
#: are listed in performance_test/README.md.
THESIS_SECONDS_PER_10K: dict[str, tuple[float, str]] = {
    "http": (312.4218, "HTTP, server Pi 3 (BuffPi), client Pi 2 (NeoPi)"),
    "http_reverse": (211.5378, "HTTP, server Pi 2 (NeoPi), client Pi 3 (BuffPi)"),
    "mqtt_qos0": (5.4619, "MQTT QoS 0, broker laptop (WiFi), Pi 2 → Pi 3"),
    "mqtt_qos1": (9.2511, "MQTT QoS 1, broker laptop (WiFi), Pi 2 → Pi 3"),
    "mqtt_qos2": (13.3804, "MQTT QoS 2, broker laptop (WiFi), Pi 2 → Pi 3"),
    "zmq_cc": (10.6467, "ZeroMQ constant connection, server Pi 3, client Pi 2"),
    "zmq_cc_reverse": (10.7586, "ZeroMQ constant connection, server Pi 2, client Pi 3"),
    "zmq_new": (42.9651, "ZeroMQ new connection per message, server Pi 3, client Pi 2"),
    "zmq_new_reverse": (41.0006, "ZeroMQ new connection per message, server Pi 2, client Pi 3"),
}


def thesis_ms_per_message(key: str) -> float:
    """Milliseconds per message in the thesis for ``key`` of THESIS_SECONDS_PER_10K."""
    return THESIS_SECONDS_PER_10K[key][0] * 1000.0 / 10_000


@dataclass
class Result:
    """One transport variant: the wall time of each repetition for ``count`` messages."""

    transport: str
    variant: str
    count: int
    thesis_key: str
    runs: list[float] = field(default_factory=list)
    lost: int = 0
    note: str = ""

    @property
    def seconds(self) -> float:
        """Mean wall time of one repetition."""
        return statistics.fmean(self.runs) if self.runs else float("nan")

    @property
    def ms_per_message(self) -> float:
        return self.seconds * 1000.0 / self.count

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def thesis_ms(self) -> float:
        return thesis_ms_per_message(self.thesis_key)


# -- helpers ------------------------------------------------------------------------------


def _timed(
    result: Result, func: Callable[[int], object], count: int, repeat: int, warmup: int
) -> Result:
    """Warm up, then time ``repeat`` runs of ``func(count)`` into ``result``."""
    func(warmup)
    for _ in range(repeat):
        started = time.perf_counter()
        func(count)
        result.runs.append(time.perf_counter() - started)
    return result


def free_port(ip: str = LOOPBACK) -> int:
    """A TCP port on ``ip`` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def payload_bytes(size: int, seq: int, tag: str = "") -> bytes:
    """A JSON message of about ``size`` bytes carrying a run tag and a sequence number."""
    head = json.dumps({"tag": tag, "seq": seq, "data": ""}).encode()
    pad = max(0, size - len(head))
    return json.dumps({"tag": tag, "seq": seq, "data": "x" * pad}).encode()


def _stop_on_sigterm() -> threading.Event:
    """An event that SIGTERM sets, so that a child process can shut down cleanly."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    return stop


class Child:
    """A server or receiver in its own process (spawned), controlled over a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any, name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.name = name
        self.process = ctx.Process(target=target, args=(*args, child_conn), name=name)
        self.process.start()
        child_conn.close()

    def expect(self, what: str, timeout: float = 20.0) -> tuple[Any, ...]:
        """Wait for the next message from the child, which must start with ``what``."""
        if not self.conn.poll(timeout):
            raise RuntimeError(f"{self.name} (pid {self.process.pid}): no {what!r} in {timeout}s")
        message = self.conn.recv()
        if message[0] != what:
            raise RuntimeError(f"{self.name}: expected {what!r}, got {message!r}")
        return tuple(message)

    def stop(self) -> None:
        """Ask the child to stop; then SIGTERM and finally SIGKILL it by its PID."""
        if self.process.pid is None:
            return
        with suppress(OSError):
            self.conn.send(("stop",))
        self.process.join(5)
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.join(5)
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.join(5)
        self.conn.close()


def _wait_for_stop(conn: multiprocessing.connection.Connection, stop: threading.Event) -> None:
    """Block a child's main thread until the parent says stop or SIGTERM arrives."""
    while not stop.is_set():
        if conn.poll(0.25):
            try:
                if conn.recv()[0] == "stop":
                    return
            except EOFError:
                return


# -- HTTP ----------------------------------------------------------------------------------


def serve_http(
    ip: str, port: int, threads: int, conn: multiprocessing.connection.Connection
) -> None:
    """Child: a Flask app on cheroot that echoes each POSTed body, until told to stop."""
    from cheroot import wsgi
    from flask import Flask, Response, request

    stop = _stop_on_sigterm()
    app = Flask("transport_benchmark")

    @app.post("/message")
    def message() -> Response:
        return Response(request.get_data(), mimetype="application/json")

    server = wsgi.Server((ip, port), app, numthreads=threads)
    server.shutdown_timeout = 1
    server.prepare()
    thread = threading.Thread(target=server.serve, name="cheroot", daemon=True)
    thread.start()
    conn.send(("ready",))
    _wait_for_stop(conn, stop)
    server.stop()
    thread.join(5)


def run_http(count: int, repeat: int, warmup: int, size: int, threads: int) -> list[Result]:
    """HTTP request/reply: keep-alive session, new connection per request, stdlib client.

    ``requests`` (what Motey's scripts and the thesis' era used) costs about as much per
    call as Flask and cheroot together on loopback; the http.client variant shows how
    much of a round trip is left without it.
    """
    import requests

    port = free_port()
    url = f"http://{LOOPBACK}:{port}/message"
    server = Child(serve_http, LOOPBACK, port, threads, name="http-server")
    results = []
    try:
        server.expect("ready")
        headers = {"Content-Type": "application/json"}

        def keep_alive(n: int) -> None:
            with requests.Session() as session:
                for i in range(n):
                    r = session.post(url, data=payload_bytes(size, i), headers=headers, timeout=10)
                    r.raise_for_status()

        def new_connection(n: int) -> None:
            for i in range(n):
                # requests.post opens a session (and so a TCP connection) per call.
                r = requests.post(url, data=payload_bytes(size, i), headers=headers, timeout=10)
                r.raise_for_status()

        def stdlib_keep_alive(n: int) -> None:
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
            try:
                for i in range(n):
                    conn.request("POST", "/message", payload_bytes(size, i), headers)
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}")
            finally:
                conn.close()

        for variant, func, note in (
            ("keep-alive session", keep_alive, "requests.Session: one TCP connection"),
            ("new connection", new_connection, "requests.post: TCP connect + close per request"),
            ("keep-alive http.client", stdlib_keep_alive, "stdlib client: the server's share"),
        ):
            result = Result("HTTP", variant, count, "http", note=note)
            results.append(_timed(result, func, count, repeat, warmup))
    finally:
        server.stop()
    return results


# -- MQTT ----------------------------------------------------------------------------------


@contextmanager
def mosquitto(binary: str, workdir: Path) -> Iterator[int]:
    """A Mosquitto broker on 127.0.0.1 and a free port, stopped by its PID on exit."""
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {LOOPBACK}\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
        # No cap on queued QoS 1/2 messages per client: a burst of --count messages must
        # not be dropped by the broker, or the run would measure losses, not transport.
        "max_queued_messages 0\n"
    )
    log_path = workdir / "mosquitto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {log_path.read_text(errors='replace')}")
            try:
                with socket.create_connection((LOOPBACK, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not listen within 10 s") from None
                time.sleep(0.05)
        yield port
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)


def receive_mqtt(
    ip: str, port: int, topic: str, qos: int, conn: multiprocessing.connection.Connection
) -> None:
    """Child: subscribe at ``qos``, count messages of the armed run, report when complete."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    stop = _stop_on_sigterm()
    lock = threading.Lock()
    state: dict[str, Any] = {"tag": None, "expected": 0, "received": 0}
    subscribed = threading.Event()
    send_lock = threading.Lock()

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(topic, qos=qos)

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with lock:
            tag = state["tag"]
            if tag is None or not msg.payload.startswith(tag):
                return
            state["received"] += 1
            complete = state["received"] == state["expected"]
        if complete:
            with send_lock:
                conn.send(("done", state["received"]))

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-recv-{os.getpid()}", clean_session=True
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(ip, port, keepalive=60)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            conn.send(("error", "no SUBACK within 10 s"))
            return
        conn.send(("ready",))
        while not stop.is_set():
            if not conn.poll(0.25):
                continue
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] == "stop":
                return
            if message[0] == "expect":
                with lock:
                    state.update(tag=message[1].encode(), expected=message[2], received=0)
                with send_lock:
                    conn.send(("armed",))
            elif message[0] == "status":
                with lock, send_lock:
                    conn.send(("status", state["received"]))
    finally:
        client.disconnect()
        client.loop_stop()


def _tag_prefix(tag: str) -> str:
    """The leading bytes every payload of run ``tag`` starts with (see payload_bytes)."""
    return json.dumps({"tag": tag})[:-1]


def run_mqtt(
    count: int, repeat: int, warmup: int, size: int, binary: str, workdir: Path
) -> list[Result]:
    """MQTT publish → receive through Mosquitto at QoS 0, 1 and 2."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    results = []
    with mosquitto(binary, workdir) as port:
        connected = threading.Event()
        publisher = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", clean_session=True
        )
        publisher.on_connect = lambda *_: connected.set()
        publisher.connect(LOOPBACK, port, keepalive=60)
        publisher.loop_start()
        try:
            if not connected.wait(10):
                raise RuntimeError("publisher could not connect to mosquitto")
            for qos in (0, 1, 2):
                topic = f"motey/benchmark/qos{qos}"
                receiver = Child(receive_mqtt, LOOPBACK, port, topic, qos, name=f"mqtt-recv-{qos}")
                try:
                    receiver.expect("ready")
                    result = Result("MQTT", f"QoS {qos}", count, f"mqtt_qos{qos}")
                    result.note = "publish → received by a subscriber in another process"
                    runs = [("warmup", warmup)] + [(f"r{i}", count) for i in range(repeat)]
                    for tag, n in runs:
                        elapsed, got = _mqtt_run(publisher, receiver, topic, qos, tag, n, size)
                        if tag != "warmup":
                            result.lost += n - got
                            result.runs.append(elapsed)
                    results.append(result)
                finally:
                    receiver.stop()
        finally:
            publisher.disconnect()
            publisher.loop_stop()
    return results


def _mqtt_run(
    publisher: Any, receiver: Child, topic: str, qos: int, tag: str, n: int, size: int
) -> tuple[float, int]:
    """Publish ``n`` messages; return the seconds until the last arrived, and how many did."""
    receiver.conn.send(("expect", _tag_prefix(tag), n))
    receiver.expect("armed")
    payloads = [payload_bytes(size, i, tag) for i in range(n)]
    budget = max(30.0, n * 0.02)
    started = time.perf_counter()
    for data in payloads:
        info = publisher.publish(topic, data, qos=qos)
        if info.rc != 0:
            raise RuntimeError(f"publish failed with rc {info.rc}")
    if receiver.conn.poll(budget):
        _, got = receiver.conn.recv()
        return time.perf_counter() - started, got
    elapsed = time.perf_counter() - started
    receiver.conn.send(("status",))
    _, got = receiver.expect("status")
    print(f"  MQTT QoS {qos}: only {got} of {n} messages arrived within {budget:.0f} s")
    return elapsed, got


# -- ZeroMQ --------------------------------------------------------------------------------


def serve_zmq(ip: str, port: int, conn: multiprocessing.connection.Connection) -> None:
    """Child: a REP socket that echoes every request, polling like Motey's servers do."""
    import zmq

    stop = _stop_on_sigterm()
    context = zmq.Context()
    sock = context.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(f"tcp://{ip}:{port}")
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(conn.fileno(), zmq.POLLIN)
    conn.send(("ready",))
    try:
        while not stop.is_set():
            events = dict(poller.poll(250))
            if sock in events:
                sock.send(sock.recv())
            if conn.fileno() in events:
                try:
                    if conn.recv()[0] == "stop":
                        return
                except EOFError:
                    return
    finally:
        sock.close(0)
        context.term()


def run_zmq(count: int, repeat: int, warmup: int, size: int) -> list[Result]:
    """ZeroMQ REQ/REP: one constant connection, and a new REQ socket per message."""
    import zmq

    port = free_port()
    endpoint = f"tcp://{LOOPBACK}:{port}"
    server = Child(serve_zmq, LOOPBACK, port, name="zmq-server")
    context = zmq.Context()
    results = []

    def new_req() -> zmq.Socket:
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 5000)  # a client never waits forever
        sock.connect(endpoint)
        return sock

    def constant(n: int) -> None:
        sock = new_req()
        try:
            for i in range(n):
                sock.send(payload_bytes(size, i))
                sock.recv()
        finally:
            sock.close(0)

    def new_socket(n: int) -> None:
        for i in range(n):
            sock = new_req()
            try:
                sock.send(payload_bytes(size, i))
                sock.recv()
            finally:
                sock.close(0)

    try:
        server.expect("ready")
        for variant, func, key, note in (
            ("constant connection", constant, "zmq_cc", "one REQ socket for all messages"),
            ("new connection", new_socket, "zmq_new", "new REQ socket (TCP) per message"),
        ):
            result = Result("ZeroMQ", variant, count, key, note=note)
            results.append(_timed(result, func, count, repeat, warmup))
    finally:
        context.term()
        server.stop()
    return results


# -- report --------------------------------------------------------------------------------


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table with right-aligned numbers."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def results_table(results: list[Result]) -> str:
    """Transport, variant, count, seconds, ms/message, messages/s, and the thesis ratio."""
    headers = [
        "transport",
        "variant",
        "count",
        "total s",
        "ms/msg",
        "msg/s",
        "thesis ms/msg",
        "thesis÷here",
    ]
    rows = []
    for r in results:
        spread = f" ±{statistics.stdev(r.runs):.3f}" if len(r.runs) > 1 else ""
        rows.append(
            [
                r.transport,
                r.variant + (f" (LOST {r.lost})" if r.lost else ""),
                str(r.count),
                f"{r.seconds:.3f}{spread}",
                f"{r.ms_per_message:.3f}",
                f"{r.per_second:,.0f}",
                f"{r.thesis_ms:.3f}",
                f"{r.thesis_ms / r.ms_per_message:,.1f}×",
            ]
        )
    return format_table(headers, rows)


#: Pairs compared as in the thesis: (slower, faster, thesis key slower, thesis key faster).
PAIRS: list[tuple[tuple[str, str], tuple[str, str], str, str]] = [
    (("HTTP", "new connection"), ("ZeroMQ", "constant connection"), "http", "zmq_cc"),
    (("HTTP", "keep-alive session"), ("ZeroMQ", "constant connection"), "http", "zmq_cc"),
    (("ZeroMQ", "new connection"), ("ZeroMQ", "constant connection"), "zmq_new", "zmq_cc"),
    (("HTTP", "new connection"), ("ZeroMQ", "new connection"), "http", "zmq_new"),
    (("HTTP", "new connection"), ("MQTT", "QoS 0"), "http", "mqtt_qos0"),
    (("ZeroMQ", "constant connection"), ("MQTT", "QoS 0"), "zmq_cc", "mqtt_qos0"),
    (("MQTT", "QoS 1"), ("MQTT", "QoS 0"), "mqtt_qos1", "mqtt_qos0"),
    (("MQTT", "QoS 2"), ("MQTT", "QoS 0"), "mqtt_qos2", "mqtt_qos0"),
]


def ratio_table(results: list[Result]) -> str:
    """How many times slower one transport is than another, here and in the thesis."""
    by_name = {(r.transport, r.variant): r for r in results}
    rows = []
    for slow, fast, thesis_slow, thesis_fast in PAIRS:
        if slow not in by_name or fast not in by_name:
            continue
        here = by_name[slow].ms_per_message / by_name[fast].ms_per_message
        thesis = thesis_ms_per_message(thesis_slow) / thesis_ms_per_message(thesis_fast)
        rows.append([" ".join(slow), " ".join(fast), f"{here:.2f}×", f"{thesis:.2f}×"])
    if not rows:
        return "(run more than one transport to compare them)"
    return format_table(["this one …", "… is slower than this one by", "here", "thesis"], rows)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the selected transports, print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: python performance_test/transport_benchmark.py --count 10000 "
        "--repeat 1 (the thesis' message count; about a minute on 2 cores).",
    )
    parser.add_argument(
        "--count", type=int, default=2000, help="messages per run (default 2000; thesis 10000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per variant; the mean is shown (3)"
    )
    parser.add_argument(
        "--warmup", type=int, default=50, help="untimed messages before each variant (50)"
    )
    parser.add_argument("--size", type=int, default=64, help="payload bytes (default 64)")
    parser.add_argument(
        "--only",
        choices=["http", "mqtt", "zmq"],
        action="append",
        help="run only this transport (repeatable; default: all three)",
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="cheroot worker threads (8, as Motey's default)"
    )
    parser.add_argument(
        "--mosquitto",
        default=shutil.which("mosquitto") or "/usr/sbin/mosquitto",
        help="path of the mosquitto binary (default: %(default)s)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeat < 1 or args.warmup < 0 or args.size < 0:
        parser.error("--count and --repeat must be positive, --warmup and --size not negative")
    selected = args.only or ["http", "mqtt", "zmq"]
    if "mqtt" in selected and not os.access(args.mosquitto, os.X_OK):
        parser.error(f"mosquitto not found at {args.mosquitto} (apt-get install mosquitto)")

    print(
        f"transport benchmark: {args.count} messages × {args.repeat} runs, {args.size}-byte "
        f"payload, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, loopback only"
    )
    print("load average before the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    results: list[Result] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="motey-transport-bench-") as tmp:
        for name in selected:
            t0 = time.perf_counter()
            if name == "http":
                results += run_http(args.count, args.repeat, args.warmup, args.size, args.threads)
            elif name == "mqtt":
                results += run_mqtt(
                    args.count, args.repeat, args.warmup, args.size, args.mosquitto, Path(tmp)
                )
            else:
                results += run_zmq(args.count, args.repeat, args.warmup, args.size)
            print(f"  {name}: done in {time.perf_counter() - t0:.1f} s")
    print()
    print(results_table(results))
    print()
    print(
        "thesis÷here: how many times faster one message is here than in the thesis. The\n"
        "thesis ran between two Raspberry Pis (Pi 2 and Pi 3, 100 Mbit/s Ethernet; the MQTT\n"
        "broker on a laptop over WiFi) with 2017 library versions; this run is one machine\n"
        "over loopback. The ratio compares hardware + network + library versions, not code."
    )
    print()
    print(ratio_table(results))
    print()
    print(
        "The thesis did not say whether its HTTP client reused connections; Flask's\n"
        "development server of 2017 answered HTTP/1.0 and closed each connection, so its\n"
        "figure is closest to 'new connection'. MQTT is a one-way stream (publisher →\n"
        "broker → subscriber); HTTP and ZeroMQ are request/reply round trips."
    )
    print(f"\ntotal time {time.perf_counter() - started:.1f} s")
    print("load average after the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {**asdict(r), "seconds": r.seconds, "ms_per_message": r.ms_per_message}
                    for r in results
                ],
                indent=2,
            )
        )
    return 1 if any(r.lost for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
