"""Safe names (docs/security.md), shell-quoted hints, and what MCP `register` may not do, through the real bus.

Hostile names can still reach the registry by hand (a planted file, a 0.1 store); every command
relay shows must then still run as written in a shell, with nothing expanded.
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from agent_files import fake_agent_cli
from conftest import mailbox_lines, new_id, plant_registry, queued_to, stored_registry
from conftest import plant_receipt as keep_receipt
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bus import by_id, call, run_bus, tool_json, tool_result
from test_liveness import Procs, sleep_binary, wait_for, write_session

from relay.agents import claude
from relay.domain.ids import check_name, name_from_dir
from relay.faces import hook
from relay.store.contract import open_store
from relay.usecases import addressing, doorbell

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")

HOSTILE = "api$(touch {x}) `touch {x}` 'q' \"dq\" sp ace;touch {x}|touch {x}&\\ $HOME ~ *"


def registry(store_home: Path) -> dict:
    return stored_registry(store_home)


def plant(store_home: Path, sid: str, name: str, directory: str, tool: str = "claude") -> None:
    """A registry entry written by hand, bypassing the name rule (in whichever store the test's world uses)."""
    entry = {"id": sid, "dir": directory, "name": name, "tool": tool, "lastSeen": "2026-11-30T10:00:00.000Z"}
    plant_registry(store_home, {"agents": {sid: entry}, "names": {name: sid}})


def fake_launcher(directory: Path, record: Path) -> Path:
    """An executable `launcher` that appends its argv (as JSON) to `record`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "launcher"
    path.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    path.chmod(0o755)
    return path


def runs(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def sh(command: str, cwd: Path) -> None:
    done = subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


# -- the name rule, everywhere ------------------------------------------------------------------


def test_cli_register_refuses_a_shell_name(run_relay, store_home, tmp_path):
    marker = tmp_path / "x"
    result = run_relay("register", f"api$(touch {marker})", "--id", new_id())
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "invalid name" in err and "letters, digits" in err
    assert registry(store_home)["agents"] == {}
    assert not marker.exists()


@pytest.mark.parametrize("name", ["cli", "User", "SYSTEM", "relay", "Session-Relay"])
def test_cli_register_refuses_reserved_names(run_relay, store_home, name):
    result = run_relay("register", name, "--id", new_id())
    assert result.returncode == 1 and "reserved" in result.stderr.decode()
    assert registry(store_home)["agents"] == {}


@pytest.mark.parametrize("name", ["api$(touch /tmp/x)", "web app", "cli", "Relay", "a\u202eb", "-x", "x" * 65])
def test_mcp_register_refuses_bad_names(run_relay, store_home, name):
    me = new_id()
    replies, _ = run_bus(run_relay, call(1, "register", {"name": name}), extra_env={"CLAUDE_CODE_SESSION_ID": me})
    is_error, text = tool_result(by_id(replies)[1])
    assert is_error is True
    assert "`name`" in text or "reserved" in text or "invalid name" in text, text
    assert registry(store_home)["agents"] == {}


# -- shell-quoted hints -------------------------------------------------------------------------


def test_shell_quote_round_trips_through_sh(tmp_path):
    words = ["plain", "", "sp ace", "it's", '"dq"', "$(touch x)", "`touch x`", "a\\b", "~", "*", "\n", "=x", "%1"]
    record = tmp_path / "argv.jsonl"
    launcher = fake_launcher(tmp_path / "bin", record)
    sh(" ".join(addressing.shell_quote(w) for w in [str(launcher), *words]), tmp_path)
    assert runs(record) == [words]
    assert not (tmp_path / "x").exists()
    assert addressing.shell_quote("backend") == "backend"
    assert addressing.shell_quote("/plain/path/launcher") == "/plain/path/launcher"


def test_hostile_launcher_path_and_name_in_every_hint(env, store_home, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    record = tmp_path / "argv.jsonl"
    odd_dir = tmp_path / f'plug in $(touch {marker}) `touch {marker}` it\'s "x"'
    launcher = fake_launcher(odd_dir, record)
    monkeypatch.setenv("RELAY_LAUNCHER", str(launcher))
    name, sid = HOSTILE.format(x=marker), new_id()
    project = tmp_path / "proj"
    project.mkdir()
    plant(store_home, sid, name, str(project))
    entry = open_store().registry().resolve(name)
    assert entry is not None

    # the wake hint a sender gets
    hint = addressing.wake_hint(entry)
    sh(hint.split("reads the mail: ", 1)[1], tmp_path)
    # the hint for a session without a known dir
    sh(
        addressing.wake_hint({"id": sid, "dir": None, "tool": None}).split("wake it: ", 1)[1].split(" --dir")[0],
        tmp_path,
    )
    # the woken session's nudge
    nudge = doorbell.nudge(sid)
    sh(re.search(r"or run: (.*)\)\.$", nudge).group(1), tmp_path)
    assert runs(record) == [["wake", name], ["wake", "--id", sid], ["inbox", sid]]
    assert not marker.exists()

    # the hook's reply hint uses the same quoted launcher
    open_store().enqueue(
        sid, {"id": new_id(), "ts": "2026-11-30T10:00:00.000Z", "from": None, "fromName": "cli", "body": "hi"}
    )
    out = BytesIO()
    hook.handle(
        {"session_id": sid, "cwd": str(project), "hook_event_name": "SessionStart"}, "claude", out, open_store()
    )
    context = json.loads(out.getvalue())["hookSpecificOutput"]["additionalContext"]
    assert addressing.shell_quote(str(launcher)) in context
    assert f"{launcher} " not in context  # never the raw path


@pytest.mark.parametrize("name", ["two\nlines", "esc\x1b]52;c;x\x07", "bidi\u202e", "cr\r"])
def test_a_name_that_would_break_the_hint_line_is_replaced_by_the_id(name):
    sid = new_id()
    hint = addressing.wake_hint({"id": sid, "dir": "/p", "name": name, "tool": "claude"})
    assert hint.endswith(f" wake {sid}") and "\n" not in hint and "\x1b" not in hint


def test_plugin_root_with_a_space_and_dollar_is_quoted(env, tmp_path, monkeypatch):
    root = tmp_path / "my plugins $HOME"
    fake_launcher(root, tmp_path / "argv.jsonl")
    monkeypatch.setenv("CLAUDE_PLUGIN_ROOT", str(root))
    command = addressing.launcher_command()
    assert command == addressing.shell_quote(str(root / "launcher")) and command.startswith("'")
    sh(f"{command} inbox x", tmp_path)
    assert runs(tmp_path / "argv.jsonl") == [["inbox", "x"]]


def test_hints_name_the_launchers_real_path(env, tmp_path, monkeypatch):
    """The launcher leaves a symlinked directory in RELAY_LAUNCHER unresolved (that would cost it a
    process at every start); hints name the real path all the same. A relative value is no launcher."""
    launcher = fake_launcher(tmp_path / "real", tmp_path / "argv.jsonl")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setenv("RELAY_LAUNCHER", str(tmp_path / "link" / launcher.name))
    assert addressing.launcher_command() == str(launcher.resolve())
    monkeypatch.setenv("RELAY_LAUNCHER", "real/" + launcher.name)
    monkeypatch.delenv("CLAUDE_PLUGIN_ROOT", raising=False)
    assert addressing.launcher_command() != "real/" + launcher.name


def test_send_hint_through_the_bus_runs_as_written(run_relay, store_home, tmp_path):
    """The `send` result's hint, for a hand-planted hostile name, run by `sh -c` with a fake relay."""
    marker = tmp_path / "pwned"
    name, sid = HOSTILE.format(x=marker), new_id()
    plant(store_home, sid, name, str(tmp_path))
    replies, _ = run_bus(
        run_relay, call(1, "send", {"to": name, "body": "hi"}), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()}
    )
    hint = tool_json(by_id(replies)[1])["hint"]
    command = hint.split("reads the mail: ", 1)[1]
    record = tmp_path / "argv.jsonl"
    fake = fake_launcher(tmp_path / "fakebin", record)
    words = command.split(" ", 2)  # launcher, "wake", the quoted name
    assert words[1] == "wake"
    sh(f"{addressing.shell_quote(str(fake))} {words[1]} {words[2]}", tmp_path)
    assert runs(record) == [["wake", name]]
    assert not marker.exists()


