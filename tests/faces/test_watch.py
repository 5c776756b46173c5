"""The idle-mail watcher, `relay hook watch` (docs/delivery.md): run as Claude runs an asyncRewake hook
(tests/fake_claude_host.py, a process Claude-named by its argv[0]), black-box through RELAY_CMD."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fence_parts, new_id
from test_liveness import wait_for

HOST = Path(__file__).resolve().parents[1] / "fake_claude_host.py"


class Host:
    """One fake Claude process running `count` watchers for a session."""

    def __init__(self, tmp_path: Path, relay_cmd: list[str], env: dict[str, str], sid: str, **how) -> None:
        self.results = tmp_path / f"results-{time.monotonic_ns()}.jsonl"
        spec = tmp_path / f"spec-{time.monotonic_ns()}.json"
        command = " ".join(shlex.quote(word) for word in relay_cmd) + " hook watch"
        event = how.get("event") or {"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(tmp_path)}
        spec.write_text(json.dumps({"command": command, "event": event, "results": str(self.results), **how}))
        self.proc = subprocess.Popen(
            ["claude", str(HOST), str(spec), *how.get("argv", [])],
            executable=sys.executable,
            env=env,
            stdin=subprocess.PIPE if how.get("stream") else subprocess.DEVNULL,
        )

    def finished(self) -> list[dict]:
        if not self.results.exists():
            return []
        return [json.loads(line) for line in self.results.read_text().splitlines()]

    def wait_finished(self, count: int, timeout: float) -> list[dict]:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up and len(self.finished()) < count:
            time.sleep(0.05)
        return self.finished()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def hosts(relay_cmd, env, tmp_path):
    started: list[Host] = []

    def start(sid: str, **how) -> Host:
        host = Host(tmp_path, relay_cmd, env, sid, **how)
        started.append(host)
        return host

    yield start
    for host in started:
        host.close()
    for pid in _watchers_left(tmp_path):
        os.kill(pid, signal.SIGKILL)


def _watchers_left(tmp_path: Path) -> list[int]:
    """Pids of watcher processes of this test still running (matched by this test's store path)."""
    store = str(tmp_path / "store")
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                environ = Path(f"/proc/{name}/environ").read_bytes()
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if f"AGENT_RELAY_HOME={store}".encode() in environ and b"watch" in cmdline:
                found.append(int(name))
    return found


def watcher_pid(env: dict[str, str], sid: str) -> int | None:
    """The live watcher's pid as the store records it (read the way relay reads it)."""
    done = subprocess.run(
        [sys.executable, "-c", f"from relay.store.files import Store; print(Store().watcher({sid!r}))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    value = done.stdout.strip()
    return None if value == "None" else int(value)


def registered(run_relay, sid: str, tmp_path: Path, *register: str) -> None:
    event = {"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(tmp_path)}
    assert run_relay("hook", input=json.dumps(event)).returncode == 0
    if register:
        assert run_relay("register", *register, "--id", sid).returncode == 0


def watched_and_killed_at(hosts, env: dict[str, str], sid: str, point: str) -> Host:
    """A Claude host for `sid` whose relay is killed (or signalled, as `point` says) at `point`, once its
    watcher took the session's slot; the relays started later run without the kill point."""
    env["RELAY_TEST_KILL_AT"] = point
    host = hosts(sid)
    del env["RELAY_TEST_KILL_AT"]
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    return host


def pending(store_home: Path, sid: str) -> str:
    files = [store_home / "mailbox" / f"{sid}.jsonl", store_home / "inflight" / f"{sid}.jsonl"]
    return "".join(f.read_text() for f in files if f.exists())


def test_mail_wakes_the_idle_session_within_about_a_second(hosts, run_relay, env, store_home, tmp_path):
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None), "the watcher never took its slot"
    time.sleep(1.0)
    assert host.finished() == [], "with no mail the watcher keeps waiting"
    sent_at = time.monotonic()
    assert run_relay("send", sid, "--", "the build is green").returncode == 0
    (result,) = host.wait_finished(1, 10)
    latency = time.monotonic() - sent_at
    assert result["rc"] == 2, result
    assert "the build is green" in "\n".join(fence_parts(result["stderr"].rstrip("\n"))[2])
    assert result["stdout"] == ""
    assert latency < 2.5, f"mail took {latency:.2f} s to wake the session"  # poll 0.5 s + grace 0.5 s
    assert pending(store_home, sid) == "", "mail handed to the model is confirmed taken"


def test_one_watcher_per_session_under_concurrent_arming(hosts, run_relay, env, store_home, tmp_path):
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = hosts(sid, count=6)
    early = host.wait_finished(5, 20)
    assert len(early) == 5 and all(r["rc"] == 0 and r["stderr"] == "" for r in early), early
    time.sleep(0.5)
    assert len(host.finished()) == 5, "exactly one watcher stays"
    assert run_relay("send", sid, "--", "only once").returncode == 0
    results = host.wait_finished(6, 10)
    woke = [r for r in results if r["rc"] == 2]
    assert len(woke) == 1 and woke[0]["stderr"].count("only once") == 1


def test_the_next_prompt_stops_the_watcher_and_delivers_the_mail_itself(hosts, run_relay, env, store_home, tmp_path):
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    prompt = run_relay("hook", input=json.dumps({"session_id": sid, "hook_event_name": "UserPromptSubmit"}))
    assert prompt.returncode == 0 and prompt.stdout == b""
    (result,) = host.wait_finished(1, 5)
    assert result["rc"] == 0 and result["stderr"] == ""
    # during the turn, mail is the turn's: the prompt/Stop hooks take it, no watcher does
    assert run_relay("send", sid, "--", "during the turn").returncode == 0
    time.sleep(1.5)
    assert "during the turn" in pending(store_home, sid)
    stop = run_relay("hook", input=json.dumps({"session_id": sid, "hook_event_name": "Stop"}))
    assert "during the turn" in json.loads(stop.stdout)["reason"]


def test_mail_that_comes_as_claude_marks_a_turn_busy_is_left_to_that_turn(hosts, run_relay, env, store_home, tmp_path):
    """Claude 2.1.3xx writes `"status": "busy"` to sessions/<pid>.json the moment a prompt is queued,
    a second or more before that prompt's hook runs: mail arriving then is the prompt's, and the
    watcher takes nothing until the record says idle again."""
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    record = Path(env["HOME"]) / ".claude" / "sessions" / f"{host.proc.pid}.json"
    record.parent.mkdir(parents=True)

    def claude_says(status: str) -> None:
        fresh = record.with_suffix(".tmp")
        fresh.write_text(json.dumps({"pid": host.proc.pid, "sessionId": sid, "status": status}))
        fresh.rename(record)

    claude_says("busy")
    assert run_relay("send", sid, "--", "sent as a prompt was queued").returncode == 0
    time.sleep(2.5)
    assert host.finished() == [] and "sent as a prompt was queued" in pending(store_home, sid)
    claude_says("idle")  # idle again with the mail still there (no hook of that turn took it): now it is a wake-up
    (result,) = host.wait_finished(1, 10)
    assert result["rc"] == 2 and "sent as a prompt was queued" in result["stderr"], result


def test_it_leaves_when_its_claude_process_dies(hosts, run_relay, env, tmp_path):
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    pid = watcher_pid(env, sid)
    host.proc.send_signal(signal.SIGKILL)
    host.proc.wait(5)
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 5), "the watcher outlived its Claude"
    assert watcher_pid(env, sid) is None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_one_prompt_headless_run_is_never_held_up(hosts, run_relay, env, store_home, tmp_path):
    """`claude -p PROMPT` waits for this hook before its first request: it must leave at once."""
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    assert run_relay("send", sid, "--", "not through the watcher").returncode == 0
    host = hosts(sid, argv=["-p", "say hi"])
    (result,) = host.wait_finished(1, 10)
    assert result["rc"] == 0 and result["stderr"] == ""
    assert result["seconds"] < 5
    assert "not through the watcher" in pending(store_home, sid)


def test_stream_json_input_ending_makes_it_leave(hosts, run_relay, env, tmp_path):
    """With --input-format stream-json Claude waits for running hooks once its input ends."""
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = hosts(sid, argv=["-p", "--input-format", "stream-json"], stream=True)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    time.sleep(1.0)
    assert host.finished() == [], "while input is open the watcher waits"
    host.proc.stdin.close()
    (result,) = host.wait_finished(1, 5)
    assert result["rc"] == 0
    assert host.proc.wait(5) == 0


def test_deliver_start_holds_mail_back(hosts, run_relay, env, store_home, tmp_path):
    sid = new_id()
    registered(run_relay, sid, tmp_path, "quiet", "--deliver", "start")
    host = hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    assert run_relay("send", "quiet", "--", "for the next start").returncode == 0
    time.sleep(2.0)
    assert host.finished() == []
    assert "for the next start" in pending(store_home, sid)


def test_outside_claude_it_exits_at_once(run_relay, sid=None):
    event = {"session_id": new_id(), "hook_event_name": "SessionStart"}
    started = time.monotonic()
    result = run_relay("hook", "watch", input=json.dumps(event))
    assert result.returncode == 0 and result.stdout == b"" and result.stderr == b""
    assert time.monotonic() - started < 5


def test_killed_while_delivering_the_mail_is_delivered_again(hosts, run_relay, env, store_home, tmp_path):
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = watched_and_killed_at(hosts, env, sid, "take:claimed")
    assert run_relay("send", sid, "--", "survives").returncode == 0
    (result,) = host.wait_finished(1, 10)
    assert result["rc"] == -signal.SIGKILL or result["rc"] == 128 + signal.SIGKILL, result
    prompt = run_relay("hook", input=json.dumps({"session_id": sid, "hook_event_name": "UserPromptSubmit"}))
    text = json.loads(prompt.stdout)["hookSpecificOutput"]["additionalContext"]
    assert "survives" in text and "(redelivered)" in text


def test_idle_cpu_is_negligible(hosts, run_relay, env, tmp_path):
    """A busy loop would burn a core; the watcher polls two stats twice a second. (The benchmark
    measures the real figure over 60 s; this guards against a regression to spinning.)"""
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    pid = watcher_pid(env, sid)
    time.sleep(0.5)
    before, started = _cpu_seconds(pid), time.monotonic()
    time.sleep(4.0)
    used = (_cpu_seconds(pid) - before) / (time.monotonic() - started)
    assert used < 0.02, f"the idle watcher used {used:.1%} of a core"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_stop_signal_after_the_mail_was_confirmed_still_hands_it_over(hosts, run_relay, env, store_home, tmp_path):
    """The next prompt's hook may SIGTERM the watcher just after it confirmed the mail taken: it must
    still exit 2 (Claude drops the stderr of any other exit, and the mail would be lost)."""
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    host = watched_and_killed_at(hosts, env, sid, "watch:confirmed:TERM")
    assert run_relay("send", sid, "--", "not lost").returncode == 0
    (result,) = host.wait_finished(1, 10)
    assert result["rc"] == 2 and "not lost" in result["stderr"], result
    assert pending(store_home, sid) == ""


def test_the_watcher_stops_waking_after_enough_unattended_turns(hosts, run_relay, env, store_home, tmp_path):
    """Two idle agents answering each other would wake each other forever: after
    RELAY_MAX_AUTO_WAKES rewakes with no prompt from the user, mail waits for the user."""
    sid = new_id()
    registered(run_relay, sid, tmp_path)
    env["RELAY_MAX_AUTO_WAKES"] = "2"
    for round_ in range(2):
        host = hosts(sid)
        assert wait_for(lambda: watcher_pid(env, sid) is not None)
        assert run_relay("send", sid, "--", f"round {round_}").returncode == 0
        (result,) = host.wait_finished(1, 10)
        assert result["rc"] == 2 and f"round {round_}" in result["stderr"]
    host = hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    assert run_relay("send", sid, "--", "round 2").returncode == 0
    time.sleep(2.0)
    assert host.finished() == [] and "round 2" in pending(store_home, sid)
    # the user's next prompt gets the mail itself, and relay may wake the session again after it
    typed = {"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt": "back again"}
    prompt = run_relay("hook", input=json.dumps(typed))
    assert "round 2" in json.loads(prompt.stdout)["hookSpecificOutput"]["additionalContext"]
    host = hosts(sid)
    assert wait_for(lambda: watcher_pid(env, sid) is not None)
    assert run_relay("send", sid, "--", "round 3").returncode == 0
    (result,) = host.wait_finished(1, 10)
    assert result["rc"] == 2 and "round 3" in result["stderr"]
