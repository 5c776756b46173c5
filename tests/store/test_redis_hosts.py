"""Several machines on one Redis (docs/redis-store.md), black-box through the CLI, the hook and the bus.

Each machine is a process tree with its own host name (`unshare -u` + `hostname`, as root), its own
HOME and its own AGENT_RELAY_HOME (local state), all sharing one real redis-server through
AGENT_RELAY_URL. Nothing sets RELAY_HOST: the store must tell the machines apart by their real host
names, as it does on real machines. Everything runs through conftest's relay_command(), so these
tests check the frozen binary too.
"""

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import fence_parts, new_id, queued_to, relay_command
from test_bus import Bus, by_id, call, req, run_bus, tool_json
from test_helptext import assert_header_over, on_terminal

# `sh -c` with $0 the host name: rename this UTS namespace's host, then become the program.
_ON_HOST = 'hostname "$0" && exec "$@"'


def _unshare_ok() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-u", "true"], capture_output=True, check=False).returncode == 0


class Host:
    """One machine: runs the program under test (run_relay's signature, so run_bus takes it) with this
    machine's host name, HOME, local state and transcript roots, on the shared Redis."""

    def __init__(self, name: str, root: Path, base: dict[str, str]) -> None:
        self.name = name
        self.root = root
        for sub in ("home", "claude-projects", "codex-sessions"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.env = {
            **base,
            "HOME": str(root / "home"),
            "AGENT_RELAY_HOME": str(root / "state"),
            "RELAY_CLAUDE_PROJECTS": str(root / "claude-projects"),
            "RELAY_CODEX_SESSIONS": str(root / "codex-sessions"),
        }

    def argv(self, *args: str, script: str = _ON_HOST) -> list[str]:
        """`script` (sh, $0 the host name) run in a fresh UTS namespace with the program's argv after it."""
        return ["unshare", "-u", "sh", "-c", script, self.name, *relay_command(), *args]

    def __call__(
        self,
        *args: str,
        input: str | bytes | None = None,
        extra_env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*args),
            input=input.encode() if isinstance(input, str) else input,
            capture_output=True,
            env={**self.env, **(extra_env or {})},
            cwd=str(cwd or self.root),
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def machines(env: dict[str, str], redis_url: str, tmp_path: Path) -> Callable[[str], Host]:
    """`machines(NAME)`: the machine called NAME, sharing this test's Redis. Without root and
    `unshare -u` this skips, or fails under RELAY_REQUIRE_REDIS=1 (as `.ci/run` sets)."""
    if not _unshare_ok():
        if os.environ.get("RELAY_REQUIRE_REDIS") == "1":
            pytest.fail("unshare -u as root is required for the several-hosts tests (RELAY_REQUIRE_REDIS=1)")
        pytest.skip("needs root and unshare -u for more host names")
    base = {k: v for k, v in env.items() if k != "RELAY_HOST"}
    base["AGENT_RELAY_URL"] = redis_url
    return lambda name: Host(name, tmp_path / name, base)


def _start(host: Host, sid: str, project: Path) -> None:
    """The session's SessionStart hook on this host (a Claude session, as Claude Code sends it)."""
    project.mkdir(parents=True, exist_ok=True)
    event = {"session_id": sid, "hook_event_name": "SessionStart", "source": "startup", "cwd": str(project)}
    done = host("hook", input=json.dumps(event) + "\n")
    assert done.returncode == 0 and done.stderr == b"", done.stderr


def _listed(host: Host) -> dict[str, dict[str, Any]]:
    done = host("list", "--json")
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)}


def _json(host: Host, *args: str) -> Any:
    done = host(*args)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def _take_all(host: Host, who: str) -> list[dict[str, Any]]:
    """Everything queued for `who`, taken with `relay inbox` until it comes back empty."""
    taken: list[dict[str, Any]] = []
    while True:
        batch = _json(host, "inbox", who)["messages"]
        if not batch:
            return taken
        taken += batch