# -- MCP register: only yourself or an unregistered id; no name of a running session ------------


@pytest.fixture
def procs() -> Iterator[Procs]:
    found = Procs()
    yield found
    found.close()


def start_live_claude(running: Procs, config: Path, sid: str) -> subprocess.Popen:
    """A process that is Claude Code for relay.agents.claude (argv[0] `claude`), with its sessions file."""
    proc = running.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    write_session(config, proc.pid, sid)
    return proc


def test_mcp_register_cannot_take_a_running_sessions_name(run_relay, store_home, procs, tmp_path):
    config = tmp_path / "claude-config"
    holder, me = new_id(), new_id()
    assert run_relay("register", "api", "--id", holder, "--dir", str(tmp_path), "--tool", "claude").returncode == 0
    proc = start_live_claude(procs, config, holder)
    bus_env = {"CLAUDE_CODE_SESSION_ID": me, "CLAUDE_CONFIG_DIR": str(config)}
    replies, _ = run_bus(run_relay, call(1, "register", {"name": "api"}), extra_env=bus_env)
    is_error, text = tool_result(by_id(replies)[1])
    assert is_error is True
    assert "running now" in text and "choose another name" in text and holder in text
    assert registry(store_home)["names"] == {"api": holder}
    assert me not in registry(store_home)["agents"]
    # a person with the CLI still can
    result = run_relay("register", "api", "--id", me, extra_env={"CLAUDE_CONFIG_DIR": str(config)})
    assert result.returncode == 0, result.stderr
    assert registry(store_home)["names"] == {"api": me}
    # once the holder has stopped, its name is free for a session too
    procs.stop(proc)
    assert run_relay("register", "api", "--id", holder).returncode == 0
    replies, _ = run_bus(run_relay, call(1, "register", {"name": "api"}), extra_env=bus_env)
    assert tool_json(by_id(replies)[1])["name"] == "api"
    assert registry(store_home)["names"] == {"api": me}


