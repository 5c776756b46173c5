"""The journal and `relay log` (docs/journal.md), black-box through the CLI and the hook: what is journaled
(sends, deliveries, replies, wakes run and refused), privately; each filter of `relay log`; --follow;
RELAY_JOURNAL_DAYS=0 leaving no delivered body anywhere; `relay gc` pruning old days; and a journal
that cannot be written never failing the send or delivery it records."""

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from conftest import new_id, relay_command
from test_wakeguard import Agent

LINE = re.compile(r"^(\d\d:\d\d:\d\d)  (\S+) (?:→|->) (\S+) +(\S+) *(.*)$")


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    return Agent(tmp_path)


def start(run_relay, sid: str, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    event = {"session_id": sid, "hook_event_name": "SessionStart", "source": "startup", "cwd": str(directory)}
    done = run_relay("hook", input=json.dumps(event))
    assert done.returncode == 0 and done.stderr == b"", done.stderr


def prompt(run_relay, sid: str, directory: Path, extra_env: dict[str, str] | None = None) -> str:
    """A UserPromptSubmit hook of the session: the mail it delivered (its additionalContext)."""
    event = {"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt": "go", "cwd": str(directory)}
    done = run_relay("hook", input=json.dumps(event), extra_env=extra_env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"] if done.stdout.strip() else ""


def send(run_relay, *args: str, extra_env: dict[str, str] | None = None) -> str:
    done = run_relay("send", *args, extra_env=extra_env)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().splitlines()[0].split()[-1]  # line 1: queued -> TO <id>


def log(run_relay, *args: str, extra_env: dict[str, str] | None = None) -> list[dict]:
    done = run_relay("log", "--json", *args, extra_env=extra_env)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


@pytest.fixture
def pair(run_relay, tmp_path: Path) -> dict[str, str]:
    """Two started sessions, named api and web after their dirs."""
    api, web = new_id(), new_id()
    start(run_relay, api, tmp_path / "api")
    start(run_relay, web, tmp_path / "web")
    return {"api": api, "web": web}


def converse(run_relay, pair: dict[str, str], tmp_path: Path) -> tuple[str, str]:
    """web asks api, api's prompt delivers it, api replies: (question id, reply id)."""
    question = send(run_relay, "api", "--from", "web", "--urgent", "--", "is v2 final?\nasking for the client")
    assert "is v2 final?" in prompt(run_relay, pair["api"], tmp_path / "api")
    reply = send(run_relay, "web", "--from", "api", "--reply-to", question, "--", "final since Monday")
    return question, reply


FIELDS = ["ts", "event", "id", "from", "fromName", "to", "toName", "thread", "replyTo", "body", "detail"]


def test_a_conversation_is_journaled_with_bodies_and_privately(run_relay, pair, tmp_path, store_home):
    question, reply = converse(run_relay, pair, tmp_path)
    events = log(run_relay)
    assert [list(e) for e in events] == [FIELDS] * 4
    assert [(e["event"], e["id"]) for e in events] == [
        ("sent", question),
        ("delivered", question),
        ("sent", reply),
        ("replied", question),
    ]
    sent, delivered, answer, replied = events
    assert sent["body"] == delivered["body"] == "is v2 final?\nasking for the client"
    assert (sent["fromName"], sent["toName"], sent["from"], sent["to"]) == ("web", "api", pair["web"], pair["api"])
    assert sent["thread"] == question and sent["replyTo"] is None and sent["detail"] == "urgent"
    assert (answer["body"], answer["replyTo"], answer["thread"]) == ("final since Monday", question, question)
    assert (replied["fromName"], replied["toName"], replied["thread"]) == ("api", "web", question)
    assert reply in replied["detail"]
    assert all(e["ts"].endswith("Z") for e in events)

    journal = store_home / "journal"
    assert journal.stat().st_mode & 0o777 == 0o700
    [day] = journal.iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d\.jsonl", day.name) and day.stat().st_mode & 0o777 == 0o600
    assert day.name[:10] == events[0]["ts"][:10]

    done = run_relay("log")
    assert done.returncode == 0
    lines = done.stdout.decode().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [m.group(2, 3, 4) for m in parsed if m] == [
        ("web", "api", "sent"),
        ("web", "api", "delivered"),
        ("api", "web", "sent"),
        ("api", "web", "replied"),
    ]
    assert parsed[0] and parsed[0].group(5) == "is v2 final? ⏎ asking for the client (urgent)"
    assert "\x1b" not in done.stdout.decode(), "no colour in a pipe"


def test_wakes_run_and_refused_are_journaled_with_the_reason(run_relay, agent, pair, tmp_path):
    assert run_relay("wake", "api", "--", "wake up", extra_env=agent.env).returncode == 0
    refused = run_relay("wake", "api", extra_env={**agent.env, "RELAY_WAKE_BUDGET": "0"})
    assert refused.returncode == 75
    assert run_relay("wake", "api", "--dry", extra_env=agent.env).returncode == 0  # --dry records nothing
    events = [e for e in log(run_relay) if e["event"] in ("woken", "wake-refused")]
    assert [(e["event"], e["to"], e["toName"]) for e in events] == [
        ("woken", pair["api"], "api"),
        ("wake-refused", pair["api"], "api"),
    ]
    woken, no = events
    [queued] = [e for e in log(run_relay) if e["event"] == "sent"]
    assert woken["id"] == queued["id"] and queued["body"] == "wake up" and "claude" in woken["detail"]
    assert "RELAY_WAKE_BUDGET=0" in no["detail"]


def test_each_filter(run_relay, pair, tmp_path, store_home):
    question, _ = converse(run_relay, pair, tmp_path)
    other = new_id()
    start(run_relay, other, tmp_path / "docs")
    lone = send(run_relay, "docs", "--", "unrelated")

    assert {e["id"] for e in log(run_relay, "--thread", question)} == {question, *[]} | {
        e["id"] for e in log(run_relay) if e["thread"] == question
    }
    assert {e["thread"] for e in log(run_relay, "--thread", question[:8])} == {question}
    assert [e["id"] for e in log(run_relay, "--thread", lone)] == [lone]

    for who in ("docs", "DOCS", other):
        assert [e["id"] for e in log(run_relay, "--session", who)] == [lone], who
    assert len(log(run_relay, "--session", "web")) == 4

    assert [e["id"] for e in log(run_relay, "--limit", "1")] == [lone]
    assert [e["event"] for e in log(run_relay, "--limit", "2")] == ["replied", "sent"]

    # an event of three hours ago, planted in today's file: --since 1h leaves it out, --since 4h keeps it
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3 * 3600))
    [day] = (store_home / "journal").iterdir()
    with day.open("a") as out:
        out.write(json.dumps({"ts": old, "event": "sent", "id": "old", "body": "long ago"}) + "\n")
    assert "old" not in [e["id"] for e in log(run_relay, "--since", "1h")]
    assert "old" in [e["id"] for e in log(run_relay, "--since", "4h")]
    assert "old" not in [e["id"] for e in log(run_relay, "--since", "90m")]
    assert "old" in [e["id"] for e in log(run_relay, "--since", "1d")]


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "5x"],
        ["--since", "0"],
        ["--since", "h"],
        ["--limit", "0"],
        ["--limit", "ten"],
        ["--thread", "not-an-id!"],
        ["--session", " "],
        ["--bogus"],
    ],
)
def test_bad_values_exit_2_with_one_line(run_relay, args):
    done = run_relay("log", *args)
    assert done.returncode == 2, done
    assert done.stdout == b"" and done.stderr.count(b"\n") == 1, done.stderr


