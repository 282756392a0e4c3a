"""The gateway's rule for a state nobody could give (an original node's silent status)."""

from __future__ import annotations

from typing import Any

import pytest

from motey.models.image import Image, ImageState
from motey.models.node import DEFAULT_PORTS, Node
from motey.node.identity import NodeIdentity
from motey.orchestrator.cluster import ClusterGateway
from motey.val.plugin import InstanceStatus

PEER_IP = "127.0.9.9"


class NoNodes:
    """A node repository that knows no peer (the image names its node by address)."""

    def get_by_id(self, _node_id: str) -> None:
        return None

    def get(self, _ip: str) -> None:
        return None


class SilentStatusPeer:
    """A remote client whose peer is up but says nothing about the state."""

    def image_status(self, node: Node, image: Image) -> InstanceStatus:
        return InstanceStatus(image.state, "state unknown: test", known=False)

    def describe(self, node: Node) -> dict[str, Any]:
        raise AssertionError("not used")

    def deploy_image(self, node: Node, image: Image) -> str:
        raise AssertionError("not used")

    def terminate_image(self, node: Node, image: Image) -> bool:
        raise AssertionError("not used")


@pytest.fixture
def gateway() -> ClusterGateway:
    identity = NodeIdentity("self-id", "self", "127.0.9.1", dict(DEFAULT_PORTS))
    return ClusterGateway(identity, None, NoNodes(), SilentStatusPeer())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "instance_id", "after"),
    [
        (ImageState.INSTANTIATING, "c" * 64, ImageState.RUNNING),  # its deploy reply said so
        (ImageState.INSTANTIATING, None, ImageState.INSTANTIATING),  # nothing was started
        (ImageState.RUNNING, "c" * 64, ImageState.RUNNING),
        (ImageState.ERROR, "c" * 64, ImageState.ERROR),  # kept, never made worse or better
        (ImageState.TERMINATED, "c" * 64, ImageState.TERMINATED),
    ],
)
def test_an_unknown_state_keeps_what_the_image_had(
    gateway: ClusterGateway, before: ImageState, instance_id: str | None, after: ImageState
) -> None:
    image = Image(id="img", name="x", node=PEER_IP, state=before, instance_id=instance_id)
    status = gateway.status(image)
    assert status.state is after
    assert status.known is False and status.message == "state unknown: test"
