"""Wake across hosts (docs/redis-store.md), black-box through the CLI against a real redis-server.

A session's doorbell rings only on its own host. `relay wake` of a session on another host is
refused with the command to run there (exit 1), unless that host runs `relay doorbell --serve`,
which rings it under every guardrail of docs/wake.md and answers the waker. Hosts are RELAY_HOST
names, and once a real second host name (`unshare -u` + `hostname`, as root). The agent CLI is a
fake on the serving host's PATH (tests/usecases/test_wakeguard.py's), never the real one.
"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import new_id, relay_command, require_redis
from test_liveness import wait_for
from test_wakeguard import Agent, live_claude, procs

__all__ = ["procs"]  # the fixture, shared with test_liveness

HOST_B = "box-b"


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis()


class Server:
    """A `relay doorbell --serve` running in the background, its stdout lines collected."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def line(self, text: str, timeout: float = 30) -> str:
        """The first line holding `text`, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(f"no line with {text!r}: {self.lines} {stderr}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(15)
        self._reader.join(5)
        return code

    def stderr(self) -> str:
        assert self.proc.stderr is not None and self.proc.poll() is not None
        return self.proc.stderr.read()


class World:
    """One Redis shared by this host (the waker: its real host name) and host B (a RELAY_HOST name,
    or a real second UTS namespace), host B with its own relay home and the fake agent CLIs."""

    def __init__(self, env: dict[str, str], redis_url: str, tmp_path: Path) -> None:
        env.pop("RELAY_HOST", None)
        env["AGENT_RELAY_URL"] = redis_url
        self.url = redis_url
        self.agent = Agent(tmp_path)
        self.project = tmp_path / "project"
        self.project.mkdir()
        self.a_env = dict(env)
        self.b_env = {**env, **self.agent.env, "AGENT_RELAY_HOME": str(tmp_path / "store-b"), "RELAY_HOST": HOST_B}
        self.servers: list[Server] = []

    def serve(self, *args: str, unshared: bool = False, **extra: str) -> Server:
        env = {**self.b_env, **extra}
        argv = [*relay_command(), "doorbell", "--serve", *args]
        if unshared:
            env.pop("RELAY_HOST")
            argv = unshare(argv)
        server = Server(argv, env)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(10)


def unshare(argv: list[str]) -> list[str]:
    """`argv` on a second machine: its own UTS namespace, named box-b."""
    return ["unshare", "-u", "sh", "-c", f'hostname {HOST_B} && exec "$@"', "sh", *argv]


def unshare_ok() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-u", "true"], capture_output=True, check=False).returncode == 0


@pytest.fixture
def hosts(env, redis_url, tmp_path):
    made = World(env, redis_url, tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


def on_b(run_relay, hosts: World, *args: str, **extra: str):
    return run_relay(*args, extra_env={**hosts.b_env, **extra})


def register_on_b(run_relay, hosts: World, name: str = "web") -> str:
    sid = new_id()
    done = on_b(run_relay, hosts, "register", name, "--id", sid, "--dir", str(hosts.project), "--tool", "claude")
    assert done.returncode == 0, done.stderr
    return sid


def one_line(done: subprocess.CompletedProcess) -> str:
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removesuffix("\n")


def bodies(run_relay, who: str) -> list[str]:
    done = run_relay("peek", who)
    assert done.returncode == 0, done.stderr
    return [m["body"] for m in json.loads(done.stdout)["messages"]]


def posted(done: subprocess.CompletedProcess) -> str:
    """The waker's one line for a wake that started on host B."""
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert out.count("\n") == 1 and out.startswith(f"posted the wake of web to {HOST_B}'s doorbell (request "), out
    assert "claude started there (pid " in out, out
    return out


# -- no server there: refused with the command to run there ---------------------------------------


