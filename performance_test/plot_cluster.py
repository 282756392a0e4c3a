#!/usr/bin/env python3
"""Plot cluster_benchmark.py results: each figure against N, one line per run label.

    .venv/bin/python performance_test/plot_cluster.py performance_test/results/cluster.json \\
        docs/scale-cluster.png

Needs matplotlib (not a dependency of Motey: ``pip install matplotlib``). A later run
with the same label and N replaces an earlier one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES: list[tuple[str, str, Any]] = [
    ("idle CPU per node (%)", "cpu", lambda c: c["idle"]["cpu_per_node_mean"]),
    ("RSS per node (MiB)", "rss", lambda c: c["idle"]["rss_mib_mean"]),
    ("broker CPU (%)", "broker", lambda c: c["idle"]["broker_cpu"]),
    ("messages/s each node receives", "msgs", lambda c: c["idle"]["messages_per_s_per_subscriber"]),
    ("join seen by all (s)", "join", lambda c: c["join_s"]),
    ("kill -9 seen by all (s)", "crash", lambda c: c["crash_s"]),
    ("placement (images/s)", "place", lambda c: c["placement"]["images_per_s"]),
    ("placement spread (max / mean)", "spread", lambda c: c["placement"]["max_over_mean"]),
    ("shutdown, SIGTERM to exit (s)", "stop", lambda c: min(c["shutdown_s"])),
]


def series(runs: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    by_label: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        for cell in run["cells"]:
            by_label.setdefault(run["label"], {})[cell["nodes"]] = cell
    return by_label


def table(data: dict[str, dict[int, dict[str, Any]]]) -> str:
    """The figures as a Markdown table: one row per figure, one column per label and N."""
    columns = [(label, n) for label in sorted(data) for n in sorted(data[label])]
    head = "| figure | " + " | ".join(f"{label} {n}" for label, n in columns) + " |"
    rows = [head, "| --- |" + " ---: |" * len(columns)]
    for title, _key, value in FIGURES:
        cells = []
        for label, n in columns:
            try:
                y = value(data[label][n])
            except (KeyError, TypeError, ValueError):
                y = None
            cells.append("–" if y is None else f"{y:.3g}")
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    extra = [
        ("images per qualifying node", lambda c: "/".join(map(str, c["placement"]["per_node"]))),
        ("false silent alarms", lambda c: str(c["false_alarms"])),
        ("join seen by (nodes)", lambda c: f"{c['join_seen_by']}/{c['nodes']}"),
        ("join, last node's own event (s)", lambda c: f"{c['join_event_s']:.3f}"),
        ("kill -9, last node's own event (s)", lambda c: f"{c['crash_event_s']:.3f}"),
        ("load average after", lambda c: f"{c['load'][0]:.1f}"),
    ]
    for title, render in extra:
        cells = []
        for label, n in columns:
            try:
                cells.append(render(data[label][n]))
            except (KeyError, TypeError, ValueError):
                cells.append("–")
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    data = series(json.loads(source.read_text()))
    print(table(data))
    fig, axes = plt.subplots(3, 3, figsize=(13, 10))
    for ax, (title, _key, value) in zip(axes.flat, FIGURES, strict=True):
        for label, cells in sorted(data.items()):
            points = []
            for n in sorted(cells):
                try:
                    y = value(cells[n])
                except (KeyError, TypeError, ValueError):
                    continue
                if y is not None:
                    points.append((n, y))
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nodes (N)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Motey cell on one 2-core machine (loopback, open mode): before and after")
    fig.tight_layout()
    fig.savefig(target, dpi=80)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
