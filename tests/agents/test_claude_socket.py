"""Ringing an idle Claude Code session through its own messaging socket (docs/wake.md): which
sessions are rung, what exactly is written, and that nothing is written anywhere else. Real
processes stand in for Claude Code (argv[0] `claude`), a real listening Unix socket for its
messaging socket."""

import json
import os
import socket
import threading
from pathlib import Path

import pytest
from conftest import new_id
from test_liveness import claude_config, proc_start, procs, sleep_binary, wait_for, write_session  # noqa: F401

from relay.agents import claude
from relay.host import unixsock

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="these tests read /proc (Linux)")

NUDGE = "You have session-relay mail. (test nudge)"


class Listener:
    """A listening Unix socket at `<dir>/cc-socks/<pid>.sock` (dir 0700) that keeps what it reads."""

    def __init__(self, root: Path, pid: int) -> None:
        directory = root / "cc-socks"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self.path = str(directory / f"{pid}.sock")
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.lines: list[bytes] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                self.lines.append(data)

    def close(self) -> list[bytes]:
        self.done.set()
        self.thread.join(timeout=5)
        self.sock.close()
        return self.lines


@pytest.fixture
def session(claude_config, procs, tmp_path):  # noqa: F811
    """(id, pid, listener) of a running stand-in Claude with an idle record and its socket."""
    sid = new_id()
    proc = procs.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    listener = Listener(tmp_path / "run", proc.pid)
    record = {"procStart": proc_start(proc.pid), "messagingSocketPath": listener.path, "status": "idle"}
    write_session(claude_config, proc.pid, sid, **record)
    yield sid, proc.pid, listener, record
    listener.close()


def rewrite(claude_config: Path, pid: int, sid: str, record: dict, **changes) -> None:  # noqa: F811
    write_session(claude_config, pid, sid, **{**record, **changes})


def test_an_idle_session_gets_exactly_one_line_holding_only_the_given_text(session):
    sid, _, listener, _ = session
    assert claude.socket_ring(sid, NUDGE) == claude.RANG
    [line] = listener.close()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"type": "user", "message": {"role": "user", "content": NUDGE}}


def test_a_busy_session_is_not_rung(session, claude_config):  # noqa: F811
    sid, pid, listener, record = session
    rewrite(claude_config, pid, sid, record, status="busy")
    assert claude.socket_ring(sid, NUDGE) == claude.BUSY
    rewrite(claude_config, pid, sid, record, status=None)  # no status at all (older Claude): not idle either
    assert claude.socket_ring(sid, NUDGE) == claude.BUSY
    assert listener.close() == []


def test_a_record_with_another_start_time_or_a_dead_pid_is_not_rung(session, claude_config, procs):  # noqa: F811
    sid, pid, listener, record = session
    rewrite(claude_config, pid, sid, record, procStart="1")  # that pid was reused by a newer process
    assert claude.socket_ring(sid, NUDGE) == claude.NO_SOCKET
    rewrite(claude_config, pid, sid, record, procStart=None)  # no start time to compare: not rung
    assert claude.socket_ring(sid, NUDGE) == claude.NO_SOCKET
    rewrite(claude_config, pid, sid, record)
    [proc] = procs.started
    procs.stop(proc)  # a stale record of a pid that is gone
    assert claude.socket_ring(sid, NUDGE) == claude.NO_SOCKET
    assert listener.close() == []


def test_a_record_of_another_session_or_without_a_socket_is_not_rung(session, claude_config):  # noqa: F811
    sid, pid, listener, record = session
    assert claude.socket_ring(new_id(), NUDGE) == claude.NO_SOCKET
    rewrite(claude_config, pid, sid, record, messagingSocketPath=None)
    assert claude.socket_ring(sid, NUDGE) == claude.NO_SOCKET
    # a socket named for another pid than the record's
    other = str(Path(listener.path).with_name(f"{pid + 1}.sock"))
    rewrite(claude_config, pid, sid, record, messagingSocketPath=other)
    assert claude.socket_ring(sid, NUDGE) == claude.NO_SOCKET
    assert listener.close() == []


def test_a_session_without_permission_prompts_is_left_to_the_watcher(claude_config, procs, tmp_path):  # noqa: F811
    sid = new_id()
    # a shell named `claude` whose argv carries the flag (it does not exec its last command)
    proc = procs.start(["claude", "-c", "sleep 60; :", "--dangerously-skip-permissions"], executable="/bin/sh")
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    listener = Listener(tmp_path / "run", proc.pid)
    record = {"procStart": proc_start(proc.pid), "messagingSocketPath": listener.path, "status": "idle"}
    write_session(claude_config, proc.pid, sid, **record)
    assert claude.socket_ring(sid, NUDGE) == claude.BYPASS
    assert listener.close() == []
    assert claude._bypasses(["claude", "--permission-mode", "bypassPermissions"])
    assert not claude._bypasses(["claude", "--permission-mode", "default"])


def test_a_socket_not_owned_by_this_user_is_not_written(session, monkeypatch):
    sid, _, listener, _ = session
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        info = real_lstat(path, *args, **kwargs)
        if str(path) == listener.path:  # as if another user had made it
            fields = list(info)
            fields[4] = os.getuid() + 1
            return os.stat_result(fields)
        return info

    monkeypatch.setattr(unixsock.os, "lstat", lstat)
    assert claude.socket_ring(sid, NUDGE) == "the socket is not owned by this user"
    assert listener.close() == []


def test_a_socket_in_a_dir_others_can_enter_or_through_a_link_is_not_written(session, tmp_path):
    sid, _, listener, _ = session
    directory = os.path.dirname(listener.path)
    os.chmod(directory, 0o755)
    assert claude.socket_ring(sid, NUDGE) == "the socket's dir is not private to this user"
    os.chmod(directory, 0o700)
    link = tmp_path / "link"
    link.symlink_to(directory)
    assert unixsock.send_line(str(link / os.path.basename(listener.path)), b"x\n") == (
        "the socket's dir goes through a symlink"
    )
    plain = tmp_path / "plain"
    plain.mkdir(mode=0o700)
    (plain / "1.sock").write_text("")
    assert unixsock.send_line(str(plain / "1.sock"), b"x\n") == "not a socket"
    assert unixsock.send_line("relative/1.sock", b"x\n") == "the socket path is not a plain absolute path"
    assert listener.close() == []


def test_a_refusing_socket_is_reported_not_raised(session):
    sid, _, listener, _ = session
    listener.close()
    os.unlink(listener.path)
    refusing = socket.socket(socket.AF_UNIX)
    refusing.bind(listener.path)  # bound, never listening
    try:
        outcome = claude.socket_ring(sid, NUDGE)
    finally:
        refusing.close()
    assert outcome.startswith("the socket did not take the line")
