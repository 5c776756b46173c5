"""relay.agents (claude, codex liveness): is a session running now? Real processes, real /proc, planted leftovers."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_files import uuid7
from conftest import file_registry, new_id, plant_registry

from relay import agents
from relay.agents import claude

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="these tests read /proc (Linux)")


@pytest.fixture
def claude_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "claude-config"
    (config / "sessions").mkdir(parents=True)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    return config


class Procs:
    """Processes a test starts; every one is killed and reaped at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.stop(proc)


@pytest.fixture
def procs() -> Iterator[Procs]:
    found = Procs()
    yield found
    found.close()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def sleep_binary() -> str:
    found = shutil.which("sleep")
    assert found, "these tests need `sleep`"
    return found


def named_copy(tmp_path: Path, name: str) -> str:
    """A copy of `sleep` whose executable is called `name` (a symlink would keep the name `sleep`)."""
    directory = tmp_path / f"bin-{name}"
    directory.mkdir(exist_ok=True)
    target = directory / name
    shutil.copy(sleep_binary(), target)
    target.chmod(0o755)
    return str(target)


def write_session(config: Path, pid: int, sid: str, **extra) -> Path:
    path = config / "sessions" / f"{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "sessionId": sid, "cwd": "/tmp", "kind": "interactive", **extra}))
    return path


def proc_start(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rfind(")") + 2 :].split()[19]


# -- Claude Code -------------------------------------------------------------------------------


def test_claude_named_by_argv0_is_live_until_killed(claude_config, procs, tmp_path):
    sid = new_id()
    proc = procs.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    write_session(claude_config, proc.pid, sid, procStart=proc_start(proc.pid))
    assert agents.is_live(sid, "claude")
    assert agents.is_live(sid.upper())  # tool None: both CLIs asked; any case of the id
    assert not agents.is_live(sid, "codex")
    assert not agents.is_live(new_id(), "claude")
    procs.stop(proc)
    assert (claude_config / "sessions" / f"{proc.pid}.json").exists()  # a leftover file ...
    assert not agents.is_live(sid, "claude")  # ... of a dead pid does not count


def test_claude_executable_named_claude_is_live(claude_config, procs, tmp_path):
    sid = new_id()
    proc = procs.start([named_copy(tmp_path, "claude.exe"), "60"])
    write_session(claude_config, proc.pid, sid)
    assert wait_for(lambda: agents.is_live(sid, "claude"))


def test_node_running_claude_codes_cli_js_is_claude(procs, tmp_path):
    # Python runs the file whatever its name; the process looks like `node .../claude-code/cli.js`.
    script = tmp_path / "node_modules" / "@anthropic-ai" / "claude-code" / "cli.js"
    script.parent.mkdir(parents=True)
    script.write_text("import time\ntime.sleep(60)\n")
    proc = procs.start(["node", str(script)], executable=sys.executable)
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    time.sleep(0.3)
    assert proc.poll() is None and claude.is_claude_process(proc.pid)
    other = tmp_path / "node_modules" / "other" / "cli.js"
    other.parent.mkdir(parents=True)
    other.write_text("import time\ntime.sleep(60)\n")
    unrelated = procs.start(["node", str(other)], executable=sys.executable)
    time.sleep(0.3)
    assert unrelated.poll() is None and not claude.is_claude_process(unrelated.pid)


def test_a_live_pid_that_is_not_claude_does_not_count(claude_config, procs):
    sid = new_id()
    proc = procs.start([sleep_binary(), "60"])
    write_session(claude_config, proc.pid, sid)
    write_session(claude_config, os.getpid(), sid)  # this python process
    time.sleep(0.2)
    assert not claude.is_claude_process(proc.pid)
    assert not agents.is_live(sid)


def test_a_reused_pid_does_not_count(claude_config, procs):
    sid = new_id()
    proc = procs.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    write_session(claude_config, proc.pid, sid, procStart="1")  # the file's process started at another time
    assert not agents.is_live(sid, "claude")


def test_claude_config_dir_default_is_home(env, monkeypatch):
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    assert claude.sessions_dir() == os.path.join(env["HOME"], ".claude", "sessions")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "")
    assert claude.sessions_dir() == os.path.join(env["HOME"], ".claude", "sessions")


def test_planted_files_in_the_sessions_dir_never_block_or_crash(claude_config, procs, tmp_path):
    sid = new_id()
    sessions = claude_config / "sessions"
    os.mkfifo(sessions / "1.json")  # opening it for reading would block
    (sessions / "2.json").write_text("{not json")
    (sessions / "3.json").write_text(json.dumps([sid]))
    (sessions / "4.json").write_text(json.dumps({"pid": "5", "sessionId": sid}))
    (sessions / "5.json").write_text(json.dumps({"pid": True, "sessionId": sid}))
    (sessions / "6.json").mkdir()
    (sessions / "7.json").write_bytes(b" " * (1 << 20))
    proc = procs.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    (sessions / "8.json").symlink_to(write_session(tmp_path / "elsewhere", proc.pid, sid))
    started = time.monotonic()
    assert not agents.is_live(sid)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", [None, "", "not-a-uuid", "../../x", 7])
