"""The fast ``GET /v1/service`` in front of Flask answers byte for byte what Flask answers.

Two apps are built alike around one real orchestrator (fake engine) and one token file,
each with its own failure limiter: one answers through :class:`FastListing`, the other
through Flask alone (the fast layer's ``app``). Every request of the table goes to both,
in the same order, so the limiters move alike too; status, headers and body must be
equal. A spy on Flask shows which requests the fast layer answered itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from motey.communication.api.app import create_app
from motey.communication.api.fast_listing import FastListing
from motey.security.access import AccessControl, FailureLimiter, TokenStore
from motey.security.tokens import TokenRecord, write_token_file
from tests.fakes import Rig, blueprint, build, wait_state

ROLES = ("viewer", "operator", "admin")
LIMIT = 4  # wrong tokens per address before 429

QUERIES = [
    "",
    "offset=1&limit=1",
    "fields=id,state",
    "fields=id,images",
    "fields=+id+,state,id",
    "offset=0&limit=0",
    "offset=5",
    "limit=1&limit=x",
    "scope=node",
    "scope=node&limit=2",
    "unknown=1",
    "limit=x",
    "limit=-1",
    "offset=-2",
    "limit=100000",
    "fields=a-b",
    "fields=",
    "fields=,",
    "scope=cell",
    "scope=bogus",
    "%ff=1",
    "limit=%ff",
    "limit=%E2%82%AC",
    "offset=%201",
]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = build(tmp_path / "rig")
    try:
        for n, environment in enumerate(
            ({"DB_PASSWORD": "hunter2", "MODE": "line-3"}, ["TOKEN=abc", "PLAIN"], None)
        ):
            parameters = {"environment": environment} if environment is not None else {}
            text = blueprint({"name": f"img{n}", "parameters": parameters}, name=f"svc{n}")
            service = made.orchestrator.submit_blueprint(text)
            wait_state(made, service.id, "RUNNING")
        yield made
    finally:
        made.close()


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    records, issued = [], {}
    for role in ROLES:
        record, token = TokenRecord.issue(f"{role}-token", role)
        records.append(record)
        issued[role] = token
    path = tmp_path / "db" / "tokens.json"
    write_token_file(path, records)
    return path, issued


def make_app(rig: Rig, mode: str, token_file: Path, cors: list[str] | None) -> Any:
    access = AccessControl(mode, TokenStore(None, token_file), FailureLimiter(limit=LIMIT))
    return create_app(
        orchestrator=rig.orchestrator,
        capability_engine=rig.capabilities,
        node_repository=rig.nodes,
        node_status=None,  # type: ignore[arg-type]  # not on these paths
        identity=rig.identity,
        cors_origins=cors,
        access=access,
    )


class Spy:
    """Flask's WSGI callable, counting the requests that reached it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls += 1
        return self.app(environ, start_response)


def call(app: Any, method: str, query: str, headers: dict[str, str]) -> tuple[str, list, bytes]:
    environ = EnvironBuilder(
        path="/v1/service",
        method=method,
        query_string=query,
        headers=list(headers.items()),
        environ_base={"REMOTE_ADDR": "127.0.0.9"},
    ).get_environ()
    body, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    return status, list(response_headers.items()), b"".join(body)


def compare_table(
    fast: FastListing, flask: Any, requests: list[tuple[str, str, dict[str, str]]]
) -> list[tuple[str, list, bytes]]:
    spy = Spy(fast.app)
    fast.app = spy
    answers = []
    for method, query, headers in requests:
        before = spy.calls
        got = call(fast, method, query, headers)
        want = call(flask, method, query, headers)
        assert got == want, (method, query, headers)
        answered_fast = spy.calls == before
        # Flask answers every error; the fast layer every 200 of the list.
        assert answered_fast == got[0].startswith("200"), (method, query, headers, got[0])
        answers.append(got)
    return answers


@pytest.mark.parametrize(
    "cors",
    [None, ["http://dash.example:8080"], ["http://a.example", "https://b.example"], ["*"]],
)
def test_fast_listing_and_flask_answer_byte_for_byte_alike(
    rig: Rig, tokens: tuple[Path, dict[str, str]], cors: list[str] | None
) -> None:
    path, issued = tokens
    auths: dict[str, dict[str, str]] = {
        "none": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        **{role: {"Authorization": f"Bearer {issued[role]}"} for role in ROLES},
        "lower-scheme": {"Authorization": f"bearer {issued['viewer']}"},
    }
    origins = [{}, {"Origin": "http://dash.example:8080"}, {"Origin": "http://evil.example"}]
    if cors:
        origins.append(
            {"Origin": "https://B.example", "Access-Control-Request-Private-Network": "true"}
        )
    for mode in ("open", "secure"):
        fast = make_app(rig, mode, path, cors).wsgi_app
        flask = make_app(rig, mode, path, cors).wsgi_app.app
        assert isinstance(fast, FastListing)
        requests = [
            (method, query, {**auth, **origin})
            for auth in auths.values()
            for method in ("GET", "HEAD")
            for query in QUERIES
            for origin in origins[:2]
        ]
        requests += [("GET", "", {**auths["viewer"], **origin}) for origin in origins]
        answers = compare_table(fast, flask, requests)
        ok = [a for a in answers if a[0].startswith("200")]
        assert ok, "the fast layer answered nothing"
        if mode == "secure":
            statuses = {a[0][:3] for a in answers}
            assert {"200", "400", "401"} <= statuses


