"""The faces on a Redis store that fails (docs/redis-store.md), black-box through the CLI and the hook.

A command fails within 3 s with one line naming the URL with its password hidden (exit 1); the hook
exits 0, says so in one line on stderr, and leaves the mail where it was. The throwaway server is
tests/redis_server.py's; faults are a refused port, a server that accepts and never answers, a
wrong password, a database that does not exist, and the server stopped in the middle of a run.
"""

import json
import socket
import time
from collections.abc import Iterator

import pytest
import redis_server as redis_server_mod
from conftest import new_id, queued_to, require_redis
from test_bus import Bus, call, req, tool_json, tool_result

# What docs/redis-store.md allows a failing command, from its start to its exit.
LIMIT_SECONDS = 3.0

PASSWORD = "s3cret-pw"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers a byte: a hung Redis."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"redis://:{PASSWORD}@127.0.0.1:{server.getsockname()[1]}/0"


def refused_url() -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{redis_server_mod.free_port()}/0"


def _commands(sid: str, msg: str) -> list[list[str]]:
    """Every CLI command, each in a shape that needs the store."""
    return [
        ["list"],
        ["list", "--json"],
        ["discover"],
        ["register", "api", "--id", sid],
        ["send", sid, "--", "hello"],
        ["ask", sid, "--wait", "1", "--", "anyone?"],
        ["status", msg],
        ["inbox", sid],
        ["peek", sid],
        ["wake", sid],
        ["gc"],
        ["doctor"],
    ]


# A failing command loads the store and redis-py, which `--version` does not: on an idle machine its
# whole start is 2-4 times that of `--version`, and on a busy one the imports slow down alike.
IMPORTS_OVER_VERSION = 4


def _timed(run_relay, *args: str, url: str, stdin: bytes | None = None, hung: bool = False):
    """The command's result and how long it took beyond what starting it costs right now, measured
    just before so a busy machine does not count: `--version` (scaled to the imports a command
    against Redis adds), or for a hung Redis (`hung`) the same command against a Redis that refuses
    at once (start-up, imports and the connect, but no wait)."""
    started = time.monotonic()
    if hung:
        run_relay(*args, input=stdin, extra_env={"AGENT_RELAY_URL": refused_url()})
        start_cost = time.monotonic() - started
    else:
        run_relay("--version")
        start_cost = (time.monotonic() - started) * IMPORTS_OVER_VERSION
    started = time.monotonic()
    done = run_relay(*args, input=stdin, extra_env={"AGENT_RELAY_URL": url})
    return done, time.monotonic() - started - start_cost


def _assert_one_failure_line(text: str, secret: str = PASSWORD) -> None:
    """One line naming the URL with `***` for the password, which appears nowhere."""
    assert secret not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Redis at redis://:***@127.0.0.1:" in lines[0], text


def _hook(run_relay, url: str, sid: str, event: str, tmp_path, hung: bool = False) -> tuple:
    payload = json.dumps({"session_id": sid, "hook_event_name": event, "cwd": str(tmp_path)}).encode()
    return _timed(run_relay, "hook", url=url, stdin=payload, hung=hung)


# -- commands ---------------------------------------------------------------------------------------


def test_every_command_fails_within_3s_in_one_line_when_redis_refuses(run_relay, env):
    pytest.importorskip("redis")
    url = refused_url()
    for argv in _commands(new_id(), new_id()):
        done, took = _timed(run_relay, *argv, url=url)
        assert done.returncode == 1, (argv, done.stderr)
        assert took < LIMIT_SECONDS, (argv, took)
        if argv == ["doctor"]:  # a report: the problem is its own line among the facts
            report = (done.stdout + done.stderr).decode()
            assert PASSWORD not in report and "Connection refused" in report, report
            continue
        assert done.stdout == b"", argv
        _assert_one_failure_line(done.stderr.decode())


