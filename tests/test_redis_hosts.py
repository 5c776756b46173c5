"""Several machines on one Redis store (docs/redis-store.md), black-box through the CLI, the hook and the bus.

Each machine is a RELAY_HOST name (the store's only notion of a machine; test_redis_store checks a
real second host name with `unshare -u`). Entries carry `host`; `relay list` shows a HOST column and
`list --json`/`roster` a `host` field; `relay gc` judges only this host's sessions, because it
decides by this host's transcripts and processes.
"""

import json
import time

import pytest
from conftest import new_id
from test_bus import by_id, call, req, run_bus, tool_json
from test_help import assert_header_over, on_terminal

DAY = 86400


@pytest.fixture
def on_redis(env, redis_url):
    """run_relay's environment on the test Redis; `host(name)` adds a machine's RELAY_HOST."""
    env["AGENT_RELAY_URL"] = redis_url
    return lambda name: {"AGENT_RELAY_URL": redis_url, "RELAY_HOST": name}


def _start(run_relay, host_env, sid: str, project) -> None:
    project.mkdir(exist_ok=True)
    event = json.dumps({"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(project)})
    done = run_relay("hook", input=event, extra_env=host_env)
    assert done.returncode == 0 and done.stderr == b"", done.stderr


def _age(redis_server, sid: str, days: float) -> None:
    """Make a registration look last seen `days` ago (as if its session had gone quiet)."""
    with redis_server.client() as client:
        entry = json.loads(client.hget("relay:agents", sid))
        entry["lastSeen"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - days * DAY))
        client.hset("relay:agents", sid, json.dumps(entry))


def test_gc_on_redis_judges_only_this_hosts_sessions(run_relay, on_redis, redis_server, tmp_path):
    a, b = new_id(), new_id()
    _start(run_relay, on_redis("alpha"), a, tmp_path / "a")
    _start(run_relay, on_redis("beta"), b, tmp_path / "b")
    for sid in (a, b):
        assert run_relay("send", sid, "--", f"unread for {sid}").returncode == 0
        _age(redis_server, sid, 30)
    done = run_relay("gc", "--json", extra_env=on_redis("alpha"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["id"] for row in report["retired"]] == [a], "alpha must not retire beta's session"
    assert report["retired"][0]["archived"] == 1
    assert "relay:archive:" in report["archive"] and redis_server.password not in report["archive"]
    listed = json.loads(run_relay("list", "--json").stdout)
    assert [row["id"] for row in listed] == [b]
    # beta's mail is untouched, and beta's own gc retires it, archiving the mail
    assert json.loads(run_relay("peek", b).stdout)["count"] == 1
    done = run_relay("gc", "--json", extra_env=on_redis("beta"))
    assert [row["id"] for row in json.loads(done.stdout)["retired"]] == [b]
    with redis_server.client() as client:
        assert [json.loads(m)["body"] for m in client.lrange(f"relay:archive:{a}", 0, -1)] == [f"unread for {a}"]
        assert [json.loads(m)["body"] for m in client.lrange(f"relay:archive:{b}", 0, -1)] == [f"unread for {b}"]


def test_list_shows_each_sessions_host_on_redis(run_relay, relay_cmd, env, on_redis, tmp_path):
    a, b = new_id(), new_id()
    _start(run_relay, on_redis("alpha"), a, tmp_path / "a")
    _start(run_relay, on_redis("beta-host"), b, tmp_path / "b")
    assert run_relay("register", "api", "--id", a).returncode == 0
    assert run_relay("register", "web", "--id", b, extra_env=on_redis("elsewhere")).returncode == 0
    # a name given from a third machine does not move the session
    rows = json.loads(run_relay("list", "--json").stdout)
    assert [(row["name"], row["host"]) for row in rows] == [("api", "alpha"), ("web", "beta-host")]
    code, text = on_terminal(relay_cmd, env, "list")
    assert code == 0
    titles = ["NAME", "TOOL", "ID", "DELIVER", "HOST", "DIR", "LAST SEEN"]
    assert_header_over(text, titles, ["api", "claude", a, "turn", "alpha", str(tmp_path / "a")])
    lines = run_relay("list").stdout.decode().splitlines()
    assert lines == text.splitlines()[1:]
    assert "beta-host" in lines[1] and lines[1].index("beta-host") == lines[0].index("alpha")


def test_roster_shows_each_sessions_host_on_redis(run_relay, on_redis, tmp_path):
    a, b = new_id(), new_id()
    _start(run_relay, on_redis("alpha"), a, tmp_path / "a")
    _start(run_relay, on_redis("beta"), b, tmp_path / "b")
    replies, _ = run_bus(
        run_relay,
        req(1, "initialize", {"protocolVersion": "2025-06-18"}),
        call(2, "roster"),
        extra_env={**on_redis("gamma"), "CLAUDE_CODE_SESSION_ID": a},
    )
    agents = tool_json(by_id(replies)[2])["agents"]
    assert sorted((row["id"], row["host"]) for row in agents) == sorted([(a, "alpha"), (b, "beta")])


def test_list_on_the_file_store_has_no_host_column(run_relay, env, tmp_path):
    """Only a shared store says where a session runs: the local store's lines stay as they were."""
    sid = new_id()
    _start(run_relay, {}, sid, tmp_path / "a")
    [line] = run_relay("list").stdout.decode().splitlines()
    assert "host" not in json.loads(run_relay("list", "--json").stdout)[0]
    assert line.split()[3:5] == ["turn", str(tmp_path / "a")]