def test_mcp_register_cannot_rename_or_repoint_another_session(run_relay, store_home, tmp_path):
    victim, me = new_id(), new_id()
    assert run_relay("register", "victim", "--id", victim, "--dir", "/victim", "--tool", "codex").returncode == 0
    before = registry(store_home)
    replies, _ = run_bus(
        run_relay,
        call(1, "register", {"name": "victim", "id": victim, "dir": "/attacker"}),
        call(2, "register", {"name": "renamed", "id": victim}),
        call(3, "register", {"name": "victim2", "id": victim.upper()}),
        call(4, "register", {"name": "me"}),
        extra_env={"CLAUDE_CODE_SESSION_ID": me},
    )
    got = by_id(replies)
    for request_id in (1, 2, 3):
        is_error, text = tool_result(got[request_id])
        assert is_error is True and "is not you" in text and "leave out `id`" in text, text
    assert tool_json(got[4])["id"] == me
    after = registry(store_home)
    assert after["agents"][victim] == before["agents"][victim]
    assert after["names"]["victim"] == victim


def test_mcp_register_names_only_itself_never_an_unregistered_id(run_relay, store_home, tmp_path):
    """A made-up id sharing the prefix of a running but unregistered session must not be registered
    through MCP: it would catch the mail sent to that prefix. The session's own id is fine."""
    victim = new_id()  # running, discovered, never registered (its hook did not run)
    me = new_id()
    made_up = victim[:8] + "-0000-4000-8000-000000000000"
    replies, _ = run_bus(
        run_relay,
        call(1, "register", {"name": "newcomer", "id": made_up}),
        call(2, "register", {"name": "mine", "id": me.upper()}),
        extra_env={"CLAUDE_CODE_SESSION_ID": me, "RELAY_PROJECT_DIR": str(tmp_path)},
    )
    got = by_id(replies)
    is_error, text = tool_result(got[1])
    assert is_error is True and "not you" in text
    assert tool_json(got[2])["id"] == me
    assert registry(store_home)["names"] == {"mine": me}
    assert made_up not in registry(store_home)["agents"]
    # so mail to the victim's prefix... has no registered session to land on but the victim's whole id
    refused = run_relay("send", victim[:8], "--", "hi")
    assert refused.returncode == 1 and "no registered session id starts with" in refused.stderr.decode()