@pytest.mark.parametrize("argv", [["send", "{sid}", "--", "hello"], ["list"]], ids=["send", "list"])
def test_a_redis_that_never_answers_fails_a_command_within_3s(run_relay, env, silent_url, argv):
    pytest.importorskip("redis")
    sid = new_id()
    done, took = _timed(run_relay, *[word.replace("{sid}", sid) for word in argv], url=silent_url, hung=True)
    assert done.returncode == 1 and took < LIMIT_SECONDS, (took, done.stderr)
    _assert_one_failure_line(done.stderr.decode())
    assert "Timeout" in done.stderr.decode() or "timed out" in done.stderr.decode()


@pytest.mark.parametrize("fault", ["password", "db 999", "db notanumber"])
def test_a_wrong_password_or_db_fails_every_command_in_one_line(run_relay, env, redis_server, redis_url, fault):
    url = {
        "password": redis_server.url_for(password="not-the-password"),
        "db 999": redis_server.url_for(db=999),
        "db notanumber": redis_url.rsplit("/", 1)[0] + "/notanumber",
    }[fault]
    for argv in (["send", new_id(), "--", "hello"], ["list"], ["inbox", new_id()]):
        done, took = _timed(run_relay, *argv, url=url)
        assert done.returncode == 1 and took < LIMIT_SECONDS, (argv, took, done.stderr)
        assert done.stdout == b""
        _assert_one_failure_line(done.stderr.decode(), redis_server.password)
        assert "not-the-password" not in done.stderr.decode()


# -- the hook ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd"])
def test_the_hook_exits_0_and_says_so_when_redis_refuses(run_relay, env, tmp_path, event):
    pytest.importorskip("redis")
    done, took = _hook(run_relay, refused_url(), new_id(), event, tmp_path)
    assert done.returncode == 0 and took < LIMIT_SECONDS, (took, done.stderr)
    assert done.stdout == b""  # nothing for the agent CLI to read: the session goes on as if no mail
    text = done.stderr.decode()
    assert text.startswith("[session-relay/hook] ")
    _assert_one_failure_line(text)


def test_the_hook_exits_0_within_3s_when_redis_never_answers(run_relay, env, tmp_path, silent_url):
    pytest.importorskip("redis")
    done, took = _hook(run_relay, silent_url, new_id(), "UserPromptSubmit", tmp_path, hung=True)
    assert done.returncode == 0 and took < LIMIT_SECONDS, (took, done.stderr)
    assert done.stdout == b""
    _assert_one_failure_line(done.stderr.decode())


@pytest.mark.parametrize("fault", ["password", "db 999", "db notanumber"])
def test_the_hook_with_a_wrong_password_or_db_exits_0_and_leaves_the_mail(
    run_relay, env, tmp_path, redis_server, redis_url, fault
):
    sid = new_id()
    assert _hook(run_relay, redis_url, sid, "SessionStart", tmp_path)[0].returncode == 0
    sent = run_relay("send", sid, "--", "wait for me", extra_env={"AGENT_RELAY_URL": redis_url})
    assert sent.returncode == 0, sent.stderr
    queued_to(sent.stdout)
    wrong = {
        "password": redis_server.url_for(password="not-the-password"),
        "db 999": redis_server.url_for(db=999),
        "db notanumber": redis_url.rsplit("/", 1)[0] + "/notanumber",
    }[fault]
    for event in ("SessionStart", "UserPromptSubmit", "Stop"):
        done, took = _hook(run_relay, wrong, sid, event, tmp_path)
        assert done.returncode == 0 and done.stdout == b"" and took < LIMIT_SECONDS, (took, done.stderr)
        _assert_one_failure_line(done.stderr.decode(), redis_server.password)
    # the mail is where it was: the right URL's hook delivers it, once
    done, _ = _hook(run_relay, redis_url, sid, "UserPromptSubmit", tmp_path)
    assert done.returncode == 0 and b"wait for me" in done.stdout, done.stderr
    again, _ = _hook(run_relay, redis_url, sid, "UserPromptSubmit", tmp_path)
    assert again.returncode == 0 and again.stdout == b""


