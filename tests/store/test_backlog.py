"""A take costs what it takes, not what is left (docs/store.md, "The read cursor").

A backlog planted in a mailbox file (far past RELAY_MAILBOX_MAX, as only a hand or an older relay
can leave one) must not make every hook read or rewrite it. These tests count the bytes the hook
process reads (`rchar` of /proc/<pid>/io, its children included), never the time it takes.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import new_id
from test_quota import write_backlog

pytestmark = pytest.mark.files_only("plants a mailbox file and counts the bytes read from it")

BACKLOG_LINES = 200_000  # 300-byte bodies: about 70 MiB


def prompt_event(sid: str, cwd: Path) -> bytes:
    return json.dumps({"session_id": sid, "cwd": str(cwd), "hook_event_name": "UserPromptSubmit"}).encode()


def run_counting_reads(command: list[str], env: dict[str, str], stdin: bytes) -> tuple[int, bytes, int]:
    """(exit code, stdout, bytes read) of one run. The child is waited for without being reaped
    (WNOWAIT), so its /proc/<pid>/io, which includes the children it reaped, can still be read."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    out = proc.stdout.read()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    io = Path(f"/proc/{proc.pid}/io").read_text()
    rchar = int(next(line.split()[1] for line in io.splitlines() if line.startswith("rchar:")))
    return proc.wait(), out, rchar


def shown_bodies(out: bytes) -> list[str]:
    if not out:
        return []
    text = json.loads(out)["hookSpecificOutput"]["additionalContext"]
    return [line.split("): ", 1)[1] for line in text.splitlines() if line.startswith("- from flood ")]


def test_a_prompt_hook_reads_a_bounded_share_of_a_huge_backlog(relay_cmd, env, store_home, tmp_path):
    """Three prompt hooks in a row over a ~70 MiB backlog each read a bounded share of it (the
    batch, a bounded count of what is left, the program's own start), and together deliver the oldest
    messages, each once and in order. Rewriting or counting the whole backlog reads all of it."""
    sid = new_id()
    write_backlog(store_home, sid, BACKLOG_LINES, body_size=300)
    mailbox = store_home / "mailbox" / f"{sid}.jsonl"
    size = mailbox.stat().st_size
    assert size > 64 << 20
    # what the program reads to start at all (a frozen binary reads its own payload), with no mail
    code, _, start_reads = run_counting_reads([*relay_cmd, "hook"], env, prompt_event(new_id(), tmp_path))
    assert code == 0
    bodies: list[str] = []
    for _ in range(3):
        code, out, read = run_counting_reads([*relay_cmd, "hook"], env, prompt_event(sid, tmp_path))
        read -= start_reads
        assert code == 0
        shown = shown_bodies(out)
        assert shown, out[:300]
        bodies += shown
        # its batch and RELAY_MAILBOX_MAX (8 MiB) counted past it, beyond the program's own start
        assert read < 12 << 20, f"the hook read {read} bytes of a {size}-byte backlog"
    assert [b.split("-", 1)[0] for b in bodies] == [f"m{n}" for n in range(len(bodies))]
    assert mailbox.stat().st_size == size  # passed by the cursor, not rewritten


def test_repeated_takes_deliver_every_message_once_in_order(relay_cmd, env, store_home, tmp_path):
    """Prompt hooks, run until the mailbox is empty, show every planted message exactly once and in
    order (the cursor moves back over what one result could not show), and leave no file behind."""
    sid = new_id()
    ids = write_backlog(store_home, sid, 400, body_size=600)
    bodies: list[str] = []
    for _ in range(60):
        code, out, _ = run_counting_reads([*relay_cmd, "hook"], env, prompt_event(sid, tmp_path))
        assert code == 0
        if not out:
            break
        bodies += shown_bodies(out)
    assert [b.split("-", 1)[0] for b in bodies] == [f"m{n}" for n in range(len(ids))]
    assert sorted(p.name for p in (store_home / "mailbox").iterdir()) == []
    assert not (store_home / "inflight" / f"{sid}.jsonl").exists()


def test_oversize_and_unparseable_lines_past_the_cursor_are_set_aside(run_relay, store_home):
    """Lines no relay could have written, deep in a backlog and at its very end, are quarantined as
    the cursor reaches them; every message around them arrives once, in order, and the emptied
    mailbox goes."""
    sid = new_id()
    ids = write_backlog(store_home, sid, 300, body_size=600)
    mailbox = store_home / "mailbox" / f"{sid}.jsonl"
    lines = mailbox.read_bytes().splitlines(keepends=True)
    junk = b"{" + b"z" * (300 << 10) + b"\n"
    mailbox.write_bytes(b"".join(lines[:150]) + junk + b"not json\n" + b"".join(lines[150:]) + junk)
    seen: list[str] = []
    for _ in range(40):
        result = run_relay("inbox", sid)
        assert result.returncode == 0, result.stderr
        got = json.loads(result.stdout)
        seen += [m["id"] for m in got["messages"]]
        if not got["remaining"] and not got["count"]:
            break
    assert seen == ids
    kept = sorted(p.name for p in (store_home / "quarantine").iterdir())
    assert sum(".oversize" in name for name in kept) == 2 and any(".unparsed" in name for name in kept)
    assert not any((store_home / "mailbox").iterdir())
