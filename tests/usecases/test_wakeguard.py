"""The doorbell's guardrails (docs/wake.md): `relay wake` refuses with exit 75 while the session is live,
while a wake of it runs (even when relay was killed), when its mail is RELAY_MAX_HOPS deep, and
past RELAY_WAKE_BUDGET wakes an hour; every refusal keeps all mail queued. A real wake reports how
its program ended and exits with its status.

Black-box through the CLI, against a fake agent CLI on PATH whose behaviour the test's environment
sets (it inherits the caller's environment, as the real one does).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_files import uuid7
from conftest import new_id, relay_command
from test_liveness import (
    hold_open,
    holds,
    named_copy,
    proc_start,
    procs,
    rollout,
    sleep_binary,
    wait_for,
    write_session,
)

from relay.agents import claude
from relay.usecases import wakeguard

__all__ = ["procs"]  # the fixture, shared with test_liveness

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="liveness is read from /proc (Linux)")

FAKE = """#!{python}
# A stand-in agent CLI: records its run, may send mail through relay, then sleeps, exits or kills itself.
import json, os, subprocess, sys, time
env = os.environ
with open(env["FAKE_RECORD"], "a") as out:
    run = {{"prog": {name!r}, "pid": os.getpid(), "argv": sys.argv[1:], "hops": env.get("RELAY_HOPS")}}
    run["cwd"] = os.getcwd()
    out.write(json.dumps(run) + "\\n")
if env.get("FAKE_SEND"):
    relay = json.loads(env["FAKE_RELAY"])
    child = {{k: v for k, v in env.items() if not (k == "RELAY_HOPS" and env.get("FAKE_UNSET_HOPS"))}}
    subprocess.run([*relay, "send", env["FAKE_SEND"], "--", "answer from the woken"], check=True, env=child)
if env.get("FAKE_READY"):
    open(env["FAKE_READY"], "w").close()
time.sleep(float(env.get("FAKE_SLEEP") or 0))
give_up = time.monotonic() + 120  # never outlive a failed test for long
while env.get("FAKE_UNTIL") and not os.path.exists(env["FAKE_UNTIL"]) and time.monotonic() < give_up:
    time.sleep(0.05)
if env.get("FAKE_SIGNAL"):
    os.kill(os.getpid(), int(env["FAKE_SIGNAL"]))
sys.exit(int(env.get("FAKE_EXIT") or 0))
"""


class Agent:
    """Fake `claude` and `codex` on PATH; `env` is what a wake needs to find them."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "fakebin"
        self.bin.mkdir()
        self.record = tmp_path / "runs.jsonl"
        for name in ("claude", "codex"):
            path = self.bin / name
            path.write_text(FAKE.format(python=sys.executable, name=name))
            path.chmod(0o755)
        self.env = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "FAKE_RECORD": str(self.record),
            "FAKE_RELAY": json.dumps(relay_command()),
        }

    def runs(self) -> list[dict]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    return Agent(tmp_path)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def register(run_relay, name: str, sid: str, directory: Path, tool: str = "claude") -> None:
    done = run_relay("register", name, "--id", sid, "--dir", str(directory), "--tool", tool)
    assert done.returncode == 0, done.stderr


def mail(run_relay, who: str) -> list[dict]:
    done = run_relay("peek", who)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["messages"]