def test_follow_prints_new_events_within_a_second_and_stops_on_sigint(run_relay, env, pair, tmp_path):
    send(run_relay, "api", "--", "before")
    follower = subprocess.Popen(
        [*relay_command(), "log", "--follow", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(tmp_path),
    )
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["body"] == "before"
        os.set_blocking(follower.stdout.fileno(), False)
        seen = b""
        send(run_relay, "api", "--", "after")
        sent_at = time.monotonic()
        while b"after" not in seen and time.monotonic() < sent_at + 10:  # generous: a busy machine
            seen += follower.stdout.read() or b""
            time.sleep(0.02)
        waited = time.monotonic() - sent_at
        assert b"after" in seen
        assert waited < 3, waited  # it polls every 0.4 s: a new event shows within a second when idle
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_with_the_journal_off_no_delivered_body_is_left_anywhere(run_relay, env, pair, tmp_path, store_home):
    off = {"RELAY_JOURNAL_DAYS": "0"}
    body = "secret-body-0b7e5"
    send(run_relay, "api", "--from", "web", "--", body, extra_env=off)
    assert body in prompt(run_relay, pair["api"], tmp_path / "api", extra_env=off)

    def holding() -> list[Path]:
        return [p for p in store_home.rglob("*") if p.is_file() and body.encode() in p.read_bytes()]

    assert holding() == []
    done = run_relay("log", extra_env=off)
    assert done.returncode == 0 and "journal is off" in done.stdout.decode()
    # the same with the journal on: the body is kept only there
    send(run_relay, "api", "--from", "web", "--", body)
    assert body in prompt(run_relay, pair["api"], tmp_path / "api")
    assert [p.parent.name for p in holding()] == ["journal"]


def test_gc_prunes_days_past_the_setting(run_relay, pair, store_home):
    send(run_relay, "api", "--", "today")
    journal = store_home / "journal"
    for day in ("2020-01-01", "2020-01-02"):
        (journal / f"{day}.jsonl").write_text(json.dumps({"ts": f"{day}T10:00:00.000Z", "event": "sent"}) + "\n")
    done = run_relay("gc", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["journalPruned"] == 2
    assert [p.name[:4] for p in journal.iterdir()] == [time.strftime("%Y", time.gmtime())]
    assert [e["body"] for e in log(run_relay)] == ["today"]
    done = run_relay("gc", "--json", extra_env={"RELAY_JOURNAL_DAYS": "0"})
    assert json.loads(done.stdout)["journalPruned"] == 1 and list(journal.iterdir()) == []


def test_a_journal_that_cannot_be_written_never_fails_the_send_or_delivery(run_relay, pair, tmp_path, store_home):
    journal = store_home / "journal"
    journal.mkdir(mode=0o700)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    (journal / f"{today}.jsonl").symlink_to(tmp_path / "elsewhere")  # planted: the journal will not follow it
    send(run_relay, "api", "--", "still sent")
    assert "still sent" in prompt(run_relay, pair["api"], tmp_path / "api")
    assert not (tmp_path / "elsewhere").exists()
    assert "journal" in (store_home / "error.log").read_text()
    done = run_relay("send", "api", "--", "a bad setting", extra_env={"RELAY_JOURNAL_DAYS": "many"})
    assert done.returncode == 0, done.stderr
    assert "RELAY_JOURNAL_DAYS" in (store_home / "error.log").read_text()


def test_on_a_terminal_lines_fit_its_width_and_events_are_coloured(run_relay, env, pair, tmp_path):
    send(run_relay, "api", "--from", "web", "--", "x" * 300)
    send(run_relay, "api", "--", "\x1b]52;c;ZXZpbA==\x07 \u202egnp.exe")  # a clipboard write, a bidi flip
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
    done = subprocess.run(
        [*relay_command(), "log"],
        env={**env, "TERM": "xterm", "NO_COLOR": ""},
        stdout=secondary,
        stderr=subprocess.PIPE,
        cwd=str(tmp_path),
        timeout=60,
        check=False,
    )
    os.close(secondary)
    out = os.read(primary, 65536).decode()
    os.close(primary)
    assert done.returncode == 0, done.stderr
    long, planted = [line for line in out.splitlines() if line]
    assert "\x1b[36msent" in long
    plain = re.sub(r"\x1b\[[0-9;]*m", "", long)
    assert len(plain) == 60 and plain.endswith("…")
    assert "\x1b]" not in planted and "\x07" not in planted and "\u202e" not in planted
    assert "\\x1b]52;c;" in planted


def test_concurrent_writers_never_tear_or_lose_a_line(run_relay, pair, store_home):
    from concurrent.futures import ThreadPoolExecutor

    bodies = [f"writer {w} message {n} " + "y" * 2000 for w in range(4) for n in range(6)]
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda body: send(run_relay, "api", "--", body), bodies))
    [day] = (store_home / "journal").iterdir()
    events = [json.loads(line) for line in day.read_text().splitlines()]  # every line parses
    assert sorted(e["id"] for e in events) == sorted(ids)
    assert sorted(e["body"] for e in events) == sorted(bodies)