# -- Redis stopped in the middle of a run -----------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path) -> Iterator["redis_server_mod.RedisServer"]:
    """A server of this test alone that keeps its data across a stop and start (appendfsync always)."""
    require_redis()
    server = redis_server_mod.RedisServer(tmp_path / "own-redis", persist=True)
    try:
        yield server
    finally:
        server.stop()


def test_redis_stopped_mid_run_fails_send_fast_keeps_the_hook_quiet_and_loses_nothing(
    run_relay, env, tmp_path, own_redis
):
    url = own_redis.url
    env["AGENT_RELAY_URL"] = url
    sid = new_id()
    assert _hook(run_relay, url, sid, "SessionStart", tmp_path)[0].returncode == 0
    for body in ("before 1", "before 2"):
        assert run_relay("send", sid, "--", body).returncode == 0
    own_redis.stop()
    # a send fails within 3 s in one line (exit 1); the caller knows nothing was queued
    done, took = _timed(run_relay, "send", sid, "--", "during", url=url)
    assert done.returncode == 1 and took < LIMIT_SECONDS, (took, done.stderr)
    _assert_one_failure_line(done.stderr.decode(), own_redis.password)
    # the hook exits 0 on every event, says so, shows nothing
    for event in ("UserPromptSubmit", "PostToolUse", "Stop", "SessionStart"):
        done, took = _hook(run_relay, url, sid, event, tmp_path)
        assert done.returncode == 0 and done.stdout == b"" and took < LIMIT_SECONDS, (event, took, done.stderr)
        _assert_one_failure_line(done.stderr.decode(), own_redis.password)
    own_redis.start()
    # back: what was queued before the outage is delivered, once, in order, and sending works again
    done, _ = _hook(run_relay, url, sid, "UserPromptSubmit", tmp_path)
    assert done.returncode == 0, done.stderr
    text = json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]
    assert text.index("before 1") < text.index("before 2") and "during" not in text and "redelivered" not in text
    assert run_relay("send", sid, "--", "after").returncode == 0
    inbox = json.loads(run_relay("inbox", sid).stdout)
    assert [m["body"] for m in inbox["messages"]] == ["after"]


def test_a_bus_outlives_a_redis_outage(relay_cmd, env, tmp_path, own_redis):
    """The MCP server answers each call while Redis is down with a tool error (one line, password
    hidden), keeps serving, and works again once Redis is back: no restart of the session needed."""
    env["AGENT_RELAY_URL"] = own_redis.url
    me, peer = new_id(), new_id()
    bus = Bus(relay_cmd, {**env, "CLAUDE_CODE_SESSION_ID": me}, tmp_path, tmp_path / "bus.err")
    try:
        bus.ask(req(1, "initialize", {"protocolVersion": "2025-06-18"}))
        assert tool_json(bus.ask(call(2, "send", {"to": peer, "body": "one"})))["ok"] is True
        own_redis.stop()
        started = time.monotonic()
        is_error, text = tool_result(bus.ask(call(3, "send", {"to": peer, "body": "lost?"})))
        assert is_error is True and time.monotonic() - started < LIMIT_SECONDS
        _assert_one_failure_line(text, own_redis.password)
        own_redis.start()
        assert tool_json(bus.ask(call(4, "send", {"to": peer, "body": "two"})))["ok"] is True
    finally:
        assert bus.close() == 0
    inbox = json.loads(run_inbox(relay_cmd, env, peer))
    assert [m["body"] for m in inbox["messages"]] == ["one", "two"]


def run_inbox(relay_cmd: list[str], env: dict[str, str], session_id: str) -> bytes:
    import subprocess

    done = subprocess.run([*relay_cmd, "inbox", session_id], env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