def test_the_viewer_sees_masked_values_and_others_see_them_plain(
    rig: Rig, tokens: tuple[Path, dict[str, str]]
) -> None:
    path, issued = tokens
    fast = make_app(rig, "secure", path, None).wsgi_app
    seen = {}
    for role in ROLES:
        status, _, body = call(fast, "GET", "", {"Authorization": f"Bearer {issued[role]}"})
        assert status.startswith("200")
        seen[role] = json.dumps(json.loads(body))
    assert "hunter2" not in seen["viewer"] and "TOKEN=abc" not in seen["viewer"]
    assert '"DB_PASSWORD": "***"' in seen["viewer"] and "TOKEN=***" in seen["viewer"]
    assert "hunter2" in seen["operator"] and "hunter2" in seen["admin"]


def test_wrong_tokens_are_counted_once_and_429_is_flask_s_own(
    rig: Rig, tokens: tuple[Path, dict[str, str]]
) -> None:
    """A denial the fast layer hands to Flask is not checked (and counted) a second time."""
    path, issued = tokens
    fast = make_app(rig, "secure", path, None).wsgi_app
    flask = make_app(rig, "secure", path, None).wsgi_app.app
    wrong = {"Authorization": "Bearer motey_wrong"}
    good = {"Authorization": f"Bearer {issued['admin']}"}
    requests = [("GET", "", wrong)] * (LIMIT - 1) + [("GET", "", good)]
    requests += [("GET", "", wrong), ("GET", "", good), ("GET", "", wrong)]
    requests += [("HEAD", "limit=1", wrong)]
    answers = compare_table(fast, flask, requests)
    statuses = [a[0][:3] for a in answers]
    # the brake refuses guesses, not holders: the good token passes once it is on
    assert statuses == ["401"] * (LIMIT - 1) + ["200", "401", "200", "429", "429"]
    assert ("Retry-After", "60") in answers[-1][1]


def test_a_change_is_seen_at_once_through_the_fast_layer(
    rig: Rig, tokens: tuple[Path, dict[str, str]]
) -> None:
    path, _ = tokens
    fast = make_app(rig, "open", path, None).wsgi_app
    flask = make_app(rig, "open", path, None).wsgi_app.app
    before = call(fast, "GET", "fields=id", {})
    service = rig.orchestrator.submit_blueprint(blueprint({"name": "late"}, name="late"))
    after = call(fast, "GET", "fields=id", {})
    assert after == call(flask, "GET", "fields=id", {})
    assert len(json.loads(after[2])) == len(json.loads(before[2])) + 1
    assert {"id": service.id} in json.loads(after[2])


def test_other_paths_and_methods_go_to_flask(rig: Rig, tokens: tuple[Path, dict[str, str]]) -> None:
    path, _ = tokens
    fast = make_app(rig, "open", path, None).wsgi_app
    spy = Spy(fast.app)
    fast.app = spy
    for method, target in [
        ("GET", "/v1/service/"),
        ("GET", "/v1/services"),
        ("GET", "/v1/nodes"),
        ("OPTIONS", "/v1/service"),
        ("POST", "/v1/service"),
        ("get", "/v1/service"),
    ]:
        environ = EnvironBuilder(path=target, method=method).get_environ()
        run_wsgi_app(fast, environ, buffered=True)
    assert spy.calls == 6


@pytest.mark.parametrize(
    "kw",
    [
        {"headers": {"Host": "bad host!"}},
        {"headers": {"Host": ""}},
        {"data": b"x" * 2_000_000},  # a GET with a body over MAX_CONTENT_LENGTH
        {"headers": {"Content-Length": "99999999"}},
        {"headers": {"Transfer-Encoding": "chunked"}, "data": b"abc"},
    ],
)
def test_odd_requests_are_answered_alike(
    rig: Rig, tokens: tuple[Path, dict[str, str]], kw: dict[str, Any]
) -> None:
    path, _ = tokens
    answers = []
    for app in (
        make_app(rig, "open", path, ["*"]).wsgi_app,
        make_app(rig, "open", path, ["*"]).wsgi_app.app,
    ):
        environ = EnvironBuilder(path="/v1/service", method="GET", **kw).get_environ()
        body, status, headers = run_wsgi_app(app, environ, buffered=True)
        answers.append((status, list(headers.items()), b"".join(body)))
    assert answers[0] == answers[1]
