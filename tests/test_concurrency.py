"""40 concurrent POSTs (8 in parallel) leave 40 services and an intact database.

The original Motey corrupted its TinyDB file under exactly this load.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import MoteyNode, wait_for

BLUEPRINT = """\
service_name: load-{n}
images:
  - name: motey-test/busybox:latest
    parameters: {{command: "sleep 600"}}
"""


def test_forty_concurrent_posts(node: MoteyNode, docker_client) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda n: node.post_yaml(BLUEPRINT.format(n=n)), range(40)))
    assert [r.status_code for r in responses] == [201] * 40, [r.text for r in responses][:3]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 40

    def all_running() -> bool:
        services = node.get("/v1/service").json()
        return len(services) == 40 and all(s["state"] == "RUNNING" for s in services)

    wait_for(all_running, timeout=120, interval=1, what="40 services to run")
    listed = node.get("/v1/service").json()
    assert {s["id"] for s in listed} == ids
    assert sorted(s["service_name"] for s in listed) == sorted(f"load-{n}" for n in range(40))

    # The file on disk is valid JSON holding exactly those 40 services.
    data = json.loads((node.dir / "db" / "services.json").read_text())
    assert {doc["id"] for doc in data["services"].values()} == ids
    containers = docker_client.containers.list(
        all=True, filters={"label": f"motey.node_id={node.node_id}"}
    )
    assert len(containers) == 40

    # And a restart reads it back whole.
    assert node.stop() == 0
    node.start()
    assert {s["id"] for s in node.get("/v1/service").json()} == ids
