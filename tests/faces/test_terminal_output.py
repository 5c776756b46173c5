"""Nothing planted in a name, dir, cwd, id or path reaches a terminal raw (docs/security.md).

The registry and the agent CLIs' transcripts can be written by anyone who shares the machine (or
by a session through MCP). An OSC 52 sequence in a dir writes the reader's clipboard, `ESC[2J`
clears the screen, a C1 CSI (U+009B) does what ESC[ does, and a bidi override makes text read
differently from what it holds. Human output shows such characters as visible escapes (`\\x1b`);
--json output is the exact JSON value, with those characters written as `\\u` escapes.
"""

import json
from pathlib import Path

import pytest
from agent_files import claude_transcript, codex_rollout
from conftest import new_id

HOSTILE = "x\x1b]52;c;aGVsbG8=\x07\x1b[2J\x9b31m\u202eevil\x7f\x85\u2028\r\t"
SHOWN = "x\\x1b]52;c;aGVsbG8=\\x07\\x1b[2J\\x9b31m\\u202eevil\\x7f\\x85\\u2028\\x0d\\x09"


def assert_terminal_safe(data: bytes) -> str:
    """`data` as text, failing on any control (but newline), DEL, C1, bidi or Unicode line break."""
    text = data.decode()
    for ch in text:
        code = ord(ch)
        bad = (code < 0x20 and ch != "\n") or 0x7F <= code < 0xA0
        bad = bad or ch in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
        assert not bad, f"raw {ch!r} in output: {text[:300]!r}"
    return text


def plant_registry(store_home: Path, entries: list[dict]) -> None:
    store_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {"agents": {e["id"]: e for e in entries}, "names": {e["name"]: e["id"] for e in entries if e.get("name")}}
    (store_home / "registry.json").write_text(json.dumps(data))
    (store_home / "registry.json").chmod(0o600)


def hostile_entries() -> list[dict]:
    plain = new_id()
    return [
        {"id": plain, "name": "n" + HOSTILE, "dir": "/d/" + HOSTILE, "tool": "claude", "lastSeen": HOSTILE},
        {"id": new_id() + HOSTILE, "name": None, "dir": None, "tool": HOSTILE, "lastSeen": None},
    ]


def test_list_shows_planted_fields_escaped(run_relay, store_home):
    """Failed before: `relay list` printed the OSC 52 write, the screen clear and the bidi override raw."""
    plant_registry(store_home, hostile_entries())
    result = run_relay("list")
    assert result.returncode == 0, result.stderr
    text = assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    assert text.count("\n") == 2, "one line per entry: no field can break a line"
    assert f"/d/{SHOWN}" in text and f"n{SHOWN}" in text


def test_list_json_is_exact_and_escaped(run_relay, store_home):
    entries = hostile_entries()
    plant_registry(store_home, entries)
    result = run_relay("list", "--json")
    assert result.returncode == 0, result.stderr
    assert_terminal_safe(result.stdout)
    listed = json.loads(result.stdout)
    assert sorted(json.dumps(e, sort_keys=True) for e in listed) == sorted(
        json.dumps({**e, "deliver": "turn"}, sort_keys=True) for e in entries
    )


@pytest.fixture
def hostile_transcripts(env, store_home):
    claude_root, codex_root = Path(env["RELAY_CLAUDE_PROJECTS"]), Path(env["RELAY_CODEX_SESSIONS"])
    claude_id, codex_id = new_id(), new_id()
    claude_transcript(claude_root, "/c/" + HOSTILE, session_id=claude_id, project="-c-evil")
    codex_rollout(codex_root, "/x/" + HOSTILE, session_id=codex_id)
    plant_registry(store_home, [{"id": claude_id, "name": "n" + HOSTILE, "dir": None, "tool": "claude"}])
    return claude_id, codex_id


def test_discover_shows_planted_cwds_and_names_escaped(run_relay, hostile_transcripts):
    """Failed before: the transcripts' cwds and the registry name were printed raw."""
    result = run_relay("discover")
    assert result.returncode == 0, result.stderr
    text = assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    assert text.count("\n") == 2
    assert f"/c/{SHOWN}" in text and f"/x/{SHOWN}" in text
    assert "evil" not in text.replace(f"/c/{SHOWN}", "").replace(f"/x/{SHOWN}", "")  # not a valid name: not shown


def test_discover_json_is_on_one_line_and_escaped(run_relay, hostile_transcripts):
    claude_id, codex_id = hostile_transcripts
    result = run_relay("discover", "--json")
    assert result.returncode == 0, result.stderr
    assert_terminal_safe(result.stdout)
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    # what a model may read: the cwd on one line with its controls escaped, a name only when valid
    assert rows[claude_id]["cwd"] == "/c/" + SHOWN and rows[claude_id]["name"] is None
    assert rows[codex_id]["cwd"] == "/x/" + SHOWN


def test_an_error_quoting_a_hostile_path_is_one_escaped_line(run_relay, tmp_path):
    """Failed before: the one-line error carried the path's escapes raw (and its line breaks)."""
    missing = str(tmp_path / ("nope" + HOSTILE))
    result = run_relay("wake", "--id", new_id(), "--dir", missing, "--tool", "claude")
    assert result.returncode == 1
    line = assert_terminal_safe(result.stderr)
    assert line.count("\n") == 1 and line.startswith("relay: ") and f"nope{SHOWN}" in line


def test_an_error_about_a_hostile_store_path_is_one_escaped_line(run_relay, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_relay("list", extra_env={"AGENT_RELAY_HOME": str(blocker / HOSTILE)})
    assert result.returncode == 1
    line = assert_terminal_safe(result.stderr)
    assert line.count("\n") == 1 and SHOWN in line


def test_an_error_quoting_a_hostile_name_is_one_escaped_line(run_relay):
    result = run_relay("send", "n" + HOSTILE, "--", "hi")
    assert result.returncode != 0
    line = assert_terminal_safe(result.stderr)
    assert line.count("\n") == 1


def test_register_echoes_a_hostile_dir_escaped(run_relay, tmp_path):
    """Failed before: `relay register` echoed the dir it was given raw."""
    result = run_relay("register", "web", "--id", new_id(), "--dir", str(tmp_path / HOSTILE))
    assert result.returncode == 0, result.stderr
    text = assert_terminal_safe(result.stdout)
    assert text.count("\n") == 1 and SHOWN in text


def test_hook_problems_on_stderr_are_escaped(run_relay, tmp_path):
    """Failed before: the hook's stderr line quoted a hostile store path raw (the hook still exits 0)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a dir")
    event = json.dumps({"session_id": new_id(), "cwd": str(tmp_path), "hook_event_name": "SessionStart"})
    result = run_relay("hook", input=event, extra_env={"AGENT_RELAY_HOME": f"{blocker}/{HOSTILE}"})
    assert result.returncode == 0
    assert result.stdout == b""
    text = assert_terminal_safe(result.stderr)
    assert text.startswith("[session-relay/hook] ") and text.count("\n") == 1 and "\\x1b" in text