def test_a_message_crosses_hosts_through_the_hook_and_the_reply_comes_back(machines, tmp_path):
    alpha, beta = machines("alpha"), machines("beta")
    on_a, on_b = new_id(), new_id()
    _start(alpha, on_a, tmp_path / "proj-a")
    _start(beta, on_b, tmp_path / "proj-b")
    rows = _listed(beta)  # the hook registered both, each under the name it chose, on its own host
    api, web = rows[on_a]["name"], rows[on_b]["name"]
    assert api and web and api != web
    assert (rows[on_a]["host"], rows[on_b]["host"]) == ("alpha", "beta")

    sent = _json(beta, "send", api, "--from", web, "--json", "--", "hello from beta")
    assert _json(beta, "status", sent["id"], "--json")["state"] == "queued"

    event = {"session_id": on_a, "hook_event_name": "UserPromptSubmit", "prompt": "go", "cwd": str(tmp_path / "proj-a")}
    done = alpha("hook", input=json.dumps(event) + "\n")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    text = json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]
    inside = "\n".join(fence_parts(text)[2])
    assert "hello from beta" in inside and sent["id"] in text and f"- from {web} " in inside
    delivered = _json(beta, "status", sent["id"], "--json")
    assert delivered["state"] == "delivered" and delivered["deliveredAt"]
    assert _json(alpha, "peek", on_a)["messages"] == []  # acked: nothing left to deliver again

    reply = _json(alpha, "send", web, "--from", api, "--reply-to", sent["id"], "--json", "--", "hi back")
    replied = _json(beta, "status", sent["id"], "--json")
    assert replied["state"] == "replied" and replied["replyId"] == reply["id"] and replied["repliedAt"]
    [got] = _take_all(beta, web)
    assert (got["id"], got["body"], got["replyTo"]) == (reply["id"], "hi back", sent["id"])
    assert _json(beta, "status", reply["id"], "--json")["state"] == "delivered"


# Each sender: EACH `relay send`s in a row on its host, each body unique (TAG-i); the output lines say where
# each one was queued and its id. 4 senders a host, 2 hosts: 8 processes racing (each send is a process
# start, so EACH is kept small enough for a 2-core machine).
EACH = 12
_SENDER = 'hostname "$0" || exit 1; i=0; while [ $i -lt $EACH ]; do "$@" "$TAG-$i" || exit 1; i=$((i+1)); done'


