"""Safe names (docs/security.md), shell-quoted hints, and what MCP `register` may not do, through the real bus.

Hostile names can still reach the registry by hand (a planted file, a 0.1 store); every command
relay shows must then still run as written in a shell, with nothing expanded.
"""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from conftest import new_id, plant_registry, stored_registry
from test_bus import by_id, call, run_bus, tool_json, tool_result
from test_liveness import Procs, sleep_binary, wait_for, write_session

from relay.agents import claude
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
        assert is_error is True and "registered already" in text and "leave out `id`" in text, text
    assert tool_json(got[4])["id"] == me
    after = registry(store_home)
    assert after["agents"][victim] == before["agents"][victim]
    assert after["names"]["victim"] == victim


def test_mcp_register_may_name_an_unregistered_session_once(run_relay, store_home):
    other, me = new_id(), new_id()
    replies, _ = run_bus(
        run_relay,
        call(1, "register", {"name": "newcomer", "id": other}),
        call(2, "register", {"name": "again", "id": other}),
        extra_env={"CLAUDE_CODE_SESSION_ID": me},
    )
    got = by_id(replies)
    assert tool_json(got[1])["id"] == other
    assert tool_result(got[2])[0] is True
    assert registry(store_home)["names"] == {"newcomer": other}


def test_register_description_states_the_rules():
    from relay.faces import mcp_tools as tools

    [register] = [t for t in tools.TOOLS if t["name"] == "register"]
    for phrase in ("not a UUID", "cli", "session-relay", "only", "running session"):
        assert phrase in register["description"], phrase
