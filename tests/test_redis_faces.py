"""The faces on a Redis store that fails (SPEC §16), black-box through the CLI and the hook.

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
from conftest import new_id, queued_to

# What SPEC §16 allows a failing command, from its start to its exit.
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


def _timed(run_relay, *args: str, url: str, stdin: bytes | None = None):
    started = time.monotonic()
    done = run_relay(*args, input=stdin, extra_env={"AGENT_RELAY_URL": url})
    return done, time.monotonic() - started


def _assert_one_failure_line(text: str, secret: str = PASSWORD) -> None:
    """One line naming the URL with `***` for the password, which appears nowhere."""
    assert secret not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Redis at redis://:***@127.0.0.1:" in lines[0], text


def _hook(run_relay, url: str, sid: str, event: str, tmp_path) -> tuple:
    payload = json.dumps({"session_id": sid, "hook_event_name": event, "cwd": str(tmp_path)}).encode()
    return _timed(run_relay, "hook", url=url, stdin=payload)


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
    done, took = _timed(run_relay, *[word.replace("{sid}", sid) for word in argv], url=silent_url)
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
    done, took = _hook(run_relay, silent_url, new_id(), "UserPromptSubmit", tmp_path)
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
