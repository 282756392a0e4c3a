#!/usr/bin/env python3
"""What an idle node wakes up for: CPU and wakeups per thread (issue 12).

Starts a broker and ``--nodes`` idle nodes on loopback (open mode unless ``--secure``;
keepalive and presence interval 10 s, watch interval 2 s, as ``cluster_benchmark.py``),
waits until they operate, then measures for ``--seconds``:

* each node's CPU (% of one core, psutil) and voluntary context switches per second
  summed over its threads (each is one wakeup of a sleeping thread);
* for the second node, per thread: wakeups per second and CPU from
  ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds on a CPU), named by ``py-spy dump``
  when py-spy is installed (``pip install py-spy``; run as root).

A py-spy *recording* of an idle node mostly shows threads waiting (and py-spy's own
sampling wakes every thread it stops), so this counts from the kernel's figures instead.
Run it under the benchmark lock: ``flock /work/wt/bench.lock .venv/bin/python ...``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from tests.helpers import Mosquitto, MoteyNode  # noqa: E402

_VOLUNTARY = re.compile(r"voluntary_ctxt_switches:\s+(\d+)")


def threads(pid: int) -> dict[str, tuple[int, int]]:
    """Per thread id: (voluntary context switches, nanoseconds on a CPU)."""
    found: dict[str, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
            ns = int((task / "schedstat").read_text().split()[0])
        except OSError:
            continue
        match = _VOLUNTARY.search(status)
        found[task.name] = (int(match.group(1)) if match else 0, ns)
    return found


def names(pid: int) -> dict[str, str]:
    """Thread id -> Python thread name, from ``py-spy dump`` (empty without py-spy)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {}
    out = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
    return dict(re.findall(r'^Thread (\d+) \(\w+\): "([^"]+)"', out.stdout, re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--secure", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="motey-idle-"))
    broker = Mosquitto(work / "mosquitto", secure=args.secure).start()
    extra = {
        "SECURITY": {} if args.secure else {"mode": "open"},
        "LOGGER": {"level": "INFO"},
        "MQTT": {"keepalive": 10, "presence_interval": 10},
        "ORCHESTRATOR": {"watch_interval": 2},
    }
    mqtt = (broker.ip, broker.port)
    nodes = [MoteyNode(work, name=f"idle{i}", mqtt=mqtt, extra=extra) for i in range(args.nodes)]
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready(timeout=120)
        time.sleep(5)
        procs = [psutil.Process(n.process.pid) for n in nodes if n.process is not None]
        before = [(p.cpu_times(), threads(p.pid)) for p in procs]
        began = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - began
        after = [(p.cpu_times(), threads(p.pid)) for p in procs]
        for i, ((c0, t0), (c1, t1)) in enumerate(zip(before, after, strict=True)):
            cpu = 100 * ((c1.user + c1.system) - (c0.user + c0.system)) / wall
            per = {
                tid: ((t1[tid][0] - t0[tid][0]) / wall, (t1[tid][1] - t0[tid][1]) / 1e7 / wall)
                for tid in t1
                if tid in t0 and t1[tid] != t0[tid]
            }
            wakeups = sum(w for w, _ in per.values())
            print(f"node {i}: CPU {cpu:.3f} %, {wakeups:.1f} wakeups/s")
            if i == min(1, len(procs) - 1):
                named = names(procs[i].pid)
                for tid, (w, c) in sorted(per.items(), key=lambda kv: -kv[1][1]):
                    print(f"    {named.get(tid, tid):40} {w:6.2f}/s {c:8.4f} %")
    finally:
        for node in nodes:
            node.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
