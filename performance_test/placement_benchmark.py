#!/usr/bin/env python3
"""Motey's own placement rate when the engine is not the limit (issue 12), in-process.

``cluster_benchmark.py --images`` places 1,000 images on 100 real nodes, but there the
Docker engine starts only 4.5-6.8 containers a second on this 2-core machine, so Motey's
own rate cannot show. This benchmark runs the orchestrator of one node in this process
with the test suite's rig (``tests/fakes.py``):

* **real**: the ``ServiceRepository`` / ``NodeRepository`` on disk (atomic writes with
  fsync), the blueprint's YAML parsing and schema check (``submit_blueprint``, the call
  the REST view makes), validation, the placement (one capability round per service,
  reservations, rotation), the deploy jobs and their worker pools, the service writes;
* **faked**: the peers (``FakePeer`` / ``FakeRemote``: a node-to-node request is a
  function call, no ZeroMQ, no serialisation, no other process) and their engines
  (``FakeEngine``: an instance is a dict entry; with ``--start-ms`` each start sleeps
  that long and, like a real node's deploy replier, each peer starts one image at a time).
  The watcher does not run (its interval is an hour), nor HTTP, MQTT or discovery.

``--peers`` fake peers (default 100), the first ``--qualified`` (5) with ``bench``; the
local node lacks it. ``--images`` images (1,000) in services of 4, each image needing
``bench``, submitted by 8 threads; the run ends when every service is RUNNING or ERROR.
For each ``--start-ms`` (default 0 and 200, the real engine's sequential start time) a
fresh orchestrator on a fresh folder prints: images placed (a node chosen and stored) and
running (stored RUNNING) per second from the first submit, errors, images per qualifying
peer and max / mean, and, with a start delay, the ideal rate for it (qualifying peers
starting side by side, each one at a time, at most ``--workers`` at once) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import logbook  # noqa: E402

from motey.models.image import Image, ImageState  # noqa: E402
from motey.models.service import Service, ServiceState  # noqa: E402
from tests.fakes import FakeEngine, FakePeer, Rig, build  # noqa: E402

CAPABILITY = "bench"


class SerialEngine(FakeEngine):
    """A fake engine that starts one image at a time, as a real node's deploy replier."""

    def __init__(self, start_delay: float) -> None:
        super().__init__()
        self.start_delay = start_delay
        self._serial = threading.Lock()

    def instantiate(self, image: Image, labels: dict[str, str]) -> str:
        with self._serial:
            return super().instantiate(image, labels)


def blueprint_yaml(index: int) -> str:
    """A service of four images that each need ``bench``, as an operator would post it."""
    image = f"  - name: busybox\n    engine: fake\n    capabilities: [{CAPABILITY}]\n"
    return f"service_name: bench-{index}\nimages:\n" + image * 4


