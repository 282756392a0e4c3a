"""Property tests: every parser of untrusted input answers random and hostile input with
a result or a :class:`MoteyError` that says what is wrong - never another exception."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motey.capabilityengine.capability_engine import CapabilityEngine
from motey.capabilityengine.requirements import parse_requirement
from motey.communication import ipc_protocol
from motey.communication.protocol import discovery
from motey.communication.protocol import node_requests as proto
from motey.errors import MoteyError
from motey.orchestrator.blueprint import load_blueprint
from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.val.plugins.docker_val import DockerVAL

#: Bounded so the whole module stays within seconds on a loaded machine; random on a
#: developer's machine (to keep finding new cases), the same examples in CI.
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- strategies --------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def deep(draw: Any) -> str:
    """Brackets nested far deeper than any limit, in JSON or YAML flow style."""
    depth = draw(st.integers(min_value=30, max_value=60000))
    opener = draw(st.sampled_from(["[", "{", '{"a":', "- ", "a: "]))
    closed = draw(st.booleans())
    closer = {"[": "]", "{": "}", '{"a":': "}"}.get(opener, "")
    return opener * depth + (closer * depth if closed else "")


hostile_text = st.one_of(
    st.text(max_size=300),
    deep(),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    json_values.map(json.dumps),
    st.sampled_from(
        [
            "a: &a [*a]",
            "a: &a [1]\nb: [" + ",".join(["*a"] * 150) + "]",
            "!!python/object/apply:os.system ['true']",
            "--- !!binary AAAA",
            "\x00\x01\x02",
            "service_name: x\nimages: [{name: '--privileged'}]",
        ]
    ),
)


def capability_entry() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "capability": st.one_of(st.text(max_size=20), st.sampled_from(["arch", "zigbee"])),
            "capability_type": st.one_of(st.text(max_size=10), scalars),
        },
        optional={
            "value": scalars,
            "action": st.one_of(st.sampled_from(["add", "remove"]), scalars),
        },
    )


def blueprint_like() -> st.SearchStrategy[str]:
    parameters = st.dictionaries(
        st.sampled_from(
            [
                "ports",
                "labels",
                "environment",
                "mem_limit",
                "name",
                "command",
                "volumes",
                "user",
                "restart_policy",
                "devices",
                "cap_add",
                "network_mode",
                "shm_size",
                "bogus",
            ]
        ),
        json_values,
        max_size=4,
    )
    image = st.fixed_dictionaries(
        {"name": st.one_of(st.just("motey-test/busybox:latest"), st.text(max_size=30))},
        optional={
            "parameters": parameters,
            "capabilities": st.lists(st.text(max_size=20), max_size=3),
            "engine": st.text(max_size=10),
        },
    )
    doc = st.fixed_dictionaries(
        {"service_name": st.text(max_size=20), "images": st.lists(image, max_size=3)}
    )
    return doc.map(lambda d: yaml.safe_dump(d))


def expect_clean(parse: Callable[[], Any]) -> None:
    try:
        parse()
    except MoteyError as exc:
        assert exc.message, "an error says what is wrong"


# -- blueprint and requirement language --------------------------------------------------


@SETTINGS
@given(st.one_of(hostile_text, blueprint_like()))
def test_blueprint_parser(text: str) -> None:
    def parse() -> None:
        data = load_blueprint(text)
        docker = DockerVAL({}, "node")
        for i, image in enumerate(data["images"]):
            docker.validate_parameters(image.get("parameters") or {}, f"images[{i}].parameters")

    expect_clean(parse)


@SETTINGS
@given(st.one_of(st.text(max_size=80), scalars, json_values))
def test_requirement_language(text: Any) -> None:
    expect_clean(lambda: parse_requirement(text))


# -- capability JSON (REST bodies and engine input) -------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[CapabilityEngine]:
    folder = Path(tempfile.mkdtemp(prefix="motey-prop-"))
    database = Database(folder / "capabilities.json").open()
    eng = CapabilityEngine(CapabilityRepository(database))
    eng.replace_source([{"capability": "arch", "capability_type": "fact", "value": "x"}], "facts")
    yield eng
    database.close()


@SETTINGS
@given(st.one_of(json_values, st.lists(capability_entry(), max_size=4)))
def test_capability_json(engine: CapabilityEngine, entries: Any) -> None:
    expect_clean(lambda: engine.add(entries, "rest"))
    expect_clean(lambda: engine.remove(entries, "rest"))


# -- ZeroMQ messages ---------------------------------------------------------------------

raw_messages = st.one_of(
    st.binary(max_size=300),
    hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"name": st.text(max_size=30)},
        optional={
            "id": st.one_of(st.text(max_size=20), scalars),
            "parameters": json_values,
            "capabilities": json_values,
            "version": scalars,
            "error": st.text(max_size=20),
            "state": scalars,
        },
    ).map(lambda d: json.dumps(d).encode()),
)

ZMQ_DECODERS = [
    proto.decode_capability_request,
    proto.decode_capability_reply,
    proto.decode_deploy_request,
    proto.decode_deploy_reply,
    proto.decode_image_ref,
    proto.decode_status_reply,
    proto.decode_terminate_reply,
]


@SETTINGS
@given(st.sampled_from(ZMQ_DECODERS), raw_messages)
def test_zeromq_messages(decoder: Callable[[bytes], Any], raw: bytes) -> None:
    expect_clean(lambda: decoder(raw))


# -- IPC messages ------------------------------------------------------------------------


@SETTINGS
@given(
    st.one_of(
        st.lists(st.binary(max_size=100), max_size=3),
        st.tuples(
            st.sampled_from([*ipc_protocol.TOPICS, "x", ""]),
            st.one_of(
                raw_messages,
                st.lists(capability_entry(), max_size=3).map(lambda e: json.dumps(e).encode()),
            ),
        ).map(lambda t: [t[0].encode() + b"#" + t[1]]),
    )
)
def test_ipc_messages(frames: list[bytes]) -> None:
    expect_clean(lambda: ipc_protocol.decode(frames))


# -- MQTT payloads -----------------------------------------------------------------------

presence_like = st.fixed_dictionaries(
    {
        "format": scalars,
        "id": st.just("node-1"),
        "ip": st.one_of(st.just("127.0.0.1"), st.text(max_size=20)),
        "state": st.one_of(st.just("REACHABLE"), scalars),
        "lifecycle": st.one_of(st.just("OPERATE"), scalars),
    },
    optional={"ports": json_values, "capabilities": json_values, "load": scalars},
).map(lambda d: json.dumps(d).encode())


@SETTINGS
@given(
    st.one_of(st.just("motey/v1/nodes/node-1"), st.text(max_size=40)),
    st.one_of(raw_messages, presence_like),
)
def test_mqtt_payloads(topic: str, payload: bytes) -> None:
    expect_clean(lambda: discovery.decode_presence(topic, payload))
    expect_clean(lambda: discovery.decode_ip(payload))
