"""The requirement language: parsing, meaning, and how blueprints report mistakes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from motey.capabilityengine.requirements import Requirement, parse_requirement, unmet
from motey.errors import ValidationError
from motey.orchestrator.blueprint import load_blueprint
from motey.schemas.blueprint import REQUIREMENT_PATTERN


def cap(name: str, value: Any = None, source: str = "config") -> dict[str, Any]:
    entry: dict[str, Any] = {"capability": name, "capability_type": "t", "source": source}
    if value is not None:
        entry["value"] = value
    return entry


NODE = [
    cap("zigbee"),
    cap("arch", "arm64", "facts"),
    cap("memory_mb", "1024", "facts"),
    cap("cpu_count", "4", "facts"),
    cap("model", "Pi 4"),
    cap("gpu", "true"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zigbee", Requirement("zigbee")),
        ("!camera", Requirement("camera", negated=True)),
        ("! camera", Requirement("camera", negated=True)),
        ("arch=arm64", Requirement("arch", "==", "arm64")),
        ("arch==arm64", Requirement("arch", "==", "arm64")),
        ("arch != armv7", Requirement("arch", "!=", "armv7")),
        ("memory_mb>=512", Requirement("memory_mb", ">=", "512")),
        ("memory_mb <= 4096", Requirement("memory_mb", "<=", "4096")),
        ("cpu_count>2", Requirement("cpu_count", ">", "2")),
        ("temperature<-10.5", Requirement("temperature", "<", "-10.5")),
        ('model="Pi 4"', Requirement("model", "==", "Pi 4")),
        ("model='Pi 4'", Requirement("model", "==", "Pi 4")),
        ("vendor:usb/0403-6001", Requirement("vendor:usb/0403-6001")),
        # names with single spaces, as the original's "test capability"
        ("test capability", Requirement("test capability")),
        ("!test capability", Requirement("test capability", negated=True)),
        ("test capability >= 2", Requirement("test capability", ">=", "2")),
    ],
)
def test_valid_requirements_parse(text: str, expected: Requirement) -> None:
    assert parse_requirement(text) == expected
    assert re.match(REQUIREMENT_PATTERN, text), "schema pattern and parser must agree"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "use NAME"),
        ("zig  bee", "use NAME"),
        (" zig bee !", "use NAME"),
        ("!arch=arm64", "cannot be combined"),
        ("memory_mb>=lots", "is not a number"),
        ("memory_mb>=nan", "is not a number"),
        ("arch=", "use NAME"),
        ("arch=arm 64", "use NAME"),
        ("=arm64", "use NAME"),
        ("arch=>arm64", "use NAME"),
        ("a" * 129, "longer than 128"),
        ("a b" * 43, "longer than 128"),
        (5, "is not a string"),
        ({"arch": "arm64"}, "written arch=arm64"),
    ],
)
def test_invalid_requirements_name_the_field(text: Any, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_requirement(text, field="images[0].capabilities[3]")
    assert info.value.field == "images[0].capabilities[3]"
    assert "images[0].capabilities[3]" in info.value.message
    assert says in info.value.message
    # the schema pattern leaves numbers, negated comparisons and name lengths to the parser
    parser_only = ("is not a number", "cannot be combined", "longer than 128")
    if isinstance(text, str) and says not in parser_only:
        assert not re.match(REQUIREMENT_PATTERN, text), "schema pattern and parser must agree"


@pytest.mark.parametrize(
    ("requirement", "met"),
    [
        ("zigbee", True),
        ("camera", False),
        ("!camera", True),
        ("!zigbee", False),
        ("arch=arm64", True),
        ("arch==arm64", True),
        ("arch=amd64", False),
        ("arch=ARM64", False),  # text compares exactly
        ("arch!=amd64", True),
        ("arch!=arm64", False),
        ("camera!=usb", True),  # absent: no camera entry equals usb
        ("memory_mb>=512", True),
        ("memory_mb>=1024", True),
        ("memory_mb>1024", False),
        ("memory_mb=1024.0", True),  # numbers compare as numbers
        ("memory_mb<=1024", True),
        ("memory_mb<1024", False),
        ("memory_mb<2048", True),
        ("cpu_count>2", True),
        ("arch>1", False),  # text never satisfies an ordering
        ("zigbee>=1", False),  # present without a value: nothing to compare
        ("zigbee=1", False),
        ('model="Pi 4"', True),
        ("gpu=true", True),
        ("missing>=1", False),
    ],
)
def test_requirement_meaning(requirement: str, met: bool) -> None:
    assert parse_requirement(requirement).satisfied_by(NODE) is met
    assert unmet([requirement], NODE) == ([] if met else [requirement])


def test_any_source_can_satisfy_and_sources_combine() -> None:
    caps = [cap("camera", "1", "device"), cap("camera", "3", "ipc")]
    assert unmet(["camera>=2", "camera<=1", "camera=3"], caps) == []
    assert unmet(["camera!=3"], caps) == ["camera!=3"]  # the exact opposite of camera=3
    assert unmet(["!camera"], caps) == ["!camera"]


def test_unmet_keeps_the_written_form_and_order() -> None:
    assert unmet(["memory_mb >= 99999", "zigbee", "!gpu"], NODE) == ["memory_mb >= 99999", "!gpu"]


BLUEPRINT = """
service_name: svc
images:
  - name: motey-test/busybox:latest
    capabilities: [zigbee]
  - name: motey-test/busybox:latest
    capabilities:
      - arch=arm64
      - {second}
"""


def test_blueprint_accepts_the_language() -> None:
    text = BLUEPRINT.format(second="'memory_mb >= 512'")
    data = load_blueprint(text)
    assert data["images"][1]["capabilities"] == ["arch=arm64", "memory_mb >= 512"]
    assert load_blueprint(BLUEPRINT.format(second='"!camera"'))["images"][1]["capabilities"][1] == (
        "!camera"
    )


@pytest.mark.parametrize(
    ("second", "says"),
    [
        ("memory_mb>=lots", "is not a number"),
        ("'zig  bee'", "use NAME"),
        ("'!arch=arm64'", "cannot be combined"),
        ("{arch: arm64}", "written arch=arm64"),
        ("5", "is not a string"),
    ],
)
def test_blueprint_errors_name_the_requirement(second: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_blueprint(BLUEPRINT.format(second=second))
    assert info.value.field == "images[1].capabilities[1]"
    assert says in info.value.message


def test_unquoted_negation_gets_a_yaml_hint() -> None:
    block = BLUEPRINT.format(second="!camera")
    flow = "service_name: svc\nimages:\n  - name: x\n    capabilities: [zigbee, !camera]\n"
    for text in (block, flow):
        with pytest.raises(ValidationError) as info:
            load_blueprint(text)
        assert "must be quoted" in info.value.message
        assert info.value.field == "(document)"


def test_other_yaml_errors_get_no_hint() -> None:
    with pytest.raises(ValidationError) as info:
        load_blueprint("service_name: [unclosed\n")
    assert "quoted" not in info.value.message


def test_capabilities_must_be_a_list() -> None:
    with pytest.raises(ValidationError) as info:
        load_blueprint("service_name: s\nimages:\n  - name: x\n    capabilities: zigbee\n")
    assert info.value.field == "images[0].capabilities"
