"""Sessions are named from the start (issue 12): SessionStart gives a session without a name its
project dir's base name, made to fit the name rule and unique (`api`, `api-2`, ...), in the same
registry write; a name it has (given by `register`) is never changed by a later start.

Black-box through the program under test (RELAY_CMD): the hook as the agent CLIs run it, then
`relay list`, `relay send`, `relay register` and the MCP bus.
"""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import new_id, queued_to, stored_registry
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bus import by_id, call, run_bus, tool_json

from relay.domain.ids import check_name, name_from_dir

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")


def registry(store_home: Path) -> dict:
    return stored_registry(store_home)


def start_event(sid: str, directory: Path | str) -> str:
    return json.dumps(
        {"session_id": sid, "cwd": str(directory), "hook_event_name": "SessionStart", "source": "startup"}
    )


def start(run_relay, sid: str, directory: Path | str, *tool: str) -> None:
    result = run_relay("hook", *tool, input=start_event(sid, directory))
    assert result.returncode == 0 and result.stderr == b"", result.stderr


def project(tmp_path: Path, *parts: str) -> Path:
    path = tmp_path.joinpath("projects", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def name_of(store_home: Path, sid: str) -> object:
    return registry(store_home)["agents"][sid]["name"]


@pytest.mark.parametrize("tool", [(), ("codex",)], ids=["claude", "codex"])
def test_a_new_session_is_named_after_its_dir_and_reachable_by_that_name(run_relay, store_home, tmp_path, tool):
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "api"), *tool)
    data = registry(store_home)
    assert data["agents"][sid]["name"] == "api" and data["names"] == {"api": sid}
    listed = run_relay("list").stdout.decode().splitlines()
    assert [line.split()[:3] for line in listed if sid in line] == [["api", tool[0] if tool else "claude", sid]]
    sent = run_relay("send", "api", "--", "hello")  # before any `register`
    assert sent.returncode == 0, sent.stderr
    assert queued_to(sent.stdout) == "api"


def test_names_are_unique_api_then_api_2(run_relay, store_home, tmp_path):
    sids = [new_id() for _ in range(3)]
    for n, sid in enumerate(sids):
        start(run_relay, sid, project(tmp_path, f"checkout{n}", "api"))
    assert [name_of(store_home, sid) for sid in sids] == ["api", "api-2", "api-3"]
    # a session's later start keeps its name, even in another dir
    start(run_relay, sids[2], project(tmp_path, "elsewhere"))
    assert name_of(store_home, sids[2]) == "api-3"
    # names differing only in case are one name: `API` is taken by `api`
    other = new_id()
    start(run_relay, other, project(tmp_path, "upper", "API"))
    assert name_of(store_home, other) == "API-4"


def test_concurrent_starts_in_same_named_dirs_get_different_names(relay_cmd, env, store_home, tmp_path):
    """Chosen under the store lock in the one registry write: no two starts can pick the same name."""
    sids = [new_id() for _ in range(6)]
    procs = [
        subprocess.Popen(
            [*relay_cmd, "hook", *(("codex",) if n % 2 else ())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        for n in range(len(sids))
    ]
    for n, (proc, sid) in enumerate(zip(procs, sids, strict=True)):
        assert proc.stdin is not None
        proc.stdin.write(start_event(sid, project(tmp_path, f"clone{n}", "api")).encode())
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
    data = registry(store_home)
    names = [data["agents"][sid]["name"] for sid in sids]
    assert sorted(names) == sorted(["api", *(f"api-{n}" for n in range(2, 7))]), names
    assert data["names"] == {name: sid for name, sid in zip(names, sids, strict=True)}


UUID_DIR = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize(
    ("dirname", "expected"),
    [
        ("my project (v2)", "my-project-v2"),
        ("café crème", "cafe-creme"),
        ("日本語", "session"),
        ("ünïcödé-app", "unicode-app"),
        ("relay", "relay-2"),
        ("Session-Relay", "Session-Relay-2"),
        ("cli", "cli-2"),
        (UUID_DIR, "session"),
        ("x" * 100, "x" * 64),
        (".hidden", "hidden"),
        ("--config=evil", "config-evil"),
        ("a$(touch x);b", "a-touch-x-b"),
        ("tab\there", "tab-here"),
    ],
)
def test_unsafe_dir_names_become_safe_names(run_relay, store_home, tmp_path, dirname, expected):
    sid = new_id()
    start(run_relay, sid, project(tmp_path, dirname))
    assert name_of(store_home, sid) == expected
    check_name(expected)
    # and the name works as an address, as written
    sent = run_relay("send", expected, "--", "hi")
    assert sent.returncode == 0 and queued_to(sent.stdout) == expected, sent.stderr


def test_the_root_dir_and_a_long_taken_name(run_relay, store_home, tmp_path):
    root = new_id()
    start(run_relay, root, "/")
    assert name_of(store_home, root) == "session"
    longs = [new_id(), new_id()]
    for n, sid in enumerate(longs):
        start(run_relay, sid, project(tmp_path, f"l{n}", "y" * 80))
    assert [name_of(store_home, sid) for sid in longs] == ["y" * 64, "y" * 62 + "-2"]


def test_register_renames_and_a_later_start_keeps_the_name(run_relay, store_home, tmp_path):
    sid, directory = new_id(), project(tmp_path, "api")
    start(run_relay, sid, directory)
    assert run_relay("register", "alice", "--id", sid).returncode == 0
    start(run_relay, sid, directory)
    data = registry(store_home)
    assert data["agents"][sid]["name"] == "alice" and data["names"] == {"alice": sid}
    # the freed `api` goes to the next new session in such a dir
    other = new_id()
    start(run_relay, other, project(tmp_path, "b", "api"))
    assert name_of(store_home, other) == "api"


def test_a_session_whose_name_was_taken_gets_a_new_one_at_its_next_start(run_relay, store_home, tmp_path):
    a, b = new_id(), new_id()
    start(run_relay, a, project(tmp_path, "api"))
    assert run_relay("register", "api", "--id", b).returncode == 0  # a person moves the name to b
    assert name_of(store_home, a) is None
    start(run_relay, a, project(tmp_path, "api"))
    assert name_of(store_home, a) == "api-2"
    assert registry(store_home)["names"] == {"api": b, "api-2": a}


def test_a_session_renames_itself_through_mcp(run_relay, store_home, tmp_path):
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "api"))
    replies, _ = run_bus(run_relay, call(1, "register", {"name": "backend"}), extra_env={"CLAUDE_CODE_SESSION_ID": sid})
    assert tool_json(by_id(replies)[1])["name"] == "backend"
    assert registry(store_home)["names"] == {"backend": sid}


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=0, max_size=120),
    st.sets(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=70), max_size=5),
)
def test_any_dir_name_gives_a_valid_unused_name(base, taken):
    directory = "/srv/" + base.replace("/", "_").replace("\x00", "")
    taken_lower = {t.lower() for t in taken}
    name = name_from_dir(directory, taken_lower)
    assert check_name(name) == name  # 1-64 safe characters, no leading '-', not a UUID, not reserved
    assert name.lower() not in taken_lower
