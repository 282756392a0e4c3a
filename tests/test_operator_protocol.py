"""Wire formats of the two new node-to-node requests: image logs and services."""

from __future__ import annotations

import json

import pytest

from motey.communication.protocol import node_requests as proto
from motey.errors import CommunicationError, NotFoundError, ValidationError
from motey.models.image import Image
from motey.val.plugin import MAX_LOG_LINES, LogChunk


def test_logs_request_round_trip_and_limits() -> None:
    raw = proto.encode_logs_request(Image(id="img-1", name="x"), 50, 12.5)
    request = proto.decode_logs_request(raw)
    assert (request.ref.id, request.ref.engine, request.tail, request.since) == (
        "img-1",
        "docker",
        50,
        12.5,
    )
    huge = proto.decode_logs_request(
        proto.encode_logs_request(Image(id="i", name="x"), 10**9, None)
    )
    assert huge.tail == MAX_LOG_LINES
    for bad in (
        b"img-1",  # the original's bare id is no logs request
        b'{"version": 2}',
        b'{"version": 2, "id": "a b"}',
        b'{"version": 2, "id": "i", "tail": -1}',
        b'{"version": 2, "id": "i", "extra": 1}',
        b"\xff",
    ):
        with pytest.raises(ValidationError):
            proto.decode_logs_request(bad)


def test_logs_reply_stays_below_the_message_limit() -> None:
    lines = ["x" * 1000] * 3000  # 3 MB of output
    raw = proto.encode_logs_reply(LogChunk(lines, 99.0, False))
    assert len(raw) < proto.MAX_MESSAGE_BYTES
    chunk = proto.decode_logs_reply(raw)
    assert chunk.truncated and chunk.next_since == 99.0 and 0 < len(chunk.lines) < 3000
    assert proto.decode_logs_reply(proto.encode_logs_reply(LogChunk(["a", "b"]))).lines == [
        "a",
        "b",
    ]
    with pytest.raises(NotFoundError, match="no container"):
        proto.decode_logs_reply(proto.encode_error(NotFoundError("no container")))
    with pytest.raises(CommunicationError):
        proto.decode_logs_reply(b'{"error": "SomethingNew", "message": "?"}')
    with pytest.raises(ValidationError):
        proto.decode_logs_reply(b'{"lines": "not a list"}')


def test_services_reply_leaves_out_history_and_keeps_the_newest_that_fit() -> None:
    services = [
        {
            "id": f"s{n}",
            "service_name": "svc",
            "state": "RUNNING",
            "images": [{"id": "i", "parameters": {"blob": "y" * 5000}}],
            "history": [{"message": "z" * 100}],
        }
        for n in range(400)
    ]
    raw = proto.encode_services_reply({"node_id": "n1", "name": "a", "ip": "10.0.0.1"}, services)
    assert len(raw) < proto.MAX_MESSAGE_BYTES
    reply = proto.decode_services_reply(raw)
    assert reply["truncated"] and reply["services"][-1]["id"] == "s399"
    assert "history" not in reply["services"][0]
    proto.decode_services_request(proto.encode_services_request())
    with pytest.raises(ValidationError):
        proto.decode_services_request(b"list please")
    with pytest.raises(ValidationError):
        proto.decode_services_reply(json.dumps([1, 2]).encode())


def test_docker_output_is_split_into_lines_with_the_next_since() -> None:
    from motey.val.plugins.docker_val import _log_chunk

    text = "2026-11-29T12:00:00.000001000Z first\n2026-11-29T12:00:01.500000000Z second line\n"
    chunk = _log_chunk(text, None)
    assert chunk.lines == ["first", "second line"] and not chunk.truncated
    assert chunk.next_since == pytest.approx(1795953601.500001, abs=1e-5)
    assert _log_chunk("", 42.0).next_since == 42.0  # nothing new: ask from the same point
    big = "".join(f"2026-11-29T12:00:00.0Z {'x' * 1000}\n" for _ in range(600))
    cut = _log_chunk(big, None)
    assert cut.truncated and 0 < len(cut.lines) < 600  # 512 KiB, the newest kept