def test_not_a_uuid_is_never_live(value):
    assert not agents.is_live(value)


# -- Codex -------------------------------------------------------------------------------------


def rollout(tmp_path: Path, sid: str) -> Path:
    path = tmp_path / "codex-home" / "sessions" / "2026" / "11" / "30" / f"rollout-2026-11-30T10-00-00-{sid}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "session_meta", "payload": {"id": sid, "cwd": "/tmp"}}) + "\n")
    return path


def hold_open(procs: Procs, program: str, path: Path) -> subprocess.Popen:
    """`program` (a sleep) running with `path` open on fd 3."""
    return procs.start(["sh", "-c", 'exec 3<"$1"; exec "$2" 60', "sh", str(path), program])


def holds(proc: subprocess.Popen, path: Path) -> bool:
    """`proc` has exec'd its final program and holds `path` open."""
    fd_dir = f"/proc/{proc.pid}/fd"
    try:
        exe = os.path.basename(os.readlink(f"/proc/{proc.pid}/exe"))
        return (
            exe != "dash"
            and exe != "bash"
            and str(path) in {os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)}
        )
    except OSError:
        return False


def test_codex_holding_its_rollout_is_live_until_killed(procs, tmp_path):
    sid = uuid7()
    path = rollout(tmp_path, sid)
    proc = hold_open(procs, named_copy(tmp_path, "codex"), path)
    assert wait_for(lambda: holds(proc, path))
    assert agents.is_live(sid, "codex")
    assert agents.is_live(sid)
    assert not agents.is_live(sid, "claude")
    assert not agents.is_live(uuid7(), "codex")
    procs.stop(proc)
    assert not agents.is_live(sid, "codex")


def test_a_process_that_is_not_codex_holding_the_rollout_does_not_count(procs, tmp_path):
    sid = uuid7()
    path = rollout(tmp_path, sid)
    proc = hold_open(procs, sleep_binary(), path)
    assert wait_for(lambda: holds(proc, path))
    assert not agents.is_live(sid, "codex")


def test_codex_holding_another_file_does_not_count(procs, tmp_path):
    sid = uuid7()
    other = tmp_path / f"notes-{sid}.jsonl"
    other.write_text("")
    proc = hold_open(procs, named_copy(tmp_path, "codex"), other)
    assert wait_for(lambda: holds(proc, other))
    assert not agents.is_live(sid, "codex")


def test_python_is_not_claude():
    assert not claude.is_claude_process(os.getpid())


# -- the real Claude Code ----------------------------------------------------------------------


@pytest.mark.real_clients
def test_a_real_claude_code_session_is_live_while_it_runs(tmp_path, monkeypatch):
    """The real Claude Code (offline, in `unshare -n`): live while its process runs, not after."""
    import realclients as rc

    rc.skip_unless_runnable("claude")
    sandbox = rc.Sandbox(tmp_path / "sandbox")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(sandbox.claude_config))
    argv = ["claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
    proc = subprocess.Popen(
        ["unshare", "-n", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=sandbox.env(),
        cwd=str(sandbox.project),
    )
    try:
        sessions = sandbox.claude_config / "sessions"
        assert wait_for(lambda: any(sessions.glob("*.json")), timeout=60), "claude wrote no sessions/<pid>.json"
        [record] = [json.loads(p.read_text()) for p in sessions.glob("*.json")]
        sid = record["sessionId"]
        assert record["pid"] == proc.pid  # unshare execs claude
        assert agents.is_live(sid, "claude") and agents.is_live(sid)
        assert not agents.is_live(sid, "codex")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # end of input: claude exits
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not agents.is_live(sid, "claude")


def test_gc_never_retires_a_running_claude_session(store_home, claude_config, procs):
    """relay gc asks liveness, not only lastSeen: a session unseen for years whose Claude runs stays."""
    from relay.store.files import Store
    from relay.usecases import gc

    store = Store(store_home)
    sid = new_id()
    store.register(sid, name="busy", tool="claude")
    registry = file_registry(store_home)
    registry["agents"][sid]["lastSeen"] = "2020-01-01T00:00:00.000Z"
    plant_registry(store_home, registry)
    proc = procs.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    write_session(claude_config, proc.pid, sid, procStart=proc_start(proc.pid))
    assert gc.collect(store)["retired"] == []
    procs.stop(proc)
    store.register(new_id(), name="recent", tool="claude")  # life today: gc trusts the clock
    assert [row["id"] for row in gc.collect(store)["retired"]] == [sid]
