"""Service state mapping and blueprint parsing (pure functions)."""

from __future__ import annotations

import pytest

from motey.errors import ValidationError
from motey.models.image import ImageState as I  # noqa: N817
from motey.models.service import ServiceState as S  # noqa: N817
from motey.models.service import service_state_from_images
from motey.orchestrator.blueprint import load_blueprint, service_from_blueprint


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([I.RUNNING, I.RUNNING], S.RUNNING),
        ([I.RUNNING], S.RUNNING),
        ([I.RUNNING, I.ERROR], S.ERROR),
        ([I.ERROR, I.RUNNING], S.ERROR),  # the original ignored the first image here
        ([I.TERMINATED, I.TERMINATED], S.TERMINATED),
        ([I.RUNNING, I.TERMINATED], S.ERROR),
        ([I.RUNNING, I.STOPPING], S.STOPPING),
        ([I.RUNNING, I.INSTANTIATING], S.INSTANTIATING),
        ([I.INITIAL, I.RUNNING], S.INSTANTIATING),
        ([], S.ERROR),
    ],
)
def test_service_state_from_images(states, expected) -> None:
    assert service_state_from_images(states) is expected


def test_original_blueprint_parses() -> None:
    text = """
service_name: first_service
node_type: master
images:
  - name: busybox
    engine: docker
    parameters:
      ports: {"80/tcp": 8081}
      name: busybox_from_motey
    capabilities: [zigbee]
"""
    service = service_from_blueprint(load_blueprint(text), owner_id="me")
    assert service.service_name == "first_service" and service.node_type == "master"
    (image,) = service.images
    assert image.parameters == {"ports": {"80/tcp": 8081}, "name": "busybox_from_motey"}
    assert image.capabilities == ["zigbee"] and image.owner_id == "me"
    assert image.service_id == service.id and image.state is I.INITIAL


def test_blueprint_safety_limits() -> None:
    with pytest.raises(ValidationError, match="larger than"):
        load_blueprint("service_name: x\n" + "#" * 300_000)
    with pytest.raises(ValidationError):
        load_blueprint("!!python/object/apply:os.system ['true']")
    with pytest.raises(ValidationError) as bad_req:
        load_blueprint("service_name: x\nimages:\n  - name: a\n    capabilities: ['!a>=3']\n")
    assert bad_req.value.field == "images[0].capabilities[0]"
