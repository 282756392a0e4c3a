"""Access control in-process: the role table, token files, the failure brake, masking, audit."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motey.errors import ConfigError
from motey.security.access import (
    ROLE_TABLE,
    AccessControl,
    AccessDenied,
    FailureLimiter,
    TokenStore,
    required_role,
)
from motey.security.audit import AuditLog
from motey.security.redaction import MASK, redact_service
from motey.security.tokens import ROLES, TokenRecord, read_token_file, write_token_file

# Every route of the API with the weakest role that may call it (None: public).
ROUTES = [
    ("GET", "/v1/openapi.json", None),
    ("GET", "/", None),
    ("GET", "/js/app.js", None),
    ("OPTIONS", "/v1/service", None),
    ("GET", "/v1", "viewer"),
    ("GET", "/v1/service", "viewer"),
    ("GET", "/v1/service/abc", "viewer"),
    ("GET", "/v1/capabilities", "viewer"),
    ("GET", "/v1/nodes", "viewer"),
    ("GET", "/v1/nodestatus", "viewer"),
    ("GET", "/v1/node", "viewer"),
    ("GET", "/v1/whoami", "viewer"),
    ("HEAD", "/v1/node", "viewer"),
    ("POST", "/v1/service", "operator"),
    ("DELETE", "/v1/service", "operator"),
    ("DELETE", "/v1/service/abc", "operator"),
    ("PUT", "/v1/capabilities", "operator"),
    ("DELETE", "/v1/capabilities", "operator"),
    ("PUT", "/v1/node", "admin"),
    ("GET", "/v1/tokens", "admin"),
    ("POST", "/v1/tokens", "admin"),
    ("DELETE", "/v1/tokens/ci", "admin"),
    ("GET", "/v1/tokens/ci", "admin"),
    ("POST", "/v1/node", "admin"),  # unknown routes need the strongest role
    ("PATCH", "/v1/service/abc", "admin"),
    ("GET", "/v1x", None),  # not the API: a (missing) static file
]


@pytest.mark.parametrize(("method", "path", "role"), ROUTES)
def test_role_table(method: str, path: str, role: str | None) -> None:
    assert required_role(method, path) == role


def test_role_table_names_known_roles_only() -> None:
    assert {role for _, _, role in ROLE_TABLE} <= {*ROLES, None}


def store_with(tmp_path: Path, *roles: str) -> tuple[TokenStore, dict[str, str]]:
    records, tokens = [], {}
    for role in roles:
        record, token = TokenRecord.issue(f"{role}-token", role)
        records.append(record)
        tokens[role] = token
    write_token_file(tmp_path / "db" / "tokens.json", records)
    return TokenStore(None, tmp_path / "db" / "tokens.json"), tokens


def test_each_role_may_do_its_own_and_weaker_things(tmp_path: Path) -> None:
    store, tokens = store_with(tmp_path, *ROLES)
    access = AccessControl("secure", store)
    for method, path, needed in ROUTES:
        for role, token in tokens.items():
            allowed = needed is None or ROLES.index(role) >= ROLES.index(needed)
            try:
                principal = access.check(method, path, f"Bearer {token}", "10.0.0.1")
            except AccessDenied as exc:
                assert not allowed and exc.status == 403, (role, method, path)
                assert role in exc.message and needed in exc.message
            else:
                assert allowed, (role, method, path)
                if needed is not None:
                    assert principal is not None and principal.role == role


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwdw==",
        "Bearer motey_wrong",
        "Bearer " + "x" * 600,
    ],
)
def test_missing_or_bad_token_is_401(tmp_path: Path, header: str | None) -> None:
    store, _ = store_with(tmp_path, "admin")
    access = AccessControl("secure", store)
    with pytest.raises(AccessDenied) as caught:
        access.check("GET", "/v1/service", header, "10.0.0.1")
    assert caught.value.status == 401
    # Public routes need nothing, whatever the header says.
    assert access.check("GET", "/v1/openapi.json", header, "10.0.0.1") is None


def test_scheme_is_case_insensitive(tmp_path: Path) -> None:
    store, tokens = store_with(tmp_path, "viewer")
    access = AccessControl("secure", store)
    assert access.check("GET", "/v1/node", f"bearer {tokens['viewer']}", "a") is not None


def test_open_mode_lets_everything_through(tmp_path: Path) -> None:
    store, _ = store_with(tmp_path)
    access = AccessControl("open", store)
    for method, path, _role in ROUTES:
        access.check(method, path, None, "10.0.0.1")


def test_cell_and_node_files_both_count_and_changes_are_seen_without_restart(
    tmp_path: Path,
) -> None:
    cell_record, cell_token = TokenRecord.issue("admin", "admin")
    write_token_file(tmp_path / "credentials" / "tokens.json", [cell_record])
    store = TokenStore.from_config(str(tmp_path / "credentials"), str(tmp_path / "db"))
    principal = store.authenticate(cell_token)
    assert principal is not None and (principal.name, principal.source) == ("admin", "cell")

    record, token = TokenRecord.issue("ci", "operator")
    assert store.authenticate(token) is None
    write_token_file(tmp_path / "db" / "tokens.json", [record])
    principal = store.authenticate(token)
    assert principal is not None and (principal.name, principal.role) == ("ci", "operator")
    write_token_file(tmp_path / "db" / "tokens.json", [])
    assert store.authenticate(token) is None
    assert store.authenticate(cell_token) is not None


def test_a_damaged_token_file_grants_nothing(tmp_path: Path) -> None:
    store, tokens = store_with(tmp_path, "admin")
    assert store.authenticate(tokens["admin"]) is not None
    (tmp_path / "db" / "tokens.json").write_text('{"tokens": [{"name": ')
    assert store.authenticate(tokens["admin"]) is None


def test_failures_are_limited_per_address_and_expire() -> None:
    now = [1000.0]
    limiter = FailureLimiter(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(60)
    assert limiter.retry_after("b") == 0, "another address is not affected"
    now[0] += 30
    assert limiter.retry_after("a") == pytest.approx(30)
    now[0] += 30.5
    assert limiter.retry_after("a") == 0


def test_limiter_memory_is_bounded() -> None:
    limiter = FailureLimiter(limit=3, window=60, max_addresses=100)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 250}.{n % 250}")
    assert len(limiter._failures) <= 100


def test_429_after_too_many_failures_but_a_good_token_still_passes(tmp_path: Path) -> None:
    """The brake used to refuse good tokens too: one client with a stale token locked
    every other client of the same address out (a browser and the CLI on one host)."""
    store, tokens = store_with(tmp_path, "viewer")
    access = AccessControl("secure", store, FailureLimiter(limit=5, window=60))
    for _ in range(20):  # a request without a token is no guess
        with pytest.raises(AccessDenied) as caught:
            access.check("GET", "/v1/node", None, "10.0.0.9")
        assert caught.value.status == 401
    for _ in range(5):
        with pytest.raises(AccessDenied) as caught:
            access.check("GET", "/v1/node", "Bearer guess", "10.0.0.9")
        assert caught.value.status == 401
    for header in ("Bearer guess", None):  # further guesses, and no token, wait
        with pytest.raises(AccessDenied) as caught:
            access.check("GET", "/v1/node", header, "10.0.0.9")
        assert caught.value.status == 429 and caught.value.retry_after is not None
        assert 1 <= caught.value.retry_after <= 60
    holder = access.check("GET", "/v1/node", f"Bearer {tokens['viewer']}", "10.0.0.9")
    assert holder is not None and holder.role == "viewer"
    assert access.check("GET", "/v1/node", f"Bearer {tokens['viewer']}", "10.0.0.8")
    # a good token does not reset the count: the guesser is still braked
    with pytest.raises(AccessDenied) as caught:
        access.check("GET", "/v1/node", "Bearer guess", "10.0.0.9")
    assert caught.value.status == 429


def service_with(environment: object) -> dict:
    return {
        "id": "s1",
        "images": [
            {"id": "i1", "parameters": {"environment": environment, "command": "sleep 1"}},
            {"id": "i2", "parameters": {}},
        ],
    }


@pytest.mark.parametrize(
    ("environment", "masked"),
    [
        ({"DB_PASSWORD": "hunter2", "MODE": "x"}, {"DB_PASSWORD": MASK, "MODE": MASK}),
        (["DB_PASSWORD=hunter2", "FLAG", "A=b=c"], ["DB_PASSWORD=***", "FLAG", "A=***"]),
        ("weird", MASK),
    ],
)
def test_viewer_sees_environment_masked(environment: object, masked: object) -> None:
    body = service_with(environment)
    original = json.dumps(body)
    shown = redact_service(body, "viewer")
    assert shown["images"][0]["parameters"]["environment"] == masked
    assert shown["images"][0]["parameters"]["command"] == "sleep 1"
    assert shown["images"][1] == body["images"][1]
    assert json.dumps(body) == original, "the stored service is not changed"
    for role in ("operator", "admin", None):
        assert redact_service(body, role) == body


def test_audit_lines_and_rotation(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "log" / "audit.log", max_bytes=2000, backups=2)
    threads = [
        threading.Thread(
            target=lambda n=n: audit.record(
                who="alice", what=f"POST /v1/service #{n}", result=201, origin="10.0.0.1"
            )
        )
        for n in range(60)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = sorted(p.name for p in (tmp_path / "log").iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in files:
        path = tmp_path / "log" / name
        assert path.stat().st_size <= 2000
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            assert list(entry)[:5] == ["at", "who", "from", "what", "result"]
            assert entry["who"] == "alice" and entry["result"] == 201
    assert oct(os.stat(tmp_path / "log" / "audit.log").st_mode & 0o777) == "0o640"


def test_audit_never_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    AuditLog(tmp_path / "file" / "audit.log").record(who="x", what="y", result="z")


def test_openapi_document_states_the_role_table() -> None:
    """Every operation names the role the table asks for and documents 401/403/429."""
    import yaml

    spec = yaml.safe_load(
        (Path(__file__).parent.parent / "motey/communication/api/openapi.yaml").read_text()
    )
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            role = required_role(method.upper(), re.sub(r"\{\w+\}", "x", path))
            assert operation["x-motey-role"] == role, (method, path)
            responses = set(operation["responses"])
            if role is None:
                assert operation["security"] == [] and not responses & {"401", "403"}
                continue
            assert {"401", "429"} <= responses, (method, path)
            assert ("403" in responses) is (role != "viewer"), (method, path)


def test_a_token_file_the_node_may_not_read_grants_nothing(tmp_path: Path) -> None:
    store, tokens = store_with(tmp_path, "admin")
    assert store.authenticate(tokens["admin"]) is not None
    (tmp_path / "db" / "tokens.json").unlink()
    (tmp_path / "db" / "tokens.json").mkdir()  # reading it fails with an OSError
    assert store.authenticate(tokens["admin"]) is None


def test_a_token_path_that_cannot_be_statted_grants_nothing(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    store = TokenStore(None, tmp_path / "not-a-folder" / "tokens.json")
    assert store.records() == []
    assert AccessControl("secure", store).check("GET", "/v1/openapi.json", None, "a") is None


def test_failed_token_limit_must_be_positive(tmp_path: Path) -> None:
    from motey.config import load_config

    config = tmp_path / "config.ini"
    config.write_text("[NODE]\nip = 127.0.0.1\n[SECURITY]\nfailed_token_limit = 0\n")
    with pytest.raises(ConfigError, match="failed_token_limit"):
        load_config(config, environ={})
    config.write_text("[NODE]\nip = 127.0.0.1\n[SECURITY]\nfailed_token_window = 0\n")
    with pytest.raises(ConfigError, match="failed_token_window"):
        load_config(config, environ={})
    loaded = load_config(_minimal(tmp_path), environ={})
    assert (
        loaded["SECURITY"]["failed_token_limit"],
        loaded["SECURITY"]["failed_token_window"],
    ) == (
        10,
        60.0,
    )


def _minimal(tmp_path: Path) -> Path:
    path = tmp_path / "minimal.ini"
    path.write_text("[NODE]\nip = 127.0.0.1\n")
    return path


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "x", "role": "root", "sha256": "0" * 64, "created": ""},
        {"name": "x", "role": "admin", "sha256": "not-hex", "created": ""},
        {"name": 1, "role": "admin", "sha256": "0" * 64, "created": ""},
        {"name": "x", "role": ["admin"], "sha256": "0" * 64, "created": ""},
        {"name": "x", "role": "admin", "sha256": "0" * 64},
        {"name": "x", "role": "admin", "sha256": "0" * 64, "created": "", "extra": 1},
        ["x", "admin"],
        "x",
    ],
)
def test_a_token_file_with_a_bad_entry_is_refused_whole(tmp_path: Path, entry: object) -> None:
    good, token = TokenRecord.issue("good", "admin")
    path = tmp_path / "db" / "tokens.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"tokens": [good.__dict__, entry]}))
    with pytest.raises(ConfigError):
        read_token_file(path)
    store = TokenStore(None, path)
    assert store.authenticate(token) is None, "fails closed: the good entry counts neither"


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(body=ANY_JSON | st.fixed_dictionaries({"tokens": ANY_JSON}))
def test_any_token_file_is_read_or_refused_with_a_config_error(body: object) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokens.json"
        path.write_text(json.dumps(body))
        try:
            records = read_token_file(path)
        except ConfigError:
            return
        assert all(r.role in ROLES for r in records)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    | st.text(max_size=10),
    path=st.text(max_size=40) | st.from_regex(r"\A/v1(/[a-z.]{0,12}){0,3}\Z"),
    header=st.none()
    | st.text(max_size=80)
    | st.builds(lambda t: "Bearer " + t, st.text(max_size=80)),
    address=st.text(max_size=40),
)
def test_any_request_is_decided_with_a_clear_status(
    method: str, path: str, header: str | None, address: str
) -> None:
    access = _hostile_access()
    try:
        access.check(method, path, header, address)
    except AccessDenied as exc:
        assert exc.status in (401, 403, 429) and exc.message


_HOSTILE: list[AccessControl] = []


def _hostile_access() -> AccessControl:
    """One store with a token of each role, shared by the generated examples."""
    if not _HOSTILE:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="motey-access-"))
        records = [TokenRecord.issue(role, role)[0] for role in ROLES]
        write_token_file(folder / "tokens.json", records)
        _HOSTILE.append(AccessControl("secure", TokenStore(None, folder / "tokens.json")))
    return _HOSTILE[0]


def test_tokens_made_as_root_stay_readable_by_the_node_user(tmp_path: Path) -> None:
    """``sudo motey token create`` must not leave a file the node (its own user) cannot read."""
    from motey.security.token_admin import TokenAdmin

    folder = tmp_path / "db"
    folder.mkdir()
    # As root (how the suite runs, for Docker) the folder belongs to another user, as a
    # node's data folder does; otherwise the caller owns both.
    owner = 65534 if os.geteuid() == 0 else os.geteuid()
    if os.geteuid() == 0:
        os.chown(folder, owner, owner)
    admin = TokenAdmin(folder / "tokens.json", None)
    admin.create("hmi", "viewer")
    st = (folder / "tokens.json").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (owner, 0o600)
    admin.revoke("hmi")
    assert (folder / "tokens.json").stat().st_uid == owner
