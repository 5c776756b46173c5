"""relay.usecases.codex_queue against fake Codex processes: when a send rings an idle Codex session.

A fake `codex` is a copy of this Python named `codex`: run as `codex -c HOLD <words>` it holds a
session's rollout open with the command line of a daemon, a `--no-daemon` TUI or a `codex exec`
run, which is all relay.agents.codex looks at. relay then runs that very executable as
`codex queue --thread ID --message NUDGE` from the session dir, where Python runs the dir's
`queue` script: it records argv, dir, CODEX_HOME and stdin, and answers as `queue-mode` says.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import new_id, queued_to

from relay.agents import codex
from relay.faces import mcp_tools as tools
from relay.store.files import Store
from relay.usecases import codex_queue, doorbell
from relay.usecases.mail import send

HOLD = "import os, time; f = open(os.environ['HOLD_FILE']); print('ready', flush=True); time.sleep(120)"
QUEUE_SCRIPT = """\
import json, os, sys, time
mode = open("queue-mode").read().strip() if os.path.exists("queue-mode") else "ok"
null, stdin = os.stat(os.devnull), os.fstat(0)
with open("queue-calls.jsonl", "a") as out:
    out.write(json.dumps({
        "argv": sys.argv, "cwd": os.getcwd(), "codex_home": os.environ.get("CODEX_HOME"),
        "executable": os.readlink("/proc/self/exe"),
        "stdin_devnull": (stdin.st_rdev, stdin.st_ino) == (null.st_rdev, null.st_ino),
    }) + "\\n")
if mode == "fail":
    print("Error: failed to queue session message: boom", file=sys.stderr)
    sys.exit(1)
if mode == "slow":
    time.sleep(60)
