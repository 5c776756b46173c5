"""Builders of real-shaped agent CLI files, shared by the tests (import: `from agent_files import ...`).

Shapes follow /work/shared/REAL_CLIENTS.md (Claude Code 2.1.197, Codex 0.169.0):

- Claude: `<projects>/<encoded dir>/<uuid>.jsonl`. `claude -p` files start with two `queue-operation`
  lines without `cwd`; interactive ones often start with a `file-history-snapshot` line; a resumed
  file can start with `summary` lines. On user/assistant lines `cwd` comes AFTER `message`, so a big
  first prompt pushes the first `cwd` far into the file.
- Codex: `<sessions>/YYYY/MM/DD/rollout-<timestamp>-<uuid>.jsonl`; line 1 is a `session_meta` event
  whose payload carries the whole system prompt (~23 KB today); ids are UUIDv7.

Also here: `fake_agent_cli`, a stand-in `claude`/`codex` executable that records how it was run.
"""

import json
import os
import re
import secrets
import stat
import sys
import time
import uuid
from pathlib import Path
from typing import Any

CLAUDE_VERSION = "2.1.197"
CODEX_VERSION = "0.169.0"
# Roughly the size of Codex 0.169's session_meta line today.
CODEX_META_BYTES = 23 * 1024


def uuid7(at: float | None = None) -> str:
    """A UUIDv7 string (48-bit ms timestamp, version 7, RFC variant), as Codex 0.169 mints."""
    millis = int((time.time() if at is None else at) * 1000)
    raw = bytearray(millis.to_bytes(6, "big") + secrets.token_bytes(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def iso(at: float | None = None) -> str:
    """A transcript timestamp (ISO-8601 UTC, milliseconds)."""
    at = time.time() if at is None else at
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def claude_dir_name(cwd: str) -> str:
    """Claude Code's (lossy) project dir name: every char outside [A-Za-z0-9] becomes '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


def set_age(path: Path, seconds_ago: float) -> Path:
    """Set the file's mtime (and atime) to `seconds_ago` seconds before now."""
    when = time.time() - seconds_ago
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _claude_line(record: dict[str, Any], session_id: str, cwd: str | None) -> str:
    """`record` as a Claude 2.1 transcript line: its uuid and time, then `cwd` after `message` (key order
    matters to a byte scanner), then the session's id, version and branch."""
    record.update({"uuid": str(uuid.uuid4()), "timestamp": iso()})
    if cwd is not None:
        record["cwd"] = cwd
    record.update({"sessionId": session_id, "version": CLAUDE_VERSION, "gitBranch": "main"})
    return _line(record)


def claude_user_line(
    session_id: str, cwd: str | None, text: str, *, sidechain: bool = False, parent: str | None = None
) -> str:
    """A Claude 2.1 `user` line: `cwd` comes after `message` (key order matters to a byte scanner)."""
    record: dict[str, Any] = {
        "parentUuid": parent,
        "isSidechain": sidechain,
        "userType": "external",
        "type": "user",
        "message": {"role": "user", "content": text},
    }
    return _claude_line(record, session_id, cwd)


def claude_assistant_line(session_id: str, cwd: str | None, text: str, *, sidechain: bool = False) -> str:
    """A Claude 2.1 `assistant` line, `cwd` after `message`."""
    record: dict[str, Any] = {
        "parentUuid": str(uuid.uuid4()),
        "isSidechain": sidechain,
        "userType": "external",
        "type": "assistant",
        "message": {
            "id": "msg_" + secrets.token_hex(12),
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
        },
        "requestId": "req_" + secrets.token_hex(12),
    }
    return _claude_line(record, session_id, cwd)


def queue_operation_lines(session_id: str, prompt: str) -> str:
    """The two `queue-operation` lines a `claude -p` transcript starts with (no `cwd`)."""
    return _line(
        {
            "type": "queue-operation",
            "operation": "enqueue",
            "timestamp": iso(),
            "sessionId": session_id,
            "content": prompt,
        }
    ) + _line({"type": "queue-operation", "operation": "dequeue", "timestamp": iso(), "sessionId": session_id})


def file_history_snapshot_line(size: int = 2048) -> str:
    """An interactive transcript's `file-history-snapshot` first line, padded to about `size` bytes."""
    message_id = str(uuid.uuid4())
    backups: dict[str, Any] = {}
    filler = "x" * 1000
    index = 0
    while len(json.dumps(backups)) < size:
        backups[f"/src/module_{index}.py"] = {"backupFileName": f"{secrets.token_hex(8)}@v1", "content": filler}
        index += 1
    return _line(
        {
            "type": "file-history-snapshot",
            "messageId": message_id,
            "snapshot": {"messageId": message_id, "trackedFileBackups": backups, "timestamp": iso()},
            "isSnapshotUpdate": False,
        }
    )


def summary_line(text: str = "Refactor the billing module") -> str:
    """A `summary` line as heads a resumed Claude transcript."""
    return _line({"type": "summary", "summary": text, "leafUuid": str(uuid.uuid4())})


def claude_transcript(
    root: Path,
    cwd: str | None,
    *,
    session_id: str | None = None,
    first: str = "user",
    prompt_bytes: int = 0,
    snapshot_bytes: int = 0,
    sidechain: bool = False,
    project: str | None = None,
    file_name: str | None = None,
    age: float | None = 5,
) -> Path:
    """Write a real-shaped Claude transcript; returns its path.

    first: "user" (plain), "queue-operation" (`claude -p`), "file-history-snapshot" (interactive),
    "summary" (resumed). prompt_bytes pads the first user prompt (which precedes the first cwd);
    snapshot_bytes sizes the snapshot line. age: mtime this many seconds ago (None: leave as is).
    """
    session_id = session_id or str(uuid.uuid4())
    folder = root / (project or claude_dir_name(cwd or "/unknown"))
    folder.mkdir(parents=True, exist_ok=True)
    prompt = "Please look at the failing test. " + ("p" * prompt_bytes)
    head = ""
    if first == "queue-operation":
        head = queue_operation_lines(session_id, prompt)
    elif first == "file-history-snapshot":
        head = file_history_snapshot_line(snapshot_bytes or 2048)
    elif first == "summary":
        head = summary_line() + summary_line("Earlier: fixed the login flow")
    elif first != "user":
        raise ValueError(first)
    body = (
        claude_user_line(session_id, cwd, prompt, sidechain=sidechain)
        + claude_assistant_line(session_id, cwd, "Looking at it now.", sidechain=sidechain)
        + claude_user_line(session_id, cwd, "thanks", sidechain=sidechain)
    )
    path = folder / (file_name or f"{session_id}.jsonl")
    path.write_text(head + body, encoding="utf-8")
    if age is not None:
        set_age(path, age)
    return path


def claude_subagent_files(root: Path, cwd: str, parent_id: str, *, age: float = 5) -> list[Path]:
    """Sub-agent transcripts of `parent_id`: `<uuid>/subagents/agent-<hex>.jsonl` (current layout),
    `<uuid>/subagents/<uuid>.jsonl` and an older top-level `agent-<hex>.jsonl` side file; every
    line says isSidechain true."""
    folder = root / claude_dir_name(cwd)
    sub = folder / parent_id / "subagents"
    sub.mkdir(parents=True, exist_ok=True)
    paths = [
        sub / f"agent-{secrets.token_hex(4)}.jsonl",
        sub / f"{uuid.uuid4()}.jsonl",
        folder / f"agent-{secrets.token_hex(4)}.jsonl",
    ]
    for path in paths:
        path.write_text(
            claude_user_line(parent_id, cwd, "sub-task: grep for TODOs", sidechain=True)
            + claude_assistant_line(parent_id, cwd, "done", sidechain=True),
            encoding="utf-8",
        )
        set_age(path, age)
    return paths


def codex_meta_line(
    session_id: str, cwd: str | None, *, meta_bytes: int = CODEX_META_BYTES, cwd_last: bool = False
) -> str:
    """Codex 0.169's rollout line 1: a `session_meta` event with the system prompt inside, about
    `meta_bytes` long. cwd_last puts `cwd` after the big prompt."""
    instructions = "You are Codex, a coding agent. " + ("Follow the repository conventions. " * (meta_bytes // 34))
    payload: dict[str, Any] = {"id": session_id, "session_id": session_id}
    if cwd is not None and not cwd_last:
        payload["cwd"] = cwd
    payload.update(
        {
            "originator": "codex_exec",
            "cli_version": CODEX_VERSION,
            "source": "exec",
            "timestamp": iso(),
            "model_provider": "openai",
            "base_instructions": {"text": instructions},
            "git": {"commit_hash": secrets.token_hex(20), "branch": "main"},
        }
    )
    if cwd is not None and cwd_last:
        payload["cwd"] = cwd
    return _line({"timestamp": iso(), "ordinal": 0, "type": "session_meta", "payload": payload})


def codex_rollout(
    root: Path,
    cwd: str | None,
    *,
    session_id: str | None = None,
    date: tuple[int, int, int] | None = None,
    meta_bytes: int = CODEX_META_BYTES,
    cwd_last: bool = False,
    name_id: str | None = None,
    first_line: str | None = None,
    age: float | None = 5,
    under: str | None = None,
) -> Path:
    """Write a real-shaped Codex rollout; returns its path.

    date: the YYYY/MM/DD directory (default today). name_id: the uuid in the file name (default the
    session id). first_line: replaces the session_meta line verbatim. under: a sub-folder of root
    instead of the date dirs (e.g. "archived_sessions").
    """
    session_id = session_id or uuid7()
    y, m, d = date or time.gmtime()[:3]
    folder = root / under if under else root / f"{y:04d}" / f"{m:02d}" / f"{d:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{y:04d}-{m:02d}-{d:02d}T10-11-12"
    path = folder / f"rollout-{stamp}-{name_id or session_id}.jsonl"
    meta = (
        first_line
        if first_line is not None
        else codex_meta_line(session_id, cwd, meta_bytes=meta_bytes, cwd_last=cwd_last)
    )
    rest = _line(
        {
            "timestamp": iso(),
            "ordinal": 1,
            "type": "response_item",
            "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]},
        }
    ) + _line({"timestamp": iso(), "ordinal": 2, "type": "event_msg", "payload": {"type": "task_started"}})
    path.write_text(meta + rest, encoding="utf-8")
    if age is not None:
        set_age(path, age)
    return path


def claude_hook_event(session_id: str, cwd: str, transcript: str | None = None) -> bytes:
    """Claude Code 2.1's SessionStart hook stdin (with a trailing newline)."""
    event = {
        "session_id": session_id,
        "transcript_path": transcript or f"/root/.claude/projects/{claude_dir_name(cwd)}/{session_id}.jsonl",
        "cwd": cwd,
        "hook_event_name": "SessionStart",
        "source": "startup",
    }
    return (json.dumps(event) + "\n").encode()


def codex_hook_event(session_id: str, cwd: str, source: str = "startup") -> bytes:
    """Codex 0.169's SessionStart hook stdin: extra fields and no trailing newline."""
    event = {
        "session_id": session_id,
        "transcript_path": f"/root/.codex/sessions/2026/11/23/rollout-2026-11-23T10-11-12-{session_id}.jsonl",
        "cwd": cwd,
        "hook_event_name": "SessionStart",
        "model": "gpt-5.1-codex",
        "permission_mode": "default",
        "source": source,
    }
    return json.dumps(event).encode()


def snapshot_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int, bytes]]:
    """Every entry under `root` with (mode, mtime_ns, content for regular files): to prove nothing changed.

    skip: top-level names to leave out (with everything under them)."""
    result: dict[str, tuple[int, int, bytes]] = {}
    if not root.exists():
        return result
    for path in sorted(root.rglob("*")):
        if path.relative_to(root).parts[0] in skip:
            continue
        info = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
        result[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, content)
    return result


# -- fake agent CLIs ------------------------------------------------------------------------------

_FAKE = """#!{python}
# A stand-in `{name}` for tests: records argv, cwd and environment, prints, exits {code}.
import json, os, sys
# The environment exactly as exec'd (Python may coerce LC_CTYPE in os.environ at start-up, PEP 538).
try:
    with open("/proc/self/environ", "rb") as raw:
        items = raw.read().split(b"\\0")
    env = dict(i.decode("utf-8", "surrogateescape").split("=", 1) for i in items if b"=" in i)
except OSError:
    env = dict(os.environ)
with open({record!r}, "a", encoding="utf-8") as out:
    out.write(json.dumps({{"prog": {name!r}, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": env}}) + "\\n")
sys.stdout.write("fake-{name} stdout\\n")
sys.stderr.write("fake-{name} stderr\\n")
sys.exit({code})
"""


def fake_agent_cli(bin_dir: Path, record: Path, name: str, exit_code: int = 0) -> Path:
    """Write an executable `name` (claude or codex) into bin_dir that appends one JSON line
    {prog, argv, cwd, env} per run to `record`, prints `fake-<name> stdout`/`stderr`, and exits
    with exit_code."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(_FAKE.format(python=sys.executable, name=name, code=exit_code, record=str(record)))
    path.chmod(0o755)
    return path


def read_record(record: Path) -> list[dict[str, Any]]:
    """The runs a fake agent CLI recorded (empty when it never ran)."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