def test_mcp_register_cannot_take_a_running_sessions_name_in_another_case(run_relay, store_home, procs, tmp_path):
    config = tmp_path / "claude-config"
    holder, me = new_id(), new_id()
    ok(run_relay("register", "victimproj", "--id", holder, "--dir", str(tmp_path), "--tool", "claude"))
    start_live_claude(procs, config, holder)
    replies, _ = run_bus(
        run_relay,
        call(1, "register", {"name": "Victimproj"}),
        extra_env={"CLAUDE_CODE_SESSION_ID": me, "CLAUDE_CONFIG_DIR": str(config)},
    )
    is_error, text = tool_result(by_id(replies)[1])
    assert is_error is True and "running now" in text
    assert registry(store_home)["names"] == {"victimproj": holder}


def test_register_description_states_the_rules():
    from relay.faces import mcp_tools as tools

    [register] = [t for t in tools.TOOLS if t["name"] == "register"]
    for phrase in ("not a UUID", "cli", "session-relay", "only", "running session"):
        assert phrase in register["description"], phrase


# ---- autoname ----
# Sessions are named from the start: SessionStart gives a session without a name its
# project dir's base name, made to fit the name rule and unique (`api`, `api-2`, ...), in the same
# registry write; a name it has (given by `register`) is never changed by a later start.
#
# Black-box through the program under test (RELAY_CMD): the hook as the agent CLIs run it, then
# `relay list`, `relay send`, `relay register` and the MCP bus.

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")


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


# ---- id prefix ----
# Id prefixes: anywhere an id is accepted, a unique start of a known id with at least 8
# hex digits works. Session ids are known from the registry; message ids from the receipts the
# caller may see. An ambiguous prefix is a one-line error listing the candidates; a shorter one is
# refused as too short; a registered name wins over a prefix (relay.usecases.addressing.lookup).
#
# Black-box through the program under test (RELAY_CMD): the CLI's TO/WHO, --id, --from,
# --reply-to and status MSG_ID, and the MCP bus's to, replyTo, status and wait.

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")

A1 = "abcdef01-1111-4000-8000-000000000001"
A2 = "abcdef01-2222-4000-8000-000000000002"


def ok(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def refused(result) -> str:
    """The one-line error of a command that failed with exit 1."""
    err = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, err)
    assert err.count("\n") == 1, err
    return err


def peek(run_relay, who: str) -> dict:
    return json.loads(ok(run_relay("peek", who)))


def sent_id(run_relay, *args: str) -> str:
    return json.loads(ok(run_relay("send", "--json", *args)))["id"]


@pytest.fixture
def api(run_relay, store_home, tmp_path) -> str:
    """A session started in a dir named `api` (so it is named `api`)."""
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "api"))
    return sid


# -- session ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [lambda s: s[:8], lambda s: s[:8].upper(), lambda s: s[:9], lambda s: s[:14]])
def test_register_with_an_id_prefix(run_relay, store_home, api, cut):
    """`relay register alice --id bdc0b8c7` used to fail with exit 1."""
    out = ok(run_relay("register", "alice", "--id", cut(api)))
    assert out.startswith(f"registered alice -> {api} ")
    assert registry(store_home)["names"] == {"alice": api}