def refusal(done: subprocess.CompletedProcess) -> str:
    """The one stderr line of a refused wake (exit 75), which never printed anything else."""
    err = done.stderr.decode()
    assert done.returncode == 75, (done.returncode, err)
    assert err.startswith("relay: not waking ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert done.stdout == b""
    return err


def queued_id(err: str) -> str:
    found = re.search(r"your message (\S+) is queued", err)
    assert found, err
    return found.group(1)


def status_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.decode().splitlines()[-1]


# -- live ----------------------------------------------------------------------------------------


def live_claude(procs, env: dict[str, str], tmp_path: Path, sid: str) -> subprocess.Popen:
    """A process that looks like Claude Code 2.1 running `sid`: argv[0] and title `claude`, and its
    `$CLAUDE_CONFIG_DIR/sessions/<pid>.json` naming the session and the process's start."""
    config = tmp_path / "claude-config"
    env["CLAUDE_CONFIG_DIR"] = str(config)
    proc = procs.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    write_session(config, proc.pid, sid, procStart=proc_start(proc.pid))
    return proc


@pytest.mark.parametrize("dry", [False, True])
def test_a_live_claude_session_is_refused_and_force_rings(run_relay, env, agent, project, procs, tmp_path, dry):
    sid = new_id()
    register(run_relay, "web", sid, project)
    live_claude(procs, env, tmp_path, sid)
    flags = ["--dry"] if dry else []
    err = refusal(run_relay("wake", "web", *flags, "--", "are you there", extra_env=agent.env))
    assert "running now in claude" in err and "--force" in err
    assert agent.runs() == []
    if dry:
        assert "nothing was queued" in err
        assert mail(run_relay, "web") == []
    else:
        assert [m["id"] for m in mail(run_relay, "web")] == [queued_id(err)]
    forced = run_relay("wake", "web", *flags, "--force", extra_env=agent.env)
    assert forced.returncode == 0, forced.stderr
    assert len(agent.runs()) == (0 if dry else 1)
    if dry:
        assert json.loads(forced.stdout)["tool"] == "claude"


def test_a_dead_claude_processs_leftover_record_does_not_count(run_relay, env, agent, project, procs, tmp_path):
    sid = new_id()
    register(run_relay, "web", sid, project)
    proc = live_claude(procs, env, tmp_path, sid)
    procs.stop(proc)
    assert (tmp_path / "claude-config" / "sessions" / f"{proc.pid}.json").exists()
    done = run_relay("wake", "web", extra_env=agent.env)
    assert done.returncode == 0, done.stderr
    assert len(agent.runs()) == 1


def test_a_live_codex_session_is_refused_and_force_rings(run_relay, agent, project, procs, tmp_path):
    sid = uuid7()
    register(run_relay, "api", sid, project, tool="codex")
    path = rollout(tmp_path, sid)
    host = hold_open(procs, named_copy(tmp_path, "codex"), path)
    assert wait_for(lambda: holds(host, path))
    err = refusal(run_relay("wake", "api", "--", "ping", extra_env=agent.env))
    assert "running now in codex" in err
    assert [m["body"] for m in mail(run_relay, "api")] == ["ping"]
    assert refusal(run_relay("wake", "api", "--dry", extra_env=agent.env))
    assert agent.runs() == []
    done = run_relay("wake", "api", "--force", extra_env=agent.env)
    assert done.returncode == 0, done.stderr
    assert [run["prog"] for run in agent.runs()] == ["codex"]
    procs.stop(host)
    assert run_relay("wake", "api", extra_env=agent.env).returncode == 0  # no longer live


# -- the resume lock ---------------------------------------------------------------------------


def start_wake(env: dict[str, str], tmp_path: Path, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*relay_command(), "wake", *args],
        env={**env, **extra},
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a command run from a terminal has
    )


def test_concurrent_wakes_ring_once(run_relay, env, agent, project, tmp_path):
    sid = new_id()
    register(run_relay, "web", sid, project)
    release = tmp_path / "release"  # the woken program runs until every other wake has answered
    until = {**agent.env, "FAKE_UNTIL": str(release)}
    wakes = [start_wake(env, tmp_path, "web", "--", f"message {i}", **until) for i in range(4)]
    try:
        assert wait_for(lambda: sum(proc.poll() is not None for proc in wakes) == 3, timeout=120)
    finally:
        release.touch()
    results = [(proc.wait(timeout=60), *proc.communicate()) for proc in wakes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 75, 75, 75], results
    assert len(agent.runs()) == 1
    for code, _, err in results:
        if code == 75:
            assert "still running" in err.decode(), err
    assert sorted(m["body"] for m in mail(run_relay, "web")) == [f"message {i}" for i in range(4)]


def test_the_lock_outlasts_a_killed_relay_while_its_program_runs(run_relay, env, agent, project, tmp_path):
    sid = new_id()
    register(run_relay, "web", sid, project)
    ready, release = tmp_path / "ready", tmp_path / "release"
    first = start_wake(env, tmp_path, "web", **agent.env, FAKE_READY=str(ready), FAKE_UNTIL=str(release))
    assert wait_for(ready.exists, timeout=30)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    [run] = agent.runs()
    assert os.path.exists(f"/proc/{run['pid']}")  # the woken program outlived relay
    for flags in ([], ["--dry"], ["--force"]):  # --force overrides the live check only
        err = refusal(run_relay("wake", "web", *flags, extra_env=agent.env))
        assert "still running" in err and f"pid {run['pid']}" in err
    assert len(agent.runs()) == 1
    release.touch()
    assert wait_for(lambda: not os.path.exists(f"/proc/{run['pid']}"), timeout=30)
    done = run_relay("wake", "web", extra_env=agent.env)  # it ended: the lock ended with it
    assert done.returncode == 0, done.stderr
    assert len(agent.runs()) == 2