def test_concurrent_senders_on_two_hosts_lose_and_duplicate_nothing(machines, tmp_path):
    alpha, beta = machines("alpha"), machines("beta")
    target = new_id()
    _start(alpha, target, tmp_path / "proj")
    assert alpha("register", "sink", "--id", target).returncode == 0
    senders = []
    for host in (alpha, beta):
        for n in range(4):
            senders.append(
                subprocess.Popen(
                    host.argv("send", "sink", "--", script=_SENDER),
                    env={**host.env, "TAG": f"{host.name}-{n}", "EACH": str(EACH)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
    sent_ids: list[str] = []
    for proc in senders:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        # each send's first line; the second says sink is not running (no process runs it here)
        lines = [line for line in out.decode().splitlines() if line.startswith("queued -> ")]
        assert len(lines) == EACH, out
        for line in lines:
            assert queued_to(line + "\n") == "sink"
            sent_ids.append(line.rsplit(" ", 1)[1])
    assert len(set(sent_ids)) == 8 * EACH

    taken = _take_all(beta, "sink")
    ids = [m["id"] for m in taken]
    assert len(ids) == len(set(ids)) == 8 * EACH and set(ids) == set(sent_ids)
    expected = {f"{h}-{n}-{i}" for h in ("alpha", "beta") for n in range(4) for i in range(EACH)}
    assert sorted(m["body"] for m in taken) == sorted(expected)
    # each sender's own messages arrive in the order it sent them
    for tag in {b.rsplit("-", 1)[0] for b in expected}:
        mine = [int(m["body"].rsplit("-", 1)[1]) for m in taken if m["body"].rsplit("-", 1)[0] == tag]
        assert mine == list(range(EACH)), tag
    assert _json(alpha, "peek", target)["messages"] == []


def test_a_killed_taker_is_redelivered_at_once_on_its_host_and_after_idle_on_another(machines, tmp_path):
    from relay.store import redisdb

    alpha, beta = machines("alpha"), machines("beta")
    first, second = new_id(), new_id()
    _start(alpha, first, tmp_path / "p1")
    _start(alpha, second, tmp_path / "p2")
    one = _json(beta, "send", first, "--json", "--", "one")
    two = _json(beta, "send", second, "--json", "--", "two")

    # Killed on alpha after showing, before the ack: alpha takes it again at once (the taker's pid is dead).
    killed = alpha("inbox", first, extra_env={"RELAY_TEST_KILL_AT": "take:before-ack"})
    assert killed.returncode != 0 and b"one" in killed.stdout
    assert _json(beta, "status", one["id"], "--json")["state"] == "taken"
    [again] = _json(alpha, "inbox", first)["messages"]
    assert (again["id"], again["body"], again.get("redelivered")) == (one["id"], "one", True)
    assert _json(beta, "status", one["id"], "--json")["state"] == "delivered"

    # Killed on alpha right after claiming: beta cannot check alpha's pids, so it waits for the claim to go idle.
    killed = alpha("inbox", second, extra_env={"RELAY_TEST_KILL_AT": "take:claimed"})
    assert killed.returncode != 0
    died = time.monotonic()
    idle = redisdb.CLAIM_IDLE_MS / 1000
    empty_polls = 0
    while True:
        got = _json(beta, "inbox", second)["messages"]
        waited = time.monotonic() - died
        if got:
            break
        empty_polls += 1
        assert waited <= 30, (
            "mail a dead taker claimed comes again at the latest 30 s after it died (docs/redis-store.md)"
        )
        assert _json(beta, "status", two["id"], "--json")["state"] == "taken"
        time.sleep(2)
    assert empty_polls > 0 and waited >= idle - 1, f"taken over after {waited:.1f}s, before the claim went idle"
    assert [(m["id"], m["body"], m.get("redelivered")) for m in got] == [(two["id"], "two", True)]
    assert _json(alpha, "status", two["id"], "--json")["state"] == "delivered"
    assert _json(alpha, "inbox", second)["messages"] == []


def test_list_and_roster_on_every_host_show_every_session_with_its_host(machines, tmp_path):
    hosts = {name: machines(name) for name in ("alpha", "beta", "gamma")}
    sessions = {name: new_id() for name in hosts}
    for name, host in hosts.items():
        _start(host, sessions[name], tmp_path / f"proj-{name}")
    expected = sorted((sid, name) for name, sid in sessions.items())
    for name, host in hosts.items():
        rows = _listed(host)
        assert sorted((sid, row["host"]) for sid, row in rows.items()) == expected, name
        replies, _ = run_bus(
            host,
            req(1, "initialize", {"protocolVersion": "2025-06-18"}),
            call(2, "roster"),
            extra_env={"CLAUDE_CODE_SESSION_ID": sessions[name]},
        )
        agents = tool_json(by_id(replies)[2])["agents"]
        assert sorted((row["id"], row["host"]) for row in agents) == expected, name


def test_sessions_starting_at_once_on_two_hosts_in_same_named_dirs_get_distinct_names(machines, tmp_path):
    """The hook names a session after its directory; two machines racing for the same name must not both win."""
    hosts = [machines("alpha"), machines("beta")]
    started: dict[str, tuple[Host, subprocess.Popen]] = {}
    for n in range(6):
        host = hosts[n % 2]
        project = host.root / f"checkout-{n}" / "proj"  # the same basename everywhere
        project.mkdir(parents=True)
        sid = new_id()
        event = json.dumps({"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(project)})
        proc = subprocess.Popen(host.argv("hook"), env=host.env, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(event.encode())
        proc.stdin.close()
        started[sid] = (host, proc)
    for _host, proc in started.values():
        assert proc.wait(timeout=60) == 0 and proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
        assert err == b"", err
    for host in hosts:
        rows = _listed(host)
        assert {sid: row["host"] for sid, row in rows.items()} == {sid: h.name for sid, (h, _) in started.items()}
        names = [row["name"] for row in rows.values()]
        assert len(set(names)) == 6 and all(name.startswith("proj") for name in names), names


def test_a_bus_waiting_on_one_host_gets_the_reply_sent_from_another(machines, tmp_path):
    """MCP send + wait on beta; the question is shown by alpha's hook and answered there while beta waits."""
    alpha, beta = machines("alpha"), machines("beta")
    on_a, on_b = new_id(), new_id()
    _start(alpha, on_a, tmp_path / "proj-a")
    _start(beta, on_b, tmp_path / "proj-b")
    api = _listed(beta)[on_a]["name"]
    bus = Bus(beta.argv(), {**beta.env, "CLAUDE_CODE_SESSION_ID": on_b}, beta.root, tmp_path / "bus.err")
    try:
        bus.ask(req(0, "initialize", {"protocolVersion": "2025-06-18"}))
        sent = tool_json(bus.ask(call(1, "send", {"to": api, "body": "ping across", "expectsReply": True})))
        event = {
            "session_id": on_a,
            "hook_event_name": "UserPromptSubmit",
            "prompt": "go",
            "cwd": str(tmp_path / "proj-a"),
        }
        # alpha's next turn shows the question, then alpha answers, while beta's bus is waiting
        later = (
            'sleep 1 && "$@" hook <"$EVENT" >/dev/null && exec "$@" send "$TO" --from "$FROM" --reply-to "$RE" -- pong'
        )
        (tmp_path / "event.json").write_text(json.dumps(event))
        replier = subprocess.Popen(
            alpha.argv(script=f'hostname "$0" && {later}'),
            env={**alpha.env, "EVENT": str(tmp_path / "event.json"), "TO": on_b, "FROM": on_a, "RE": sent["id"]},
        )
        started = time.monotonic()
        got = tool_json(bus.ask(call(2, "wait", {"id": sent["id"], "timeoutSec": 30}), timeout=40))
        waited = time.monotonic() - started
        assert replier.wait(timeout=30) == 0
        assert got["replied"] is True and got["message"]["body"] == "pong" and got["message"]["replyTo"] == sent["id"]
        assert 0.9 < waited < 15, waited  # it really waited, and the reply from the other host ended it
    finally:
        assert bus.close() == 0
    final = _json(alpha, "status", sent["id"], "--json")
    assert final["state"] == "replied" and final["deliveredAt"] and final["replyId"] == got["message"]["id"]
    assert _json(beta, "peek", on_b)["messages"] == []  # the wait took the reply, once


def test_wake_of_a_session_on_another_host_is_refused_with_the_command_to_run_there(machines, tmp_path):
    alpha, beta = machines("alpha"), machines("beta")
    sid = new_id()
    _start(alpha, sid, tmp_path / "proj")
    name = _listed(beta)[sid]["name"]
    done = beta("wake", name, "--", "please look")
    assert done.returncode == 1 and done.stdout == b"", done
    line = done.stderr.decode()
    assert line.count("\n") == 1 and line.rstrip("\n").endswith(f"on alpha run: relay wake {name}"), line
    [queued] = _json(alpha, "peek", sid)["messages"]
    assert queued["body"] == "please look" and queued["id"] in line
    # on its own host the same wake is planned there (its --dry plan), not refused
    planned = _json(alpha, "wake", name, "--dry")
    assert planned["cwd"] == str(tmp_path / "proj")


def test_relay_log_on_every_host_shows_the_one_journal(machines, tmp_path):
    """The journal on Redis is one stream: what one host sent and another delivered, and a wake the
    second refused, read the same from either host (and from a third that took part in nothing)."""
    alpha, beta, gamma = machines("alpha"), machines("beta"), machines("gamma")
    on_a, on_b = new_id(), new_id()
    _start(alpha, on_a, tmp_path / "proj-a")
    _start(beta, on_b, tmp_path / "proj-b")
    name_b = _listed(alpha)[on_b]["name"]
    question = alpha("send", name_b, "--from", on_a, "--", "across the wire")
    assert question.returncode == 0, question.stderr
    assert [m["body"] for m in _take_all(beta, on_b)] == ["across the wire"]
    assert beta("wake", _listed(beta)[on_a]["name"]).returncode == 1  # alpha serves no doorbell: refused
    seen = []
    for host in (alpha, beta, gamma):
        done = host("log", "--json")
        assert done.returncode == 0, done.stderr
        seen.append([json.loads(line) for line in done.stdout.decode().splitlines()])
    assert seen[0] == seen[1] == seen[2]
    assert [(e["event"], e["to"]) for e in seen[0]] == [("sent", on_b), ("delivered", on_b), ("wake-refused", on_a)]
    assert seen[0][1]["body"] == "across the wire" and "alpha" in seen[0][2]["detail"]
    lines = gamma("log", "--session", on_a).stdout.decode().splitlines()
    assert len(lines) == 3 and "across the wire" in lines[0] and "wake-refused" in lines[2]


# ---- redis hosts ----
# Several machines on one Redis store (docs/redis-store.md), black-box through the CLI, the hook and the bus.
#
# Each machine is a RELAY_HOST name (the store's only notion of a machine; test_redis_store checks a
# real second host name with `unshare -u`). Entries carry `host`; `relay list` shows a HOST column and
# `list --json`/`roster` a `host` field; `relay gc` judges only this host's sessions, because it
# decides by this host's transcripts and processes.

DAY = 86400


@pytest.fixture
def on_redis(env, redis_url):
    """run_relay's environment on the test Redis; `host(name)` adds a machine's RELAY_HOST."""
    env["AGENT_RELAY_URL"] = redis_url
    return lambda name: {"AGENT_RELAY_URL": redis_url, "RELAY_HOST": name}


def _start_on(run_relay, host_env, sid: str, project) -> None:
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
    _start_on(run_relay, on_redis("alpha"), a, tmp_path / "a")
    _start_on(run_relay, on_redis("beta"), b, tmp_path / "b")
    for sid in (a, b):
        assert run_relay("send", sid, "--", f"unread for {sid}").returncode == 0
        _age(redis_server, sid, 30)
    recent = new_id()  # a session seen today: gc trusts the clock only when something shows life
    _start_on(run_relay, on_redis("alpha"), recent, tmp_path / "recent")
    done = run_relay("gc", "--json", extra_env=on_redis("alpha"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["id"] for row in report["retired"]] == [a], "alpha must not retire beta's session"
    assert report["retired"][0]["archived"] == 1
    assert "relay:archive:" in report["archive"] and redis_server.password not in report["archive"]
    listed = json.loads(run_relay("list", "--json").stdout)
    assert sorted(row["id"] for row in listed) == sorted([b, recent])
    # beta's mail is untouched, and beta's own gc retires it, archiving the mail
    assert json.loads(run_relay("peek", b).stdout)["count"] == 1
    done = run_relay("gc", "--json", extra_env=on_redis("beta"))
    assert [row["id"] for row in json.loads(done.stdout)["retired"]] == [b]
    with redis_server.client() as client:
        assert [json.loads(m)["body"] for m in client.lrange(f"relay:archive:{a}", 0, -1)] == [f"unread for {a}"]
        assert [json.loads(m)["body"] for m in client.lrange(f"relay:archive:{b}", 0, -1)] == [f"unread for {b}"]


def test_list_shows_each_sessions_host_on_redis(run_relay, relay_cmd, env, on_redis, tmp_path):
    a, b = new_id(), new_id()
    _start_on(run_relay, on_redis("alpha"), a, tmp_path / "a")
    _start_on(run_relay, on_redis("beta-host"), b, tmp_path / "b")
    assert run_relay("register", "api", "--id", a).returncode == 0
    assert run_relay("register", "web", "--id", b, extra_env=on_redis("elsewhere")).returncode == 0
    # a name given from a third machine does not move the session
    rows = json.loads(run_relay("list", "--json").stdout)
    assert [(row["name"], row["host"]) for row in rows] == [("api", "alpha"), ("web", "beta-host")]
    code, text = on_terminal(relay_cmd, env, "list")
    assert code == 0
    titles = ["NAME", "TOOL", "ID", "DELIVER", "HOST", "DIR", "LAST SEEN"]
    assert_header_over(text, titles, ["api", "claude", a, "turn", "alpha", str(tmp_path / "a")])
    same = re.compile(r"\d+[smhd] ago")  # LAST SEEN is relative: a second may pass between the runs
    lines = same.sub("N ago", run_relay("list").stdout.decode()).splitlines()
    assert lines == same.sub("N ago", text).splitlines()[1:]
    assert "beta-host" in lines[1] and lines[1].index("beta-host") == lines[0].index("alpha")


def test_roster_shows_each_sessions_host_on_redis(run_relay, on_redis, tmp_path):
    a, b = new_id(), new_id()
    _start_on(run_relay, on_redis("alpha"), a, tmp_path / "a")
    _start_on(run_relay, on_redis("beta"), b, tmp_path / "b")
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
    _start_on(run_relay, {}, sid, tmp_path / "a")
    [line] = run_relay("list").stdout.decode().splitlines()
    assert "host" not in json.loads(run_relay("list", "--json").stdout)[0]
    assert line.split()[3:5] == ["turn", str(tmp_path / "a")]