def test_send_inbox_peek_by_prefix(run_relay, store_home, api):
    assert queued_to(ok(run_relay("send", api[:8], "--", "one"))) == "api"
    assert queued_to(ok(run_relay("send", "--id", api[:10], "--", "two"))) == "api"
    assert [m["body"] for m in peek(run_relay, api[:8])["messages"]] == ["one", "two"]
    assert all(m["to"] == api for m in peek(run_relay, api[:8])["messages"])
    taken = json.loads(ok(run_relay("inbox", api[:12].upper())))
    assert taken["count"] == 2
    assert peek(run_relay, "api")["count"] == 0


def test_send_from_a_prefix(run_relay, store_home, api, tmp_path):
    other = new_id()
    start(run_relay, other, project(tmp_path, "web"))
    ok(run_relay("send", "api", "--from", other[:8], "--", "hi"))
    (message,) = peek(run_relay, "api")["messages"]
    assert (message["from"], message["fromName"]) == (other, "web")


def test_wake_by_prefix(run_relay, store_home, api, tmp_path):
    fake_agent_cli(tmp_path / "bin", tmp_path / "record.jsonl", "claude")
    path = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    by_who = json.loads(ok(run_relay("wake", api[:8], "--dry", extra_env=path)))
    by_id = json.loads(ok(run_relay("wake", "--id", api[:8], "--dir", str(tmp_path), "--tool", "claude", "--dry")))
    for planned in (by_who, by_id):
        assert api in planned["args"]  # the whole id reaches the agent CLI's argv


def test_an_ambiguous_prefix_lists_the_candidates(run_relay, store_home):
    ok(run_relay("register", "one", "--id", A1))
    ok(run_relay("register", "two", "--id", A2))
    for args in (
        ("send", "abcdef01", "--", "x"),
        ("send", "--id", "ABCDEF01-", "--", "x"),
        ("register", "three", "--id", "abcdef01"),
        ("peek", "abcdef01"),
        ("wake", "abcdef01", "--dry"),
    ):
        err = refused(run_relay(*args))
        assert "matches 2 sessions" in err and f"{A1} (one)" in err and f"{A2} (two)" in err, (args, err)
    assert mailbox_lines(store_home, A1) == []
    # one more character makes it unique
    assert queued_to(ok(run_relay("send", "abcdef01-2", "--", "x"))) == "two"


@pytest.mark.parametrize(
    "args",
    [
        ("send", "abcdef0", "--", "x"),
        ("send", "--id", "abcdef0", "--", "x"),
        ("register", "alice", "--id", "abcdef0"),
        ("inbox", "abcd"),
        ("wake", "--id", "abcdef0", "--dir", "/tmp", "--tool", "claude", "--dry"),
        ("status", "abcdef0"),
    ],
)
def test_a_prefix_under_8_hex_characters_is_too_short(run_relay, store_home, args):
    ok(run_relay("register", "one", "--id", A1))
    result = run_relay(*args)
    if "--id" in args:  # a malformed option value is a usage error (exit 2) naming the option
        assert result.returncode == 2, result.stderr
        err = result.stderr.decode()
        assert err.count("\n") == 1 and "--id" in err, err
    else:
        err = refused(result)
    assert "too short" in err and "at least 8 hex characters" in err, err


def test_a_prefix_that_matches_no_known_id(run_relay, store_home, api):
    missing = "01234567" if not api.startswith("01234567") else "fedcba98"
    err = refused(run_relay("send", missing, "--", "x"))
    assert f"no registered session id starts with {missing!r}" in err
    err = refused(run_relay("register", "x", "--id", missing))
    assert "no registered session id starts with" in err and "relay discover" in err