def test_a_session_on_another_host_is_refused_with_the_command_to_run_there(run_relay, hosts):
    sid = register_on_b(run_relay, hosts)
    done = run_relay("wake", "web", "--", "please look")
    line = one_line(done)
    assert done.returncode == 1 and done.stdout == b""
    assert line.startswith("relay: not waking web here: it runs on host box-b, where no `relay doorbell --serve` runs")
    assert line.endswith("on box-b run: relay wake web"), line
    queued = json.loads(run_relay("peek", "web").stdout)["messages"]
    assert [m["body"] for m in queued] == ["please look"], "the words are queued, as for a local refusal"
    assert f"your message {queued[0]['id']} is queued; " in line
    # the options that matter travel into the command, shell-quoted
    assert one_line(run_relay("wake", sid, "--force")).endswith("on box-b run: relay wake web --force")
    assert hosts.agent.runs() == []
    # the same session rings locally on its own host (here: its --dry plan)
    done = on_b(run_relay, hosts, "wake", "web", "--dry")
    assert done.returncode == 0 and json.loads(done.stdout)["cwd"] == str(hosts.project), done.stderr


def test_the_command_shown_is_shell_quoted(run_relay, hosts, redis_server):
    """Names are checked when registered, but anyone holding the Redis credentials can plant an entry:
    the command shown must still be one a shell reads as exactly that name."""
    sid = new_id()
    planted = {"id": sid, "name": "we b;x", "tool": "claude", "dir": str(hosts.project), "host": HOST_B}
    with redis_server.client() as client:
        client.hset("relay:agents", sid, json.dumps(planted))
    assert one_line(run_relay("wake", sid)).endswith("on box-b run: relay wake 'we b;x'")


# -- a serving host rings it -----------------------------------------------------------------------


