"""Session ids, names, the store's home and its file names (docs/store.md, docs/security.md)."""

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from agent_files import uuid7
from conftest import REPO, file_registry, new_id
from hypothesis import given
from hypothesis import strategies as st

from relay.domain import ids
from relay.store import layout
from relay.util.errors import RelayError

# -- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "123e4567-e89b-12d3-a456-426614174000",
        "123E4567-E89B-12D3-A456-426614174000",
        "00000000-0000-0000-0000-000000000000",
        # Fresh each run, so named: xdist's workers must collect the same test ids.
        pytest.param(str(uuid.uuid4()), id="random-uuid4"),
        pytest.param(str(uuid.uuid1()), id="random-uuid1"),
    ],
)
def test_is_uuid_accepts(value):
    assert ids.is_uuid(value)
    assert ids.require_uuid(value).lower() == value.lower()


def _uuid_like() -> st.SearchStrategy[str]:
    """Strings near the UUID shape: hex digits, dashes, lookalikes, around 36 characters."""
    chars = st.sampled_from("0123456789abcdefABCDEFgG- _\n\uff11\u0660")
    mutated = st.builds(
        lambda base, at, ch: base[:at] + ch + base[at + 1 :],
        st.just("123e4567-e89b-12d3-a456-426614174000"),
        st.integers(0, 36),
        chars,
    )
    return st.one_of(st.text(chars, min_size=30, max_size=40), mutated)


@given(_uuid_like())
def test_is_uuid_is_the_uuid_pattern(value):
    """is_uuid checks without re what UUID_PATTERN says, for strings built to sit near its edge."""
    assert ids.is_uuid(value) == bool(re.fullmatch(ids.UUID_PATTERN.strip("^$"), value))


def test_uuid7_accepted():
    value = uuid7()
    assert value[14] == "7"
    assert ids.is_uuid(value)


@pytest.mark.parametrize(
    "value",
    [
        "--config=evil",
        "-c",
        "",
        " 123e4567-e89b-12d3-a456-426614174000",
        "123e4567-e89b-12d3-a456-426614174000 ",
        "123e4567-e89b-12d3-a456-426614174000\n",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "123e4567e89b12d3a456426614174000",
        "123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-4266141740000",
        "123e4567-e89b-12d3-a456-42661417400g",
        "../../../etc/passwd",
        "123e4567-e89b-12d3-a456-426614174000/../x",
        "\uff11\uff12\uff13e4567-e89b-12d3-a456-426614174000",  # full-width digits are not hex
        None,
        42,
        ["123e4567-e89b-12d3-a456-426614174000"],
    ],
)
def test_is_uuid_refuses(value):
    assert not ids.is_uuid(value)
    with pytest.raises(RelayError) as caught:
        ids.require_uuid(value)
    message = str(caught.value)
    assert repr(value) in message and "UUID" in message
    assert "\n" not in message


def test_require_uuid_names_what():
    with pytest.raises(RelayError, match="invalid recipient id"):
        ids.require_uuid("x", "recipient id")


def test_new_uuid4_is_version_4_and_unique():
    seen = {ids.new_uuid4() for _ in range(200)}
    assert len(seen) == 200
    for value in seen:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


@pytest.mark.parametrize(
    "name",
    ["backend", "x" * 64, "x.y_z-1", "A", "v1.2", "my_proj", "CLI2", "relay-x", "9", "cafe", "abcdef1", "...", "a.b"],
)
def test_check_name_accepts(name):
    assert ids.check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        *["", "   ", " lead", "trail ", "a" * 65, "two\nlines", "tab\there", "bell\x07", "del\x7f", "-x"],
        *["--config=evil", "123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000", None, 7],
        *["web app", "Zoë", "</session-relay-mail>", "api$(touch /tmp/x)", "a`id`", "a'b", 'a"b', "a;b", "a|b"],
        *[
            "a&b",
            "a>b",
            "~x",
            "a*",
            "a?",
            "a/b",
            "a\\b",
            "a=b",
            "a:b",
            "a\u202eb",
            "a\u200bb",
            "\uff41\uff42",
            "\u0430",
        ],
    ],
)
def test_check_name_refuses(name):
    with pytest.raises(RelayError) as caught:
        ids.check_name(name)
    message = str(caught.value)
    assert "\n" not in message and "invalid name" in message


@pytest.mark.parametrize(
    "name",
    [
        *["cli", "CLI", "user", "User", "system", "relay", "Relay", "session-relay", "SESSION-RELAY"],
        # compared without '-', '_' and '.', in any case
        *["relay.", "session_relay", "Session.Relay", "sessionrelay", "c-l-i", "_user_", "Sys.tem", "RELAY--"],
    ],
)
def test_reserved_names_are_refused_in_any_case_and_punctuation(name):
    with pytest.raises(RelayError, match="reserved"):
        ids.check_name(name)


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused(name):
    with pytest.raises(RelayError, match=r"cannot be '\.' or '\.\.'"):
        ids.check_name(name)


