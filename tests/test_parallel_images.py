"""A service's images stop side by side (issue 10: 2 images ignoring SIGTERM took 2 × the
stop timeout), with a real node and real Docker."""

from __future__ import annotations

import time
from typing import Any

import docker

from tests.helpers import TEST_IMAGE, unique_name

STOP_TIMEOUT = 4


def test_images_that_ignore_sigterm_stop_in_one_stop_timeout(
    node_factory: Any, docker_client: docker.DockerClient
) -> None:
    node = node_factory(extra={"DOCKER": {"stop_timeout": STOP_TIMEOUT}})
    image = (
        f"  - name: {TEST_IMAGE}\n"
        "    parameters: {command: [sh, -c, \"trap '' TERM; while true; do sleep 1; done\"]}\n"
    )
    text = f"service_name: {unique_name('stubborn')}\nimages:\n" + image * 2
    sid = node.post_yaml(text).json()["id"]
    node.wait_service_state(sid, "RUNNING")
    assert len(docker_client.containers.list(filters={"label": f"motey.service_id={sid}"})) == 2

    started = time.monotonic()
    assert node.delete(f"/v1/service/{sid}").status_code in (200, 202)
    node.wait_service_state(sid, "TERMINATED", timeout=30)
    took = time.monotonic() - started
    # one after another this took 2 × STOP_TIMEOUT; side by side one, plus overhead
    assert STOP_TIMEOUT <= took < 2 * STOP_TIMEOUT - 0.5, took
