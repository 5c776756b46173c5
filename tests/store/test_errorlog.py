"""An unexpected error leaves its traceback in `<home>/error.log` and one line that says so (docs/security.md).

Unexpected errors are bugs, so they are forced: in a subprocess by a `sitecustomize` on PYTHONPATH
that makes the store raise ZeroDivisionError (these run the sources with this interpreter, because a
frozen binary does not read sitecustomize), and in-process by monkeypatching.
"""

import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, new_id

from relay.store import errorlog

STAMP = re.compile(r"^==== \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z relay \S+ pid \d+ ", re.MULTILINE)


def run_broken(env: dict[str, str], tmp_path: Path, *args: str, message: str = "", stdin: bytes = b"", **more: str):
    """Run `python -m relay ARGS` with Store() raising ZeroDivisionError(message)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import relay.store.files\n"
        "def _boom(self, *args, **kwargs):\n"
        f"    raise ZeroDivisionError({message!r} or 'division by zero')\n"
        "relay.store.files.Store.__init__ = _boom\n"
    )
    run_env = {**env, "PYTHONPATH": f"{site}{os.pathsep}{REPO}", **more}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        input=stdin,
        capture_output=True,
        env=run_env,
        cwd=str(tmp_path),
        timeout=60,
        check=False,
    )


def log_path(store_home: Path) -> Path:
    return store_home / "error.log"


def test_cli_unexpected_error_is_one_line_naming_the_log_with_the_traceback(env, tmp_path, store_home):
    """Failed before: the line said `please report this` and the traceback was lost."""
    result = run_broken(env, tmp_path, "list")
    assert result.returncode == 1
    assert result.stdout == b""
    log = log_path(store_home)
    assert result.stderr.decode() == (f"relay: unexpected ZeroDivisionError: division by zero (details in {log})\n")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert len(STAMP.findall(text)) == 1
    assert " cli list\n" in text
    assert "Traceback (most recent call last):" in text
    assert "in _boom" in text and text.rstrip().endswith("ZeroDivisionError: division by zero")

    again = run_broken(env, tmp_path, "send", "bob", "--", "a private message")
    assert again.returncode == 1
    text = log.read_text()
    assert len(STAMP.findall(text)) == 2, "appended, not replaced"
    assert " cli send\n" in text
    assert "a private message" not in text  # the command is named, its arguments are not logged


def test_hook_unexpected_error_is_logged_and_still_exits_0(env, tmp_path, store_home):
    event = json.dumps({"session_id": new_id(), "cwd": str(tmp_path), "hook_event_name": "SessionStart"})
    result = run_broken(env, tmp_path, "hook", stdin=event.encode())
    assert result.returncode == 0
    assert result.stdout == b""
    log = log_path(store_home)
    assert result.stderr.decode() == (
        f"[session-relay/hook] unexpected ZeroDivisionError: division by zero (details in {log})\n"
    )
    text = log.read_text()
    assert " hook claude\n" in text and "ZeroDivisionError" in text


def test_bus_internal_error_answers_with_the_log_and_keeps_serving(env, store_home, monkeypatch):
    from relay.faces import mcp_tools as tools
    from relay.faces.bus import Server
    from relay.store.files import Store

    def explode(*args: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(tools._HANDLERS, "roster", explode)
    out = io.BytesIO()
    server = Server(Store(), out)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "roster", "arguments": {}}}
    assert server.handle_line(json.dumps(call).encode()) is True
    assert server.handle_line(b'{"jsonrpc":"2.0","id":2,"method":"ping"}') is True
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    log = log_path(store_home)
    assert first["id"] == 1 and first["error"] == {
        "code": -32603,
        "message": f"internal error: unexpected ZeroDivisionError: division by zero (details in {log})",
    }
    assert second == {"jsonrpc": "2.0", "id": 2, "result": {}}
    text = log.read_text()
    assert " bus tools/call roster\n" in text and "in explode" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_cli_in_process_unexpected_error(env, store_home, monkeypatch, capsys):
    from relay.faces import cli, commands

    def explode(*args: Any) -> int:
        raise KeyError("no such thing")

    monkeypatch.setitem(commands.HANDLERS, "list", explode)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    assert err == f"relay: unexpected KeyError: 'no such thing' (details in {log_path(store_home)})\n"
    assert "in explode" in log_path(store_home).read_text()


def test_hook_in_process_unexpected_error(env, store_home, monkeypatch, capsys):
    from relay.faces import hook

    monkeypatch.setattr(hook, "read_event", lambda stdin: 1 / 0)
    assert hook.main(["codex"]) == 0
    assert capsys.readouterr().err.endswith(f"(details in {log_path(store_home)})\n")
    assert " hook codex\n" in log_path(store_home).read_text()


# -- the log itself is never a way in --------------------------------------------------------------


def test_a_symlink_planted_as_the_log_is_never_followed(env, tmp_path, store_home):
    store_home.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("untouched\n")
    log_path(store_home).symlink_to(target)
    result = run_broken(env, tmp_path, "list")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "relay: unexpected ZeroDivisionError: division by zero (please report this with the command you ran)\n"
    )
    assert target.read_text() == "untouched\n"
    assert log_path(store_home).is_symlink()


def test_a_hard_link_planted_as_the_log_is_never_written_through(env, tmp_path, store_home):
    store_home.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("untouched\n")
    target.chmod(0o600)
    os.link(target, log_path(store_home))
    result = run_broken(env, tmp_path, "list")
    assert result.returncode == 1
    assert b"please report this" in result.stderr
    assert target.read_text() == "untouched\n"


def test_a_fifo_planted_as_the_log_does_not_block(env, tmp_path, store_home):
    store_home.mkdir(mode=0o700)
    os.mkfifo(log_path(store_home), 0o600)
    result = run_broken(env, tmp_path, "list")  # run_broken's timeout fails the test on a hang
    assert result.returncode == 1
    assert b"please report this" in result.stderr


def test_a_log_that_cannot_be_written_still_gives_the_one_line(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_broken(env, tmp_path, "list", AGENT_RELAY_HOME=str(blocker / "home"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "relay: unexpected ZeroDivisionError: division by zero (please report this with the command you ran)\n"
    )


def test_a_home_owned_by_someone_else_gets_no_log(env, tmp_path, store_home):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the home to another user")
    store_home.mkdir(mode=0o700)
    os.chown(store_home, 65534, 65534)
    result = run_broken(env, tmp_path, "list")
    assert b"please report this" in result.stderr
    assert not log_path(store_home).exists()


def test_a_loose_log_is_tightened_to_0600(env, tmp_path, store_home):
    store_home.mkdir(mode=0o700)
    log_path(store_home).write_text("")
    log_path(store_home).chmod(0o644)
    run_broken(env, tmp_path, "list")
    assert stat.S_IMODE(log_path(store_home).stat().st_mode) == 0o600


def test_the_log_stays_under_its_cap_by_dropping_the_oldest_half(env, tmp_path, store_home):
    store_home.mkdir(mode=0o700)
    old = "".join(f"==== 2020-01-01T00:00:00.000Z relay 0 pid 1 cli old-{i:05d}\n{'x' * 1000}\n" for i in range(1040))
    log_path(store_home).write_text(old)
    assert len(old) > errorlog.MAX_BYTES - 1000
    run_broken(env, tmp_path, "list")
    text = log_path(store_home).read_text()
    assert len(text.encode()) <= errorlog.MAX_BYTES // 2 + 10_000
    assert text.startswith("==== "), "cut at an entry boundary"
    assert "old-00000" not in text and "old-01039" in text
    assert text.rstrip().endswith("ZeroDivisionError: division by zero") and " cli list\n" in text


def test_a_huge_message_is_cut_in_the_log_and_on_the_line(env, store_home, monkeypatch, capsys):
    from relay.faces import cli, commands

    def explode(*args: Any) -> int:
        raise ValueError("v" * 2_000_000)

    monkeypatch.setitem(commands.HANDLERS, "list", explode)
    assert cli.main(["list"]) == 1
    assert len(capsys.readouterr().err) < 1000
    assert len(log_path(store_home).read_bytes()) < errorlog.MAX_BYTES // 4


def test_controls_in_the_error_never_reach_the_terminal_or_the_log_raw(env, tmp_path, store_home):
    hostile = "\x1b]52;c;aGk=\x07\x1b[2J\x9b31m\u202e"
    result = run_broken(env, tmp_path, "list", message=hostile)
    line = result.stderr.decode()
    assert line.count("\n") == 1 and "\\x1b]52;c;aGk=\\x07\\x1b[2J\\x9b31m\\u202e" in line
    text = log_path(store_home).read_text()
    assert "\\x1b]52;c;aGk=\\x07" in text
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in line and raw not in text


def test_importing_errorlog_is_cheap(env):
    code = (
        "import sys, relay.store.errorlog; print(sorted({'traceback', 'fcntl', 'relay.util.clock'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True, text=True)
    assert result.stdout.strip() == "[]"


def test_record_never_raises(env, monkeypatch):
    monkeypatch.setattr(errorlog, "relay_home", lambda: 1 / 0)
    assert errorlog.record("cli x", ValueError("v")) is None
    assert errorlog.unexpected("cli x", ValueError("v")) == (
        "unexpected ValueError: v (please report this with the command you ran)"
    )