@pytest.mark.parametrize("name", ["3f1b414d", "90068F62", "deadbeefcafe", "0123456789", "3f1b414d-12", "3f1b414d-"])
def test_names_that_read_as_an_id_prefix_are_refused(name):
    """A name of 8+ hex digits would shadow the id prefix a person types: mail to the prefix would
    go to the session holding that name."""
    with pytest.raises(RelayError, match="read as a session id"):
        ids.check_name(name)


@pytest.mark.parametrize(
    ("directory", "expected"),
    [("/w/90068f62", "session-90068f62"), ("/w/DEADBEEFcafe", "session-DEADBEEFcafe"), ("/w/cafe", "cafe")],
)
def test_a_hex_only_dir_gets_a_session_prefix(directory, expected):
    name = ids.name_from_dir(directory, set())
    assert name == expected
    assert ids.check_name(name) == name


@pytest.mark.parametrize(
    ("directory", "taken", "expected"),
    [("/w/relay.", set(), "relay-2"), ("/w/Session_Relay", set(), "Session_Relay-2"), ("/w/Api", {"api"}, "Api-2")],
)
def test_an_auto_name_that_is_reserved_or_taken_gets_a_number(directory, taken, expected):
    assert ids.name_from_dir(directory, taken) == expected


@pytest.mark.parametrize(
    ("name", "base", "numbered"),
    [("api-2", "api", True), ("API-13", "api", True), ("api", "api", False), ("ap-2", "api", False)],
)
def test_auto_suffixed(name, base, numbered):
    assert ids.auto_suffixed(name, base) is numbered


def _reads_as_id_start(name):
    shape = "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh"
    return 8 <= len(name) <= len(shape) and all(
        c == "-" if s == "-" else c in "0123456789abcdefABCDEF" for c, s in zip(name, shape, strict=False)
    )


@given(st.text(max_size=80))
def test_check_name_accepts_exactly_the_rule(name):
    rule = (
        re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name) is not None
        and not name.startswith("-")
        and name not in (".", "..")
        and not ids.is_session_id(name)
        and re.fullmatch(r"[0-9a-fA-F]{8,}", name) is None
        and not _reads_as_id_start(name)
        and re.sub(r"[-_.]", "", name.lower()) not in ("cli", "user", "system", "relay", "sessionrelay")
    )
    try:
        ids.check_name(name)
    except RelayError:
        assert not rule
    else:
        assert rule


def test_one_session_id_pattern_for_ids_and_the_mcp_schemas():
    from relay.faces import mcp_tools as tools

    assert re.fullmatch(ids.UUID_PATTERN.strip("^$"), "123e4567-e89b-12d3-a456-426614174000")
    schemas = json.dumps([tool["inputSchema"] for tool in tools.TOOLS])
    assert json.dumps(ids.SESSION_ID_PATTERN) in schemas
    assert "[0-9a-fA-F]{8}" not in schemas.replace(json.dumps(ids.SESSION_ID_PATTERN), "")
    register = next(tool for tool in tools.TOOLS if tool["name"] == "register")["inputSchema"]
    assert register["properties"]["name"]["pattern"] == ids.NAME_PATTERN


# -- file names -------------------------------------------------------------------------------


def test_marker_name_is_claude_codes_scheme():
    assert layout.marker_name("/home/u/my project.v2") == "-home-u-my-project-v2"
    assert layout.marker_name("/srv/ünï/x_y") == "-srv--n--x-y"
    assert re.fullmatch(r"[A-Za-z0-9-]+", layout.marker_name("/a/../../etc/passwd"))


def test_marker_name_long_dirs_stay_short_and_distinct():
    base = "/very/long/" + "d" * 300
    a, b = layout.marker_name(base + "/a"), layout.marker_name(base + "/b")
    assert a != b
    assert len(a.encode()) <= 255 and len(b.encode()) <= 255
    assert re.fullmatch(r"[A-Za-z0-9-]+", a)