def test_a_name_planted_as_an_id_prefix_never_takes_the_prefix_mail(run_relay, store_home, tmp_path):
    """An attacker's session named `3f1b414d` (the start of a victim's id), planted in the registry
    past the name rule: mail sent to that prefix still reaches the victim, never the name's holder."""
    victim = "3f1b414d-0000-4000-8000-00000000000a"
    attacker = new_id()
    plant_registry(
        store_home,
        {
            "agents": {
                victim: {"id": victim, "dir": str(tmp_path / "v"), "name": "victim", "tool": "claude"},
                attacker: {"id": attacker, "dir": str(tmp_path / "a"), "name": "3f1b414d", "tool": "claude"},
            },
            "names": {"victim": victim, "3f1b414d": attacker},
        },
    )
    assert queued_to(ok(run_relay("send", "3f1b414d", "--", "hi"))) == "victim"
    assert peek(run_relay, victim)["count"] == 1 and peek(run_relay, attacker)["count"] == 0
    refused = run_relay("register", "3f1b414d", "--id", new_id())
    assert refused.returncode == 1 and "read as a session id" in refused.stderr.decode()


# -- message ids ----------------------------------------------------------------------------------


def test_status_and_reply_to_by_message_prefix(run_relay, store_home, api, tmp_path):
    web = new_id()
    start(run_relay, web, project(tmp_path, "web"))
    question = sent_id(run_relay, "api", "--from", "web", "--", "question?")
    line = ok(run_relay("status", question[:8]))
    assert line.startswith(f"{question} -> api: queued")
    ok(run_relay("send", "web", "--from", "api", "--reply-to", question[:8], "--", "answer"))
    found = json.loads(ok(run_relay("status", question[:10].upper(), "--json")))
    assert found["id"] == question and found["state"] == "replied"
    (reply,) = peek(run_relay, "web")["messages"]
    assert reply["replyTo"] == question


def plant_receipt(store_home: Path, message_id: str, sender: str, to: str) -> None:
    receipt = {"id": message_id, "from": sender, "to": to, "toName": None, "thread": message_id}
    receipt.update(queuedAt="2026-12-01T00:00:00.000Z", deliveredAt=None, repliedAt=None, replyId=None)
    keep_receipt(store_home, receipt)


def test_an_ambiguous_message_prefix_lists_the_candidates(run_relay, store_home, api):
    other = new_id()
    plant_receipt(store_home, A1, other, api)
    plant_receipt(store_home, A2, other, other)
    err = refused(run_relay("status", "abcdef01"))
    assert "matches 2 messages" in err and A1 in err and A2 in err
    assert ok(run_relay("status", "abcdef01-2")).startswith(f"{A2} -> {other}: ")  # a planted receipt: state from mail
    # a session sees only its own mail: for `api` the same prefix names one message
    replies, _ = run_bus(run_relay, call(1, "status", {"id": "abcdef01"}), extra_env={"CLAUDE_CODE_SESSION_ID": api})
    assert tool_json(by_id(replies)[1])["id"] == A1


def test_mcp_faces_take_prefixes(run_relay, store_home, api, tmp_path):
    web = new_id()
    start(run_relay, web, project(tmp_path, "web"))
    as_web = {"CLAUDE_CODE_SESSION_ID": web}
    replies, _ = run_bus(run_relay, call(1, "send", {"to": api[:8], "body": "question?"}), extra_env=as_web)
    sent = tool_json(by_id(replies)[1])
    assert sent["delivered_to"] == "api"
    question = sent["id"]
    replies, _ = run_bus(
        run_relay,
        call(1, "send", {"to": "web", "body": "answer", "replyTo": question[:8]}),
        extra_env={"CLAUDE_CODE_SESSION_ID": api},
    )
    tool_json(by_id(replies)[1])
    replies, _ = run_bus(
        run_relay,
        call(2, "status", {"id": question[:8]}),
        call(3, "wait", {"id": question[:9], "timeoutSec": 0}),
        call(4, "status", {"id": question[:7]}),
        call(5, "send", {"to": "abcdef01", "body": "x"}),
        extra_env=as_web,
    )
    answers = by_id(replies)
    assert tool_json(answers[2])["state"] == "replied"
    waited = tool_json(answers[3])
    assert waited["replied"] is True and waited["message"]["body"] == "answer"
    is_error, text = tool_result(answers[4])
    assert is_error and "at least 8" in text
    is_error, text = tool_result(answers[5])
    assert is_error and "no registered session id starts with 'abcdef01'" in text