def test_a_finished_wake_leaves_no_lock(run_relay, agent, project):
    sid = new_id()
    register(run_relay, "web", sid, project)
    for _ in range(3):
        done = run_relay("wake", "web", extra_env=agent.env)
        assert done.returncode == 0, done.stderr
    dry = run_relay("wake", "web", "--dry", extra_env=agent.env)
    assert dry.returncode == 0, dry.stderr
    assert len(agent.runs()) == 3


def test_a_note_names_a_running_program_only_while_that_same_process_runs():
    me = os.getpid()
    assert wakeguard.running_program(f"{me} {proc_start(me)}\n".encode()) == me
    assert wakeguard.running_program(f"{me}\n".encode()) == me  # noted by the child, before relay added its start
    assert wakeguard.running_program(f"{me} 1\n".encode()) is None  # the pid was reused by another process
    ended = subprocess.Popen(["true"])
    assert wait_for(lambda: Path(f"/proc/{ended.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    assert wakeguard.running_program(f"{ended.pid} {proc_start(ended.pid)}\n".encode()) is None  # a zombie
    ended.wait()
    assert wakeguard.running_program(f"{ended.pid}\n".encode()) is None
    for note in (b"", b"\n", b"x 1", b"-5 1"):
        assert wakeguard.running_program(note) is None


# -- hops --------------------------------------------------------------------------------------


def test_hops_reach_the_woken_program_and_the_mail_it_sends(run_relay, agent, project, tmp_path):
    sid, asker = new_id(), new_id()
    register(run_relay, "web", sid, project)
    register(run_relay, "asker", asker, tmp_path)
    done = run_relay("wake", "web", "--", "question", extra_env={**agent.env, "FAKE_SEND": "asker"})
    assert done.returncode == 0, done.stderr
    assert agent.runs()[-1]["hops"] == "1"  # mail from a person: 0 deep, so the wake is 1
    [answer] = mail(run_relay, "asker")
    assert (answer["body"], answer["hops"]) == ("answer from the woken", 1)
    # the woken one's answer wakes the asker: one wake deeper
    done = run_relay("wake", "asker", extra_env=agent.env)
    assert done.returncode == 0, done.stderr
    assert agent.runs()[-1]["hops"] == "2"


def test_a_woken_agent_that_clears_relay_hops_still_sends_at_its_depth(run_relay, agent, project, tmp_path):
    """`env -u RELAY_HOPS relay send` from inside a wake: the depth comes from how the woken program
    was started (its initial environment), which the agent cannot rewrite."""
    sid, asker = new_id(), new_id()
    register(run_relay, "web", sid, project)
    register(run_relay, "asker", asker, tmp_path)
    woken = {**agent.env, "FAKE_SEND": "asker", "FAKE_UNSET_HOPS": "1", "RELAY_HOPS": "3"}
    done = run_relay("wake", "web", "--", "question", extra_env=woken)
    assert done.returncode == 0, done.stderr
    assert agent.runs()[-1]["hops"] == "4"
    [answer] = mail(run_relay, "asker")
    assert (answer["body"], answer["hops"]) == ("answer from the woken", 4)


def test_a_nearer_process_that_lowers_relay_hops_hides_no_deeper_ancestor(env):
    """A woken agent (RELAY_HOPS=3) runs a shell with RELAY_HOPS=0 that sends: the depth is the most over
    every ancestor's start, so a nearer, lower RELAY_HOPS does not end the walk up the process tree."""
    probe = "from relay.usecases import wakeguard; print(wakeguard.hops_behind(None, None))"
    # `; true` keeps each shell alive as a process of its own (no exec of the last command)
    lowered = f"env RELAY_HOPS=0 sh -c '{sys.executable} -c \"{probe}\"; true'; true"
    woken = {**env, "PYTHONPATH": os.pathsep.join(sys.path), "RELAY_HOPS": "3"}
    done = subprocess.run(["sh", "-c", lowered], env=woken, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"


def test_a_sender_inside_a_running_wake_carries_the_hops_relay_noted(env, tmp_path):
    """The store's note of the wake that started a session counts even with no RELAY_HOPS around."""
    from relay.domain.ids import require_uuid
    from relay.store.contract import open_store

    sid = require_uuid(new_id())
    ready = tmp_path / "noted"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "from relay.domain.ids import require_uuid\n"
            "from relay.host.procinfo import process_info\n"
            "from relay.store.contract import open_store\n"
            "lock = open_store().claim_wake(require_uuid(sys.argv[1]))\n"
            "lock.record(f'{os.getpid()} {process_info(os.getpid()).start} 5\\n'.encode())\n"
            "open(sys.argv[2], 'w').close()\n"
            "time.sleep(60)\n",
            sid,
            str(ready),
        ],
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the stand-in wake never noted itself"
        store = open_store()
        assert wakeguard.hops_behind(store, sid) == 5
        assert wakeguard.hops_behind(store, require_uuid(new_id())) == 0
    finally:
        holder.kill()
        holder.wait()
    assert wakeguard.hops_behind(open_store(), sid) == 0  # the wake is over: its note counts no more


def test_the_store_owners_config_caps_what_the_environment_may_raise(run_relay, agent, project, store_home):
    sid = new_id()
    register(run_relay, "web", sid, project)
    (store_home / "config.json").write_text(json.dumps({"maxHops": 2, "wakeBudget": 1}))
    assert run_relay("send", "web", "--", "deep", extra_env={"RELAY_HOPS": "2"}).returncode == 0
    err = refusal(run_relay("wake", "web", extra_env={**agent.env, "RELAY_MAX_HOPS": "100"}))
    assert "RELAY_MAX_HOPS=2" in err
    assert run_relay("inbox", "web").returncode == 0
    raised = {**agent.env, "RELAY_WAKE_BUDGET": "100000"}
    assert run_relay("wake", "web", extra_env=raised).returncode == 0
    assert "RELAY_WAKE_BUDGET=1" in refusal(run_relay("wake", "web", extra_env=raised))
    assert len(agent.runs()) == 1
    # Lowering through the environment still works.
    assert "RELAY_WAKE_BUDGET=0" in refusal(run_relay("wake", "web", extra_env={**agent.env, "RELAY_WAKE_BUDGET": "0"}))


@pytest.mark.parametrize("text", ["[1]", "{bad", '{"maxHops": -1}', '{"wakeBudget": "9"}', '{"maxHops": true}'])
def test_a_bad_config_is_a_one_line_error_and_nothing_rings(run_relay, agent, project, store_home, text):
    sid = new_id()
    register(run_relay, "web", sid, project)
    (store_home / "config.json").write_text(text)
    done = run_relay("wake", "web", extra_env=agent.env)
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1 and "config.json" in err, err
    assert agent.runs() == []


def test_the_deepest_pending_mail_sets_the_depth(run_relay, agent, project):
    sid = new_id()
    register(run_relay, "web", sid, project)
    for hops in ("", "3", "1"):
        assert run_relay("send", "web", "--", f"at {hops}", extra_env={"RELAY_HOPS": hops}).returncode == 0
    assert run_relay("wake", "web", extra_env=agent.env).returncode == 0
    assert agent.runs()[-1]["hops"] == "4"


def test_a_woken_program_that_wakes_another_is_one_wake_deeper(run_relay, agent, project):
    """Its own words carry its depth, and even with no mail its wake is deeper than itself."""
    sid = new_id()
    register(run_relay, "web", sid, project)
    done = run_relay("wake", "web", "--", "from inside", extra_env={**agent.env, "RELAY_HOPS": "2"})
    assert done.returncode == 0, done.stderr
    assert [m["hops"] for m in mail(run_relay, "web")] == [2]
    assert agent.runs()[-1]["hops"] == "3"
    assert run_relay("inbox", "web").returncode == 0
    assert run_relay("wake", "web", extra_env={**agent.env, "RELAY_HOPS": "4"}).returncode == 0
    assert agent.runs()[-1]["hops"] == "5"


@pytest.mark.parametrize("dry", [False, True])
def test_mail_at_max_hops_is_refused(run_relay, agent, project, dry):
    sid = new_id()
    register(run_relay, "web", sid, project)
    assert run_relay("send", "web", "--", "deep", extra_env={"RELAY_HOPS": "6"}).returncode == 0
    flags = ["--dry"] if dry else []
    err = refusal(run_relay("wake", "web", *flags, "--", "and this", extra_env=agent.env))
    assert "6 wakes deep" in err and "RELAY_MAX_HOPS=6" in err and "a person" in err
    assert agent.runs() == []
    expected = ["deep"] if dry else ["deep", "and this"]
    assert [m["body"] for m in mail(run_relay, "web")] == expected
    err = refusal(run_relay("wake", "web", "--", "x", extra_env={**agent.env, "RELAY_MAX_HOPS": "3"}))
    assert "RELAY_MAX_HOPS=3" in err
    done = run_relay("wake", "web", *flags, extra_env={**agent.env, "RELAY_MAX_HOPS": "7"})
    assert done.returncode == 0, done.stderr
    assert [run["hops"] for run in agent.runs()] == ([] if dry else ["7"])


def test_a_caller_at_max_hops_cannot_wake_even_without_mail(run_relay, agent, project):
    sid = new_id()
    register(run_relay, "web", sid, project)
    err = refusal(run_relay("wake", "web", extra_env={**agent.env, "RELAY_HOPS": "6"}))
    assert "you are (RELAY_HOPS) 6 wakes deep" in err and "its mail stays queued" in err


# -- the budget --------------------------------------------------------------------------------


def wake_times_file(store_home: Path) -> Path:
    [path] = (store_home / "wakes").glob("*.json")
    return path


def shift_times(store_home: Path, *seconds: float) -> None:
    """Move each stored wake time back by the given seconds (one number per stored time)."""
    path = wake_times_file(store_home)
    times = json.loads(path.read_text())["times"]
    assert len(times) == len(seconds)
    path.write_text(json.dumps({"times": [t - s for t, s in zip(times, seconds, strict=True)]}))


def test_the_budget_allows_so_many_wakes_an_hour(run_relay, agent, project, store_home):
    sid = new_id()
    register(run_relay, "web", sid, project)
    budget = {**agent.env, "RELAY_WAKE_BUDGET": "2"}
    before = time.time()
    assert run_relay("wake", "web", extra_env=budget).returncode == 0
    after = time.time()
    assert run_relay("wake", "web", "--dry", extra_env=budget).returncode == 0  # --dry does not count
    assert run_relay("wake", "web", extra_env=budget).returncode == 0
    err = refusal(run_relay("wake", "web", "--", "third", extra_env=budget))
    assert "RELAY_WAKE_BUDGET=2" in err and "woken 2 times in the last hour" in err
    found = re.search(r"allowed at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z", err)
    assert found, err
    allowed = time.mktime(time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before + 3600 - 1 <= allowed <= after + 3600
    assert [m["body"] for m in mail(run_relay, "web")] == ["third"]
    assert "budget" in refusal(run_relay("wake", "web", "--dry", extra_env=budget)).lower()
    assert len(agent.runs()) == 2
    # The first wake ages out of the hour: one wake is allowed (the refused ones were not counted) ...
    shift_times(store_home, 3601, 0)
    assert run_relay("wake", "web", extra_env=budget).returncode == 0
    refusal(run_relay("wake", "web", extra_env=budget))
    # ... and once every stored wake is older than an hour, the whole budget is back.
    shift_times(store_home, 3700, 3700)
    assert run_relay("wake", "web", extra_env=budget).returncode == 0
    assert run_relay("wake", "web", extra_env=budget).returncode == 0
    assert len(agent.runs()) == 5


def test_the_budget_is_per_session(run_relay, agent, project, tmp_path):
    one, two = new_id(), new_id()
    register(run_relay, "one", one, project)
    register(run_relay, "two", two, tmp_path)
    budget = {**agent.env, "RELAY_WAKE_BUDGET": "1"}
    assert run_relay("wake", "one", extra_env=budget).returncode == 0
    assert "woken 1 time in the last hour" in refusal(run_relay("wake", "one", extra_env=budget))
    assert run_relay("wake", "two", extra_env=budget).returncode == 0


def test_a_zero_budget_allows_no_wake(run_relay, agent, project):
    sid = new_id()
    register(run_relay, "web", sid, project)
    err = refusal(run_relay("wake", "web", extra_env={**agent.env, "RELAY_WAKE_BUDGET": "0"}))
    assert "RELAY_WAKE_BUDGET=0" in err
    assert agent.runs() == []


@pytest.mark.parametrize("name", ["RELAY_WAKE_BUDGET", "RELAY_MAX_HOPS", "RELAY_HOPS"])
@pytest.mark.parametrize("value", ["-1", "twelve", "1.5", "9" * 12])
def test_a_bad_setting_is_an_error_and_queues_nothing(run_relay, agent, project, name, value):
    sid = new_id()
    register(run_relay, "web", sid, project)
    done = run_relay("wake", "web", "--", "hello", extra_env={**agent.env, name: value})
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1 and name in err, err
    assert mail(run_relay, "web") == []
    assert agent.runs() == []


# -- how the woken program ended -----------------------------------------------------------------


@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_the_status_line_and_exit_status(run_relay, agent, project, tool):
    sid = new_id()
    register(run_relay, "web", sid, project, tool=tool)
    done = run_relay("wake", "web", extra_env={**agent.env, "FAKE_EXIT": "3", "FAKE_SLEEP": "0.3"})
    assert done.returncode == 3
    line = status_line(done)
    found = re.fullmatch(rf"relay: woke web: {tool} exited 3 after (\d+\.\d) s", line)
    assert found, line
    assert 0.3 <= float(found.group(1)) < 30
    done = run_relay("wake", "--id", sid, "--dir", str(project), "--tool", tool, extra_env=agent.env)
    assert done.returncode == 0
    assert re.fullmatch(rf"relay: woke {sid}: {tool} exited 0 after \d+\.\d s", status_line(done))


def test_a_program_killed_by_a_signal_gives_128_plus_n(run_relay, agent, project):
    sid = new_id()
    register(run_relay, "web", sid, project)
    done = run_relay("wake", "web", extra_env={**agent.env, "FAKE_SIGNAL": str(int(signal.SIGTERM))})
    assert done.returncode == 128 + signal.SIGTERM
    assert re.fullmatch(r"relay: woke web: claude was killed by signal 15 \(.+\) after \d+\.\d s", status_line(done))


def test_ctrl_c_is_left_to_the_program_and_relay_still_reports(run_relay, env, agent, project, tmp_path):
    sid = new_id()
    register(run_relay, "web", sid, project)
    ready = tmp_path / "ready"
    wake = start_wake(env, tmp_path, "web", **agent.env, FAKE_SLEEP="30", FAKE_READY=str(ready))
    assert wait_for(ready.exists, timeout=30)
    os.killpg(wake.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
    _, err = wake.communicate(timeout=30)
    assert wake.returncode == 128 + signal.SIGINT, err
    assert re.fullmatch(
        r"relay: woke web: claude was killed by signal 2 \(.+\) after \d+\.\d s", err.decode().splitlines()[-1]
    )
    assert run_relay("wake", "web", extra_env=agent.env).returncode == 0  # the lock went with it


def test_sigterm_to_relay_reaches_the_program(run_relay, env, agent, project, tmp_path):
    sid = new_id()
    register(run_relay, "web", sid, project)
    ready = tmp_path / "ready"
    wake = start_wake(env, tmp_path, "web", **agent.env, FAKE_SLEEP="30", FAKE_READY=str(ready))
    assert wait_for(ready.exists, timeout=30)
    wake.send_signal(signal.SIGTERM)  # relay alone
    _, err = wake.communicate(timeout=30)
    assert wake.returncode == 128 + signal.SIGTERM, err
    assert "claude was killed by signal 15" in err.decode().splitlines()[-1]
    [run] = agent.runs()
    assert wait_for(lambda: not os.path.exists(f"/proc/{run['pid']}"))


def test_retiring_a_session_drops_its_wake_times(run_relay, agent, project, store_home):
    from relay.store.files import Store

    sid = new_id()
    register(run_relay, "web", sid, project)
    assert run_relay("wake", "web", extra_env=agent.env).returncode == 0
    assert wake_times_file(store_home).exists()
    Store(store_home).retire(sid)
    assert list((store_home / "wakes").glob("*.json")) == []
