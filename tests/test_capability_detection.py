"""Detected capabilities (facts, device rules) and how sources live side by side.

Devices are simulated by files appearing and disappearing in a temporary folder that
the device rules point at; the engine is the real one on a TinyDB file.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from motey.capabilityengine.capability_engine import (
    CapabilityEngine,
    normalize_value,
    parse_static_capabilities,
)
from motey.capabilityengine.detectors import (
    CapabilityDetector,
    DeviceRule,
    node_facts,
    normalized_arch,
    parse_device_rules,
)
from motey.errors import ConfigError, ValidationError
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from tests.helpers import wait_for


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[CapabilityEngine]:
    database = Database(tmp_path / "capabilities.json").open()
    engine = CapabilityEngine(CapabilityRepository(database), static_capabilities=["zigbee"])
    engine.start()
    yield engine
    database.close()


def by_source(engine: CapabilityEngine, source: str) -> dict[str, Any]:
    return {c["capability"]: c.get("value") for c in engine.all() if c["source"] == source}


# -- facts ---------------------------------------------------------------------------


def test_node_facts_describe_this_machine() -> None:
    facts = {f["capability"]: f for f in node_facts()}
    assert set(facts) == {"arch", "cpu_count", "memory_mb", "os"}
    assert all(
        f["capability_type"] == "fact" and isinstance(f["value"], str) for f in facts.values()
    )
    assert facts["arch"]["value"] == normalized_arch(platform.machine())
    assert int(facts["cpu_count"]["value"]) == os.cpu_count()
    assert int(facts["memory_mb"]["value"]) == psutil.virtual_memory().total // 2**20
    assert facts["os"]["value"] == platform.system().lower()


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "arm"),
        ("i686", "386"),
        ("riscv64", "riscv64"),
        ("", "unknown"),
    ],
)
def test_architecture_names_follow_oci(machine: str, arch: str) -> None:
    assert normalized_arch(machine) == arch


# -- device rules --------------------------------------------------------------------


def test_device_rules_parse(tmp_path: Path) -> None:
    text = f"/dev/ttyUSB*=zigbee, /dev/video*=camera\n  {tmp_path}/a=b*=weird , ~/dongle=usb"
    assert parse_device_rules(text) == [
        DeviceRule("/dev/ttyUSB*", "zigbee"),
        DeviceRule("/dev/video*", "camera"),
        DeviceRule(f"{tmp_path}/a=b*", "weird"),
        DeviceRule(os.path.expanduser("~/dongle"), "usb"),
    ]
    assert parse_device_rules("") == [] == parse_device_rules(" , \n")
    assert parse_device_rules("/dev/ttyUSB*=test capability") == [
        DeviceRule("/dev/ttyUSB*", "test capability")
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/dev/ttyUSB*", "GLOB=CAPABILITY"),
        ("/dev/ttyUSB*=", "GLOB=CAPABILITY"),
        ("=zigbee", "GLOB=CAPABILITY"),
        ("/dev/ttyUSB*=zig  bee", "GLOB=CAPABILITY"),
        ("ttyUSB*=zigbee", "absolute"),
    ],
)
def test_bad_device_rules_are_config_errors(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_device_rules(text)


def test_capability_follows_simulated_devices(
    tmp_path: Path, engine: CapabilityEngine, no_thread_leaks: None
) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    heard: list[list[dict[str, Any]]] = []
    engine.subscribe(heard.append)
    rules = f"{dev}/ttyUSB*=zigbee, {dev}/ttyACM*=zigbee, {dev}/video*=camera"
    detector = CapabilityDetector(engine, rules, poll_interval=0.1)
    detector.start()
    try:
        assert by_source(engine, "device") == {}
        assert set(by_source(engine, "facts")) == {"arch", "cpu_count", "memory_mb", "os"}
        assert any(t.name == "motey-device-watcher" for t in threading.enumerate())

        (dev / "ttyUSB0").touch()  # the dongle is plugged in
        wait_for(lambda: by_source(engine, "device") == {"zigbee": "1"}, timeout=5, what="zigbee")
        assert engine.unmet(["zigbee>=1", "!camera"]) == []
        assert any(
            {
                "capability": "zigbee",
                "capability_type": "hardware",
                "source": "device",
                "value": "1",
            }
            in snapshot
            for snapshot in heard
        ), "listeners hear the full list after the change"

        (dev / "ttyACM0").touch()  # a second dongle under another rule, same capability
        (dev / "video0").touch()
        wait_for(
            lambda: by_source(engine, "device") == {"zigbee": "2", "camera": "1"},
            timeout=5,
            what="two zigbee devices and a camera",
        )
        (dev / "ttyUSB0").unlink()
        (dev / "ttyACM0").unlink()  # both dongles pulled out
        wait_for(lambda: by_source(engine, "device") == {"camera": "1"}, timeout=5, what="unplug")
        assert engine.unmet(["zigbee"]) == []  # the static config entry is still true
        assert by_source(engine, "config") == {"zigbee": None}
    finally:
        detector.stop()
        detector.stop()  # idempotent


def test_device_entries_are_rescanned_at_start(tmp_path: Path, engine: CapabilityEngine) -> None:
    engine.replace_source([{"capability": "old", "capability_type": "hardware"}], "device")
    (tmp_path / "video0").touch()
    detector = CapabilityDetector(engine, f"{tmp_path}/video*=camera", poll_interval=5)
    detector.start()
    try:
        # Present before start() returns, so it counts before the node reaches OPERATE.
        assert by_source(engine, "device") == {"camera": "1"}
    finally:
        detector.stop()


def test_without_rules_no_thread_and_facts_can_be_off(
    engine: CapabilityEngine, no_thread_leaks: None
) -> None:
    CapabilityDetector(engine).start()
    assert set(by_source(engine, "facts")) == {"arch", "cpu_count", "memory_mb", "os"}
    quiet = CapabilityDetector(engine, detect_facts=False)
    quiet.start()
    assert by_source(engine, "facts") == {}
    assert not any(t.name == "motey-device-watcher" for t in threading.enumerate())
    quiet.stop()


# -- sources ---------------------------------------------------------------------------


def test_sources_never_erase_each_other(engine: CapabilityEngine) -> None:
    zigbee = [{"capability": "zigbee", "capability_type": "hardware"}]
    assert engine.add(zigbee, "rest") is True  # the static config says zigbee as well
    assert engine.add(zigbee, "rest") is False
    assert engine.remove(zigbee, "rest") is True
    assert engine.remove(zigbee, "rest") is False  # nothing of its own left to remove
    assert engine.remove(zigbee, "ipc") is False
    engine.replace_source(zigbee, "device")
    sources = sorted(c["source"] for c in engine.all() if c["capability"] == "zigbee")
    assert sources == ["config", "device"]
    engine.replace_source([], "device")
    assert engine.unmet(["zigbee"]) == []  # config still says so


def test_replace_source_only_writes_the_difference(engine: CapabilityEngine) -> None:
    calls: list[int] = []
    engine.subscribe(lambda caps: calls.append(len(caps)))
    a = {"capability": "a", "capability_type": "t", "value": 1}
    b = {"capability": "b", "capability_type": "t"}
    assert engine.replace_source([a, b], "facts") is True
    assert engine.replace_source([b, a], "facts") is False  # same set: no write, no news
    assert engine.replace_source([a | {"value": 2}], "facts") is True
    assert by_source(engine, "facts") == {"a": "2"}
    assert calls == [3, 2]  # the static zigbee entry plus the facts


def test_update_applies_in_order_and_notifies_once(engine: CapabilityEngine) -> None:
    calls: list[list[dict[str, Any]]] = []
    engine.subscribe(calls.append)
    cam = {"capability": "camera", "capability_type": "hardware"}
    assert engine.update([("add", cam), ("remove", cam), ("add", cam | {"value": 2})], "ipc")
    assert by_source(engine, "ipc") == {"camera": "2"}
    assert len(calls) == 1
    with pytest.raises(ValueError):
        engine.update([("toggle", cam)], "ipc")
    with pytest.raises(ValidationError):
        engine.update([("add", {"capability": "no type"})], "ipc")


def test_a_failing_listener_does_not_stop_updates(engine: CapabilityEngine) -> None:
    def broken(_: list[dict[str, Any]]) -> None:
        raise RuntimeError("listener bug")

    heard: list[int] = []
    engine.subscribe(broken)
    engine.subscribe(lambda caps: heard.append(len(caps)))
    assert engine.add([{"capability": "x", "capability_type": "t"}], "rest")
    assert heard == [2]  # zigbee from the config and x


def test_values_are_text_and_booleans_lowercase(engine: CapabilityEngine) -> None:
    assert normalize_value(True) == "true" and normalize_value(512) == "512"
    assert normalize_value(None) is None
    engine.add([{"capability": "gpu", "capability_type": "t", "value": True}], "rest")
    assert engine.unmet(["gpu=true"]) == []


def test_static_capabilities_are_checked() -> None:
    assert parse_static_capabilities([" zigbee ", "arch_label = arm64", ""]) == [
        {"capability": "zigbee", "capability_type": "static"},
        {"capability": "arch_label", "capability_type": "static", "value": "arm64"},
    ]
    # a name may have single spaces between words, as the original's "test capability"
    assert parse_static_capabilities(["test capability", "test capability = 2"]) == [
        {"capability": "test capability", "capability_type": "static"},
        {"capability": "test capability", "capability_type": "static", "value": "2"},
    ]
    for bad in ("zig  bee", "memory_mb>=5", "level=", "=5"):
        with pytest.raises(ConfigError, match=r"\[NODE\] capabilities"):
            parse_static_capabilities([bad])