print("Queued message 1 for thread", sys.argv[2])
"""
DONE_TURN = (
    b'{"type":"event_msg","payload":{"type":"task_started","turn_id":"t1"}}\n'
    b'{"type":"response_item","payload":{"type":"message","role":"assistant"}}\n'
    b'{"type":"event_msg","payload":{"type":"task_complete","turn_id":"t1"}}\n'
)
STARTED = b'{"type":"event_msg","payload":{"type":"task_started","turn_id":"t2"}}\n'


@pytest.fixture
def fake_codex(tmp_path: Path) -> Path:
    """This Python under the name `codex` (a copy: /proc/PID/exe names the file, not a symlink)."""
    path = tmp_path / "bin" / "codex"
    path.parent.mkdir()
    real = os.path.realpath(sys.executable)
    try:
        os.link(real, path)
    except OSError:
        shutil.copy2(real, path)
    return path


@pytest.fixture
def store(env: dict[str, str]) -> Store:
    return Store()


class Session:
    """A registered Codex session: its id, project dir (with the fake `queue`) and rollout."""

    def __init__(self, store: Store, root: Path) -> None:
        self.id = new_id()
        self.dir = root / "project"
        self.dir.mkdir()
        (self.dir / "queue").write_text(QUEUE_SCRIPT)
        self.codex_home = root / "codex-home"
        day = self.codex_home / "sessions" / "2026" / "11" / "30"
        day.mkdir(parents=True)
        self.rollout = day / f"rollout-2026-11-30T20-00-00-{self.id}.jsonl"
        self.rollout.write_bytes(DONE_TURN)
        store.record_start(self.id, str(self.dir), "codex")
        self.store = store

    def calls(self) -> list[dict[str, Any]]:
        path = self.dir / "queue-calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def queue_mode(self, mode: str) -> None:
        (self.dir / "queue-mode").write_text(mode)

    def send(self, body: str = "hello") -> tuple[str, str | None]:
        recipient, message = send(self.store, self.id, body, None, "cli")
        return codex_queue.ring_if_idle(self.store, recipient, message)

    def waiting(self) -> list[str]:
        return [m["body"] for m in self.store.peek(self.id)]


@pytest.fixture
def session(store: Store, tmp_path: Path) -> Session:
    return Session(store, tmp_path)


@pytest.fixture
def host(fake_codex: Path, session: Session) -> Iterator[Callable[..., int]]:
    """host(*words): start a fake Codex with those words that holds the session's rollout open."""
    started: list[subprocess.Popen] = []

    def start(*words: str) -> int:
        proc = subprocess.Popen(
            [str(fake_codex), "-c", HOLD, *words],
            env={**os.environ, "HOLD_FILE": str(session.rollout)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        return proc.pid

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


DAEMON = ("app-server", "--listen", "unix://", "--managed-daemon")


# ---------------------------------------------------------------- ringing


def test_an_idle_daemon_hosted_session_is_rung_once_with_the_fixed_nudge(
    session: Session, host: Callable[..., int], fake_codex: Path
) -> None:
    host(*DAEMON)
    assert session.send("please review PR 7") == (codex_queue.RANG, None)
    [call] = session.calls()
    assert call["argv"] == ["queue", "--thread", session.id, "--message", doorbell.nudge(session.id)]
    assert "please review PR 7" not in json.dumps(call)  # the sender's words never become the prompt
    assert call["cwd"] == str(session.dir)
    assert call["codex_home"] == str(session.codex_home)
    assert call["stdin_devnull"] is True
    assert call["executable"] == str(fake_codex)  # the host's own program, not one found on PATH
    assert session.waiting() == ["please review PR 7"]  # the hook delivers it, not the nudge


def test_a_no_daemon_tui_host_is_rung(session: Session, host: Callable[..., int]) -> None:
    host("--no-daemon", "resume", session.id)
    assert session.send()[0] == codex_queue.RANG
    assert len(session.calls()) == 1


@pytest.mark.parametrize("words", [("exec", "resume", "ID", "--json", "--", "nudge"), ("e", "resume", "ID")])
def test_a_codex_exec_host_is_never_rung(session: Session, host: Callable[..., int], words: tuple[str, ...]) -> None:
    host(*[session.id if word == "ID" else word for word in words])
    assert session.send() == ("hosted by codex exec", None)
    assert session.calls() == []


def test_only_the_first_unread_message_rings(session: Session, host: Callable[..., int]) -> None:
    host(*DAEMON)
    assert session.send("one")[0] == codex_queue.RANG
    assert session.send("two") == ("not the first unread message", None)
    assert session.send("three")[0] != codex_queue.RANG
    assert len(session.calls()) == 1
    with session.store.take(session.id) as delivery:  # the nudged turn's hook takes the batch
        delivery.ack()
    assert session.send("four")[0] == codex_queue.RANG  # a new batch rings again
    assert len(session.calls()) == 2


def test_mail_in_flight_counts_as_unread(session: Session, host: Callable[..., int]) -> None:
    host(*DAEMON)
    session.store.enqueue(session.id, {"id": new_id(), "ts": "t", "from": None, "to": session.id, "body": "old"})
    delivery = session.store.take(session.id)  # a hook is delivering it right now
    try:
        assert session.send("new") == ("not the first unread message", None)
    finally:
        delivery.close()
    assert session.calls() == []


def test_a_turn_in_progress_is_not_rung_and_its_end_is(session: Session, host: Callable[..., int]) -> None:
    host(*DAEMON)
    with session.rollout.open("ab") as out:
        out.write(STARTED)
    assert session.send("during") == ("turn in progress", None)
    with session.store.take(session.id) as delivery:  # the Stop hook delivers it in that turn
        delivery.ack()
    with session.rollout.open("ab") as out:
        out.write(b'{"type":"event_msg","payload":{"type":"turn_aborted","reason":"interrupted"}}\n')
    assert session.send("after")[0] == codex_queue.RANG


def test_deliver_mode_start_is_not_rung(session: Session, host: Callable[..., int]) -> None:
    host(*DAEMON)
    session.store.register(session.id, deliver="start")
    assert session.send() == ("deliver mode start", None)
    assert session.calls() == []


@pytest.mark.parametrize("mode", ["now", "turn"])
def test_other_deliver_modes_are_rung(session: Session, host: Callable[..., int], mode: str) -> None:
    host(*DAEMON)
    session.store.register(session.id, deliver=mode)
    assert session.send()[0] == codex_queue.RANG


def test_a_claude_session_or_a_closed_one_is_not_rung(session: Session, host: Callable[..., int]) -> None:
    assert session.send("closed") == ("not running", None)  # nobody holds the rollout
    session.store.register(session.id, tool="claude")
    host(*DAEMON)
    assert session.send("to claude")[0] == "not codex"
    assert session.calls() == []


# ---------------------------------------------------------------- failures never fail the send


def test_a_failing_codex_queue_is_a_note_and_the_mail_stays(session: Session, host: Callable[..., int]) -> None:
    host(*DAEMON)
    session.queue_mode("fail")
    outcome, note = session.send("kept")
    assert outcome == codex_queue.FAILED
    assert note is not None and "boom" in note and "\n" not in note
    assert session.waiting() == ["kept"]


def test_a_slow_codex_queue_is_cut_off(
    session: Session, host: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    host(*DAEMON)
    session.queue_mode("slow")
    monkeypatch.setattr(codex_queue, "QUEUE_TIMEOUT", 1.0)
    started = time.monotonic()
    outcome, note = session.send("kept")
    assert time.monotonic() - started < 10
    assert outcome == codex_queue.FAILED and note is not None and "took over 1 s" in note
    assert session.waiting() == ["kept"]


def test_the_cli_send_rings_and_reports_a_failure_on_one_stderr_line(
    session: Session, host: Callable[..., int], run_relay: Any
) -> None:
    host(*DAEMON)
    done = run_relay("send", session.id, "--", "via", "cli", input="")  # relay's own stdin is a pipe
    assert done.returncode == 0, done.stderr
    named = session.store.registry().agents[session.id]["name"]  # named after its dir at its start
    assert queued_to(done.stdout) == named and done.stderr == b""
    [call] = session.calls()
    assert call["stdin_devnull"] is True
    with session.store.take(session.id) as delivery:
        delivery.ack()
    session.queue_mode("fail")
    done = run_relay("send", session.id, "--", "again")
    assert done.returncode == 0
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("relay: `codex queue` failed") and "boom" in lines[0], lines
    assert session.waiting() == ["again"]


def test_the_mcp_send_rings_and_notes_a_failure(
    session: Session, host: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", new_id())
    host(*DAEMON)
    result, _ = tools.call(session.store, "send", {"to": session.id, "body": "via mcp"})
    assert result["ok"] is True and "note" not in result
    assert len(session.calls()) == 1
    with session.store.take(session.id) as delivery:
        delivery.ack()
    session.queue_mode("fail")
    result, _ = tools.call(session.store, "send", {"to": session.id, "body": "again"})
    assert result["ok"] is True and "boom" in result["note"]
    assert session.waiting() == ["again"]


# ---------------------------------------------------------------- the pieces


def test_codex_hosts_names_the_holding_process(session: Session, host: Callable[..., int]) -> None:
    assert codex.hosts(session.id) == []
    pid = host(*DAEMON)
    [(found, argv, rollout)] = codex.hosts(session.id.upper())
    assert (found, argv[-4:], rollout) == (pid, list(DAEMON), str(session.rollout))


def test_is_exec_run() -> None:
    assert codex.is_exec_run(["codex", "exec", "resume", "X"])
    assert codex.is_exec_run(["codex", "-c", "a=b", "e", "hi"])
    assert not codex.is_exec_run(["codex", "app-server", "--listen", "unix://"])
    assert not codex.is_exec_run(["codex", "--no-daemon", "resume", "X"])
    assert not codex.is_exec_run(["codex", "--", "exec"])  # a prompt, not the subcommand


def test_relay_stops_ringing_after_enough_unattended_turns_until_the_user_prompts(
    session: Session, host: Callable[..., int], run_relay, monkeypatch
) -> None:
    """Two agents answering each other must not start paid turns forever (RELAY_MAX_AUTO_WAKES)."""
    monkeypatch.setenv("RELAY_MAX_AUTO_WAKES", "2")
    host(*DAEMON)

    def deliver_batch() -> None:
        with session.store.take(session.id) as delivery:
            delivery.ack()

    for _ in range(2):
        assert session.send()[0] == codex_queue.RANG
        deliver_batch()
    assert session.send() == ("relay started enough turns unattended", None)
    assert len(session.calls()) == 2
    deliver_batch()
    # relay's own nudge arriving as a prompt is not the user: still no ringing
    nudge = {"session_id": session.id, "hook_event_name": "UserPromptSubmit", "prompt": doorbell.nudge(session.id)}
    assert run_relay("hook", "codex", input=json.dumps(nudge)).returncode == 0
    assert session.send()[0] == "relay started enough turns unattended"
    deliver_batch()
    # the user types: relay may start turns by itself again
    typed = {"session_id": session.id, "hook_event_name": "UserPromptSubmit", "prompt": "what changed?"}
    assert run_relay("hook", "codex", input=json.dumps(typed)).returncode == 0
    assert session.send()[0] == codex_queue.RANG