def test_a_wake_posted_to_a_serving_host_on_a_real_second_host_rings_there(run_relay, hosts):
    if not unshare_ok():
        if os.environ.get("RELAY_REQUIRE_REDIS") == "1":
            pytest.fail("unshare -u as root is required for the several-hosts test")
        pytest.skip("needs root and unshare -u for a second host name")
    sid = new_id()
    # host B's own hook registers the session there (its entry's host is B's real host name)
    event = json.dumps({"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(hosts.project)})
    env_b = {k: v for k, v in hosts.b_env.items() if k != "RELAY_HOST"}
    hooked = subprocess.run(unshare([*relay_command(), "hook"]), input=event.encode(), env=env_b, capture_output=True)
    assert hooked.returncode == 0 and hooked.stderr == b"", hooked.stderr
    assert run_relay("register", "web", "--id", sid).returncode == 0
    assert json.loads(run_relay("list", "--json").stdout)[0]["host"] == HOST_B
    server = hosts.serve(unshared=True)
    assert HOST_B in server.line("serving the doorbell of")
    served = run_relay("doorbell")
    assert served.returncode == 0 and served.stdout.decode() == f"{HOST_B}\n", served
    done = run_relay("wake", "web", "--", "the schema changed")
    out = posted(done)
    pid = int(out.rsplit("(pid ", 1)[1].rstrip(")\n"))
    server.line("woke web: claude exited 0")
    [run] = hosts.agent.runs()
    assert run["prog"] == "claude" and run["pid"] == pid and run["hops"] == "1"
    assert run["argv"][:3] == ["-p", "--resume", sid]
    assert bodies(run_relay, "web") == ["the schema changed"]  # queued as mail; the fake read none
    assert server.stop() == 0
    assert server.lines[-1] == f"relay: stopped serving the doorbell of {HOST_B}"


def test_the_waker_hops_travel_force_does_not_and_dry_posts_nothing(run_relay, hosts, procs, tmp_path):
    register_on_b(run_relay, hosts)
    sid = json.loads(run_relay("list", "--json").stdout)[0]["id"]
    live = live_claude(procs, hosts.b_env, tmp_path, sid)  # the session runs on B: B's /proc says so
    server = hosts.serve()
    server.line("serving the doorbell")
    dry = run_relay("wake", "web", "--dry")
    assert dry.returncode == 0 and json.loads(dry.stdout)["host"] == HOST_B, dry.stderr
    refused = run_relay("wake", "web", "--", "hello")
    line = one_line(refused)
    assert refused.returncode == 75 and line.startswith("relay: not waking web: it is running now in claude"), line
    assert line.endswith(f"(answered by {HOST_B}'s doorbell)") and "your message" in line
    assert bodies(run_relay, "web") == ["hello"]
    # --force overrides the live check only for a person on the session's own host.
    forced = run_relay("wake", "web", "--force")
    assert forced.returncode == 75 and "it is running now in claude" in one_line(forced)
    assert hosts.agent.runs() == []
    live.kill()
    live.wait(10)
    posted(run_relay("wake", "web", extra_env={"RELAY_HOPS": "2"}))
    server.line("woke web: claude exited 0")
    assert [run["hops"] for run in hosts.agent.runs()] == ["3"], "the waker's RELAY_HOPS reaches the woken program"


def test_a_peer_with_only_the_redis_url_chooses_neither_the_session_dir_nor_the_program(
    run_relay, hosts, redis_server, tmp_path
):
    """Registry entries in Redis are writable by anyone with the URL: host B rings only sessions it
    recorded itself, in the dir and with the CLI it recorded."""
    sid = register_on_b(run_relay, hosts)
    planted = tmp_path / "planted"
    planted.mkdir()
    client = redis_server.client()
    entry = json.loads(client.hget("relay:agents", sid))
    client.hset("relay:agents", sid, json.dumps({**entry, "dir": str(planted), "tool": "codex"}))
    forged = new_id()  # never registered on B: written straight into Redis by the peer
    client.hset(
        "relay:agents",
        forged,
        json.dumps(
            {"id": forged, "name": "forged", "dir": "/", "tool": "codex", "host": HOST_B, "lastSeen": entry["lastSeen"]}
        ),
    )
    client.hset("relay:names", "forged", forged)
    server = hosts.serve()
    server.line("serving the doorbell")
    refused = run_relay("wake", "forged")
    line = one_line(refused)
    assert refused.returncode == 1 and "was not registered on this host" in line, line
    posted(run_relay("wake", "web"))
    server.line("woke web: claude exited 0")
    [run] = hosts.agent.runs()
    assert (run["prog"], run["cwd"]) == ("claude", str(hosts.project)), run


def test_a_wake_the_serving_host_cannot_ring_is_an_error_line_for_the_waker(run_relay, hosts):
    register_on_b(run_relay, hosts)
    server = hosts.serve(PATH="/usr/bin:/bin")  # no agent CLI on host B
    server.line("serving the doorbell")
    done = run_relay("wake", "web")
    line = one_line(done)
    assert done.returncode == 1 and line.startswith(f"relay: {HOST_B}'s doorbell could not wake web: "), line
    assert "`claude` is not on PATH" in line and hosts.agent.runs() == []
    assert server.proc.poll() is None, "one request that cannot ring never stops the server"


# -- the guardrails hold on the serving host --------------------------------------------------------


def test_hops_refuse_a_wake_posted_from_another_host(run_relay, hosts):
    register_on_b(run_relay, hosts)
    server = hosts.serve()
    server.line("serving the doorbell")
    done = run_relay("wake", "web", extra_env={"RELAY_HOPS": "6"})
    line = one_line(done)
    assert done.returncode == 75 and "6 wakes deep (RELAY_MAX_HOPS=6)" in line, line
    assert hosts.agent.runs() == []
    server.line("refused: not waking web")


def test_the_resume_lock_and_the_budget_refuse_on_the_serving_host(run_relay, hosts, tmp_path):
    register_on_b(run_relay, hosts)
    until = tmp_path / "until"
    server = hosts.serve(RELAY_WAKE_BUDGET="2", FAKE_UNTIL=str(until))
    server.line("serving the doorbell")
    posted(run_relay("wake", "web"))
    assert wait_for(lambda: len(hosts.agent.runs()) == 1)
    line = one_line(running := run_relay("wake", "web"))
    assert running.returncode == 75 and "a wake of it that relay started is still running" in line, line
    until.touch()
    server.line("woke web: claude exited 0")
    posted(run_relay("wake", "web"))  # the lock went with its program
    server.line("request", timeout=5)
    assert wait_for(lambda: len(hosts.agent.runs()) == 2)
    assert wait_for(lambda: sum("woke web: claude exited 0" in line for line in server.lines) == 2)
    over = run_relay("wake", "web", "--", "third time")
    line = one_line(over)
    assert over.returncode == 75 and "RELAY_WAKE_BUDGET=2" in line and "your message" in line, line
    assert len(hosts.agent.runs()) == 2 and bodies(run_relay, "web") == ["third time"]


# -- bounded, and clean to stop ---------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_server_stops_cleanly_on_a_signal_and_stops_advertising(run_relay, hosts, signum):
    register_on_b(run_relay, hosts)
    server = hosts.serve()
    server.line("serving the doorbell")
    began = time.monotonic()
    assert server.stop(signum) == 0
    assert time.monotonic() - began < 5, "a blocked read ends within its BLOCK timeout"
    assert server.lines[-1] == f"relay: stopped serving the doorbell of {HOST_B}" and server.stderr() == ""
    assert run_relay("doorbell").stdout.decode().startswith("no host serves its doorbell")
    # nobody serves B now: the wake is refused with the command again, at once
    assert one_line(run_relay("wake", "web")).endswith("on box-b run: relay wake web")


def test_a_stopped_server_leaves_its_woken_program_running_and_still_guarded(run_relay, hosts, tmp_path):
    register_on_b(run_relay, hosts)
    until = tmp_path / "until"
    server = hosts.serve(FAKE_UNTIL=str(until))
    server.line("serving the doorbell")
    posted(run_relay("wake", "web"))
    assert wait_for(lambda: len(hosts.agent.runs()) == 1)
    assert server.stop() == 0
    assert server.lines[-1].endswith("; 1 woken program(s) still run on their own"), server.lines
    [run] = hosts.agent.runs()
    os.kill(run["pid"], 0)  # still running
    again = hosts.serve(FAKE_UNTIL=str(until))
    again.line("serving the doorbell")
    line = one_line(refused := run_relay("wake", "web"))
    assert refused.returncode == 75 and "a wake of it that relay started is still running" in line, line
    until.touch()
    assert wait_for(lambda: not os.path.exists(f"/proc/{run['pid']}") or _zombie(run["pid"]))
    assert len(hosts.agent.runs()) == 1


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_server_waits_without_spinning(run_relay, hosts):
    server = hosts.serve()
    server.line("serving the doorbell")
    before = _cpu_seconds(server.proc.pid)
    time.sleep(4)
    spent = _cpu_seconds(server.proc.pid) - before
    assert spent < 0.4, f"an idle server used {spent:.2f} s of CPU in 4 s"
    assert server.stop() == 0


def test_the_rate_holds_requests_in_the_stream_and_none_is_lost(run_relay, hosts, redis_server):
    register_on_b(run_relay, hosts, "web")
    register_on_b(run_relay, hosts, "api")
    server = hosts.serve("--per-minute", "1")
    server.line("serving the doorbell")
    posted(run_relay("wake", "web"))
    second = subprocess.Popen(
        [*relay_command(), "wake", "api"],
        env=hosts.a_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with redis_server.client() as client:
        assert wait_for(lambda: client.xlen(f"relay:doorbell:{HOST_B}") == 1), "the second request waits its turn"
        time.sleep(2)
        assert client.xlen(f"relay:doorbell:{HOST_B}") == 1 and len(hosts.agent.runs()) == 1
    assert server.stop() == 0
    again = hosts.serve("--per-minute", "5")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert b"posted the wake of api" in out and b"started there" in out, out
    again.line("woke api: claude exited 0")
    with redis_server.client() as client:
        assert client.xlen(f"relay:doorbell:{HOST_B}") == 0, "each request is acked and removed once handled"


def test_a_killed_servers_unacked_request_is_handled_after_restart(run_relay, hosts, redis_server):
    register_on_b(run_relay, hosts)
    first = hosts.serve(RELAY_TEST_KILL_AT="doorbell-handle")
    first.line("serving the doorbell")
    waker = subprocess.Popen(
        [*relay_command(), "wake", "web", "--", "after the crash"],
        env=hosts.a_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert first.proc.wait(30) == -signal.SIGKILL
    with redis_server.client() as client:
        pending = client.xpending(f"relay:doorbell:{HOST_B}", "ringers")
        assert pending["pending"] == 1, "read by the killed server, never acked"
        assert client.exists(f"relay:doorbell-alive:{HOST_B}"), "its heartbeat outlives it until it expires"
    second = hosts.serve()  # takes over from its dead predecessor at once
    second.line("serving the doorbell")
    out, err = waker.communicate(timeout=60)
    assert waker.returncode == 0 and b"claude started there" in out, (out, err)
    second.line("woke web: claude exited 0")
    assert len(hosts.agent.runs()) == 1
    with redis_server.client() as client:
        assert client.xpending(f"relay:doorbell:{HOST_B}", "ringers")["pending"] == 0
    assert bodies(run_relay, "web") == ["after the crash"]


def test_one_server_per_host(run_relay, hosts):
    first = hosts.serve()
    first.line("serving the doorbell")
    done = on_b(run_relay, hosts, "doorbell", "--serve")
    line = one_line(done)
    assert done.returncode == 1 and f"already serves {HOST_B} (pid {first.proc.pid})" in line, line
    assert first.proc.poll() is None


def test_the_file_store_refuses_to_serve(run_relay, env, store_home):
    env.pop("AGENT_RELAY_URL", None)
    done = run_relay("doorbell", "--serve", extra_env={"AGENT_RELAY_URL": ""})
    line = one_line(done)
    assert done.returncode == 1 and done.stdout == b""
    assert "needs the Redis store" in line and "no other hosts to serve" in line
    listed = run_relay("doorbell", extra_env={"AGENT_RELAY_URL": ""})
    assert listed.returncode == 0 and b"local store" in listed.stdout


def test_the_default_rate_is_the_one_the_help_states():
    from relay.faces import command_table, doorbell_server

    assert command_table.DOORBELL_PER_MINUTE == doorbell_server.DEFAULT_PER_MINUTE


def test_an_acl_user_with_the_stores_commands_runs_the_doorbell(redis_server, redis_url, tmp_path, monkeypatch):
    """The managed-Redis ACL user (docs/redis-store.md, test_redis_store.ACL_COMMANDS) is enough for both sides."""
    from test_redisdb import ACL_COMMANDS

    from relay.store.redisdb import RedisStore

    with redis_server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "relay", "reset", "on", ">relay-pw", "~relay:*", "resetchannels",
            *(f"+{command}" for command in ACL_COMMANDS.split()),
        )  # fmt: skip
    try:
        url = f"redis://relay:relay-pw@127.0.0.1:{redis_server.port}/0"
        monkeypatch.setenv("RELAY_HOST", HOST_B)
        server = RedisStore(url, home=str(tmp_path / "b")).doorbells()
        monkeypatch.setenv("RELAY_HOST", "box-a")
        waker = RedisStore(url, home=str(tmp_path / "a")).doorbells()
        server.claim_server()
        assert server.heartbeat() and waker.serving(HOST_B) and waker.served_hosts() == [HOST_B]
        request_id = waker.post(HOST_B, {"id": new_id()})
        assert server.read(True, 100) == []
        [(stream_id, request)] = server.read(False, 100)
        assert request is not None and request["rid"] == request_id and request["from"] == "box-a"
        server.ack(stream_id)
        server.reply(request_id, {"state": "refused", "line": "no"})
        assert waker.answer(request_id, 2) == {"state": "refused", "line": "no"}
        server.release_server()
        assert not waker.serving(HOST_B)
    finally:
        with redis_server.client() as admin:
            admin.execute_command("ACL", "DELUSER", "relay")


def test_the_server_rides_out_a_redis_stall_and_a_lost_stream(run_relay, hosts, redis_server):
    """A Redis that stops answering (here: stopped with SIGSTOP past the client's socket timeout)
    or comes back without its data never ends the server: it retries, says so once, and serves on."""
    from relay.store import redis_keys

    register_on_b(run_relay, hosts)
    server = hosts.serve()
    server.line("serving the doorbell")
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        assert "failed: " in server.line("; retrying (stop with SIGTERM)", timeout=60)
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    server.line("Redis answers again", timeout=90)
    assert server.proc.poll() is None
    redis_server.client().delete(redis_keys.doorbell(HOST_B))  # as a restart without persistence would
    time.sleep(1.5)  # the server's blocked read ends on it
    posted(run_relay("wake", "web"))
    server.line("woke web: claude exited 0")
    assert server.proc.poll() is None
