"""Stopping is not failing (issue 10, point 3), across a real process restart.

Measured before: ``core.py`` set DECOMMISSION before the orchestrator stopped; the next
image of the running deployment failed ("node is in DECOMMISSION"), the job rolled back
and the service ended in a final ERROR although the stop promised a resume.

The failure needs the next image to be placed between DECOMMISSION and the orchestrator's
stop, a window real Docker hits only now and then; the ordering itself is checked
deterministically in tests/test_lifecycle.py (the Core stops its workers while the node
still operates) and the pause in tests/test_orchestrator_rules.py (fake engine). This
test guards the whole path through real processes.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.helpers import TEST_IMAGE, MoteyNode, unique_name

IMAGES = 8


def blueprint() -> str:
    entries = "".join(
        f'  - name: {TEST_IMAGE}\n    parameters: {{command: "sleep {300 + n}"}}\n'
        for n in range(IMAGES)
    )
    return f"service_name: {unique_name('stopdeploy')}\nimages:\n{entries}"


def stored(node: MoteyNode, service_id: str) -> dict[str, Any]:
    data = json.loads((node.dir / "db" / "services.json").read_text())
    return next(s for s in data["services"].values() if s["id"] == service_id)


def test_stop_during_deployment_resumes_to_running(node: MoteyNode, docker_client: Any) -> None:
    for _attempt in range(3):  # catch the deployment half-way; a fast machine may finish first
        sid = node.post_yaml(blueprint()).json()["id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            service = node.service(sid)
            # The engine shows the first start (the service is written only before and
            # after all its images start, so its record cannot).
            started = docker_client.containers.list(
                all=True, filters={"label": f"motey.service_id={sid}"}, sparse=True
            )
            if started or service["state"] != "INSTANTIATING":
                break
            time.sleep(0.02)
        assert node.stop() == 0
        state = stored(node, sid)["state"]
        assert state in ("INSTANTIATING", "RUNNING"), stored(node, sid)["history"]
        if state == "INSTANTIATING":
            break
        node.start()  # it finished before the stop: try again
    else:
        raise AssertionError("the deployment always finished before the stop")

    paused = stored(node, sid)
    assert all(h["state"] != "ERROR" for h in paused["history"]), paused["history"]
    node.start()
    service = node.wait_service_state(sid, "RUNNING", timeout=60)
    assert all(h["state"] != "ERROR" for h in service["history"]), service["history"]
    containers = docker_client.containers.list(filters={"label": f"motey.service_id={sid}"})
    assert len(containers) == IMAGES, "every image runs once"