def run(args: argparse.Namespace, start_ms: float, folder: Path) -> dict[str, Any]:
    """One burst on a fresh orchestrator; the figures of ``cluster_benchmark``'s bulk."""
    rig: Rig = build(
        folder, capabilities=[], workers=args.workers, placement_timeout=5.0, request_timeout=5.0
    )
    qualified: list[FakePeer] = []
    try:
        for i in range(args.peers):
            caps = [CAPABILITY] if i < args.qualified else []
            peer = FakePeer(
                f"127.{20 + i // 250}.{i % 250}.1",
                capabilities=caps,
                engine=SerialEngine(start_ms / 1000),
            )
            rig.add_peer(peer)
            if caps:
                qualified.append(peer)
        placed_at: dict[str, float] = {}
        running_at: dict[str, float] = {}
        stamps = threading.Lock()
        began = 0.0
        update = rig.orchestrator.book._services.update

        def stored(service: Service) -> None:
            # Times are taken when the write returns, as the REST listing would show them.
            update(service)
            now = time.monotonic() - began
            with stamps:
                for image in service.images:
                    if image.node:
                        placed_at.setdefault(image.id, now)
                    if image.state is ImageState.RUNNING:
                        running_at.setdefault(image.id, now)

        rig.orchestrator.book._services.update = stored  # type: ignore[method-assign]
        services = args.images // 4
        submit_errors: list[str] = []

        def submit(index: int) -> str | None:
            try:
                return rig.orchestrator.submit_blueprint(blueprint_yaml(index)).id
            except Exception as exc:  # counted, not raised: the figure is the error count
                submit_errors.append(repr(exc))
                return None

        load_before = os.getloadavg()
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = [i for i in pool.map(submit, range(services)) if i]
        posted_s = time.monotonic() - began
        deadline = time.monotonic() + args.timeout
        final: list[Service] = []
        while time.monotonic() < deadline:
            final = [rig.orchestrator.get_service(i) for i in ids]
            if all(s.state in (ServiceState.RUNNING, ServiceState.ERROR) for s in final):
                break
            time.sleep(0.02)
        load_after = os.getloadavg()
        per_peer = {p.ip: 0 for p in qualified}
        errors = 4 * len(submit_errors)
        for service in final:
            for image in service.images:
                if image.state is ImageState.RUNNING and image.node in per_peer:
                    per_peer[image.node] += 1
                else:
                    errors += 1
        started = sum(len(p.engine.running()) for p in qualified)
        running = sum(per_peer.values())
        mean = running / len(per_peer) if per_peer else 0.0

        def rate(done: dict[str, float]) -> float | None:
            return len(done) / max(done.values()) if done else None

        result: dict[str, Any] = {
            "start_ms": start_ms,
            "images": 4 * services,
            "posted_s": posted_s,
            "placed": len(placed_at),
            "placed_per_s": rate(placed_at),
            "running": running,
            "running_per_s": rate(running_at),
            "seconds": max(running_at.values()) if running_at else None,
            "errors": errors,
            "submit_errors": submit_errors[:5],
            "instances_on_engines": started,
            "per_peer": sorted(per_peer.values(), reverse=True),
            "max_over_mean": max(per_peer.values()) / mean if mean else None,
            "most_starts_at_once_on_a_peer": max(p.engine.max_active for p in qualified),
            "load_before": load_before,
            "load_after": load_after,
        }
        if start_ms > 0:
            ideal = min(len(qualified), args.workers) / (start_ms / 1000)
            result["ideal_per_s"] = ideal
            result["running_over_ideal"] = (result["running_per_s"] or 0) / ideal
        return result
    finally:
        rig.close()


def show(result: dict[str, Any]) -> None:
    def num(value: float | None, fmt: str = ".1f") -> str:
        return "-" if value is None else format(value, fmt)

    print(f"\nstart delay {result['start_ms']:g} ms per image (each peer one at a time)")
    print(f"  images running / errors        {result['running']} / {result['errors']}")
    print(f"  submits of the services done   {result['posted_s']:.2f} s (8 threads)")
    print(f"  placed per second              {num(result['placed_per_s'])}")
    print(
        f"  running per second             {num(result['running_per_s'])}"
        f" (all after {num(result['seconds'], '.2f')} s)"
    )
    if "ideal_per_s" in result:
        print(
            f"  ideal for this delay           {result['ideal_per_s']:.1f} /s"
            f" -> ratio {result['running_over_ideal']:.2f}"
        )
    print(
        f"  images per qualifying peer     {' / '.join(map(str, result['per_peer']))}"
        f" (max / mean {num(result['max_over_mean'], '.2f')})"
    )
    print(
        "  load average before / after    "
        f"{result['load_before'][0]:.2f} / {result['load_after'][0]:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--peers", type=int, default=100, help="fake peers (default 100)")
    parser.add_argument("--qualified", type=int, default=5, help="peers with bench (5)")
    parser.add_argument("--images", type=int, default=1000, help="images, services of 4")
    parser.add_argument(
        "--workers", type=int, default=10, help="[ORCHESTRATOR] workers (10, as the cell's)"
    )
    parser.add_argument(
        "--start-ms",
        type=float,
        nargs="+",
        default=[0.0, 200.0],
        help="one run per value: each fake start takes this long (default 0 200)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args()
    # As the cell's nodes in cluster_benchmark --images: warnings only (a line per image
    # would be load of its own).
    logbook.NullHandler().push_application()
    logbook.StderrHandler(level="WARNING", bubble=False).push_application()
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "runs": [],
    }
    print(
        f"{args.peers} fake peers ({args.qualified} with {CAPABILITY}), {args.images} images"
        f" in services of 4, workers {args.workers}; load average"
        f" {results['load_before'][0]:.2f}"
    )
    for start_ms in args.start_ms:
        with tempfile.TemporaryDirectory(prefix="motey-placement-") as tmp:
            result = run(args, start_ms, Path(tmp))
        results["runs"].append(result)
        show(result)
    results["load_after"] = os.getloadavg()
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in results['load_after'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["errors"] for r in results["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