@given(st.text(min_size=1, max_size=400))
def test_dir_digest_is_hashlibs_sha256(directory):
    """Markers written by earlier relays (hashlib) keep their names: the built-in sha256 must agree."""
    import hashlib

    expected = hashlib.sha256(directory.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    assert layout.dir_digest(directory) == expected


def test_dir_digest_does_not_load_openssl():
    """hashlib loads OpenSSL (~10 M instructions); the MCP server's marker lookup must not pay for it."""
    code = "import sys; from relay.store import layout; layout.dir_digest('/x'); print('_hashlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


@given(st.text(min_size=1, max_size=400))
def test_marker_name_is_always_a_safe_single_component(directory):
    name = layout.marker_name(directory)
    assert name and "/" not in name and name not in (".", "..")
    assert len(name.encode()) <= 255
    assert re.fullmatch(r"[A-Za-z0-9-]+", name)


def test_mailbox_name():
    sid = new_id()
    assert layout.mailbox_name(sid) == f"{sid}.jsonl"
    assert layout.mailbox_name("../../etc/passwd") == "..-..-etc-passwd.jsonl"
    assert "/" not in layout.mailbox_name("a/b\\c d")


# -- the store's home -------------------------------------------------------------------------


def test_relay_home_precedence(env, monkeypatch, tmp_path):
    monkeypatch.setenv("AGENT_RELAY_HOME", str(tmp_path / "agent"))
    monkeypatch.setenv("SESSION_RELAY_HOME", str(tmp_path / "session"))
    assert Path(layout.relay_home()) == tmp_path / "agent"
    monkeypatch.setenv("AGENT_RELAY_HOME", "")  # empty counts as unset
    assert Path(layout.relay_home()) == tmp_path / "session"
    monkeypatch.setenv("SESSION_RELAY_HOME", "")
    assert Path(layout.relay_home()) == Path(env["HOME"]) / ".agent-relay"
    monkeypatch.delenv("AGENT_RELAY_HOME")
    monkeypatch.delenv("SESSION_RELAY_HOME")
    assert Path(layout.relay_home()) == Path(env["HOME"]) / ".agent-relay"
    monkeypatch.setenv("AGENT_RELAY_HOME", "~/custom")
    assert Path(layout.relay_home()) == Path(env["HOME"]) / "custom"


@pytest.mark.parametrize(
    ("agent", "session", "where"),
    [("set", "set", "agent"), ("", "set", "session"), ("", "", "default"), ("set", "", "agent")],
)
def test_store_home_black_box(run_relay, env, tmp_path, agent, session, where):
    locations = {"agent": tmp_path / "agent-home", "session": tmp_path / "session-home"}
    locations["default"] = Path(env["HOME"]) / ".agent-relay"
    extra = {
        "AGENT_RELAY_HOME": str(locations["agent"]) if agent else "",
        "SESSION_RELAY_HOME": str(locations["session"]) if session else "",
    }
    sid = new_id()
    assert run_relay("register", "probe", "--id", sid, extra_env=extra).returncode == 0
    for key, path in locations.items():
        registry = path / "agents" / f"{sid}.json"
        if key == where:
            assert file_registry(path)["names"] == {"probe": sid}
            assert (path.stat().st_mode & 0o777) == 0o700
            assert (registry.stat().st_mode & 0o777) == 0o600
        else:
            assert not path.exists(), key


def test_store_files_are_named_by_the_spec(run_relay, store_home, tmp_path):
    sid = new_id()
    project = tmp_path / "Proj Dir.x"
    project.mkdir()
    event = json.dumps({"session_id": sid, "cwd": str(project), "hook_event_name": "SessionStart"})
    assert run_relay("hook", input=event).returncode == 0
    assert run_relay("send", sid, "--", "hi").returncode == 0
    assert (store_home / "markers" / re.sub(r"[^A-Za-z0-9]", "-", str(project))).read_text() == f"{sid}\n{project}\n"
    lines = (store_home / "mailbox" / f"{sid}.jsonl").read_text().splitlines()
    assert len(lines) == 1
    message = json.loads(lines[0])
    assert set(message) == {"id", "ts", "from", "fromName", "to", "toName", "body"}
    assert ids.is_uuid(message["id"]) and uuid.UUID(message["id"]).version == 4


# -- OpenCode's session ids -------------------------------------------------------------------

OPENCODE_ID = "ses_db16e0fa9ffey3oGpK6C4PyxpG"  # as OpenCode 1.18 mints them


@pytest.mark.parametrize(
    "value",
    [
        OPENCODE_ID,
        "ses_" + "0" * 26,
        "ses_" + "Z" * 26,
    ],
)
def test_an_opencode_id_is_a_session_id_kept_as_written(value):
    assert ids.is_opencode_id(value) and ids.is_session_id(value)
    assert re.fullmatch(ids.SESSION_ID_PATTERN, value) and re.fullmatch(ids.OPENCODE_ID_PATTERN, value)
    assert ids.require_uuid(value) == value  # its case is part of it: never lowered
    assert not ids.is_uuid(value)  # message ids stay UUIDs


@pytest.mark.parametrize(
    "value",
    [
        "ses_" + "a" * 25,
        "ses_" + "a" * 27,
        "SES_" + "a" * 26,
        "ses-" + "a" * 26,
        "ses_" + "a" * 25 + "-",
        "ses_" + "a" * 25 + "_",
        "ses_" + "a" * 25 + "\u00e9",
        "--ses_" + "a" * 24,
        "ses_" + "a" * 25 + "\n",
    ],
)
def test_anything_else_shaped_like_an_opencode_id_is_refused(value):
    assert not ids.is_session_id(value)
    assert not re.fullmatch(ids.SESSION_ID_PATTERN, value)
    with pytest.raises(RelayError, match="invalid session id"):
        ids.require_uuid(value)


def test_an_opencode_id_is_no_name():
    with pytest.raises(RelayError, match="cannot be a session id"):
        ids.check_name(OPENCODE_ID)
    assert ids.name_from_dir("/x/" + OPENCODE_ID, set()) == ids.FALLBACK_NAME
