"""The Qwen Code adapter (relay.agents.qwen, docs/agents/qwen.md): its moments, how a hook knows it
runs under Qwen, its transcripts, its wake argv, and the hook serving Qwen's events end to end."""

import json
import os
from pathlib import Path

import pytest
from conftest import new_id, stored_registry

from relay.agents import adapter, qwen

QWEN_EVENT = {"transcript_path": "", "timestamp": "2026-12-06T10:00:00.000Z", "permission_mode": "default"}


def qwen_event(name: str, sid: str, cwd: Path, **fields: object) -> str:
    """A hook event's stdin as Qwen Code 0.24.4 sends it (fields seen on the real CLI)."""
    return json.dumps({"session_id": sid, "cwd": str(cwd), "hook_event_name": name, **QWEN_EVENT, **fields})


@pytest.mark.parametrize(
    ("event", "moment"),
    [
        ({"hook_event_name": "SessionStart", "source": "startup"}, "SessionStart"),
        ({"hook_event_name": "UserPromptSubmit", "prompt": "hi", "submitted_prompt": "hi"}, "UserPromptSubmit"),
        # the request that returns tool results fires UserPromptSubmit too, with no submitted_prompt
        ({"hook_event_name": "UserPromptSubmit", "prompt": "[tool result]"}, "PostToolUse"),
        ({"hook_event_name": "UserPromptSubmit", "prompt": "x", "submitted_prompt": "  "}, "PostToolUse"),
        ({"hook_event_name": "PostToolUse"}, "PostToolUse"),
        ({"hook_event_name": "Stop", "stop_hook_active": False}, "Stop"),
        ({"hook_event_name": "SessionEnd"}, "SessionEnd"),
        ({}, "SessionStart"),
        ({"hook_event_name": "PreToolUse"}, None),
        ({"hook_event_name": 7}, None),
    ],
)
def test_moment_of_each_qwen_event(event, moment) -> None:
    assert qwen.moment_of(event) == moment


def test_a_hook_is_qwens_only_when_qwens_session_variable_names_the_events_session(monkeypatch) -> None:
    sid = new_id()
    monkeypatch.delenv("QWEN_CODE_SESSION_ID", raising=False)
    assert not qwen.is_qwen_event({"session_id": sid})
    monkeypatch.setenv("QWEN_CODE_SESSION_ID", sid.upper())
    assert qwen.is_qwen_event({"session_id": sid})
    # a Claude session started from a Qwen shell inherits the Qwen session's id, not its own
    assert not qwen.is_qwen_event({"session_id": new_id()})
    assert not qwen.is_qwen_event({"session_id": None})


def test_wake_argv_ends_with_the_prompt_as_the_value_of_prompt() -> None:
    sid = new_id()
    argv = adapter("qwen").wake_argv(sid, "the nudge")
    assert argv == ["qwen", "--resume", sid, *qwen.WAKE_OPTIONS, "--prompt", "the nudge"]
    assert "mcp__bus" in argv  # a headless Qwen may call the bus's tools


def test_transcripts_are_the_uuid_files_under_chats_with_the_cwd_from_their_content(monkeypatch, tmp_path) -> None:
    root = tmp_path / "qwen" / "projects"
    monkeypatch.setenv("QWEN_HOME", str(tmp_path / "qwen"))
    monkeypatch.delenv("RELAY_QWEN_PROJECTS", raising=False)
    assert qwen.projects_root() == root
    sid, other = new_id(), new_id()
    chats = root / "-home-me-src-api" / "chats"
    chats.mkdir(parents=True)
    lines = [{"uuid": "u1", "sessionId": sid, "type": "user", "cwd": "/home/me/src/api", "message": {}}]
    (chats / f"{sid}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (chats / f"{other}.jsonl").write_text("not json\n")
    (chats / "notes.jsonl").write_text(json.dumps(lines[0]) + "\n")  # not a session id
    (root / "-home-me-src-api" / f"{new_id()}.jsonl").write_text(json.dumps(lines[0]) + "\n")  # not under chats
    found = {session: cwd for session, cwd, _ in qwen.recent_sessions(0.0)}
    assert found == {sid: "/home/me/src/api", other: None}
    os.utime(chats / f"{other}.jsonl", (1, 1))
    assert {session for session, _, _ in qwen.recent_sessions(1000.0)} == {sid}
    assert {session for session, _ in qwen.transcript_times()} == {sid, other}


def test_no_qwen_process_no_live_session() -> None:
    assert not qwen.is_live(new_id())


def test_hook_qwen_serves_a_tool_continuation_as_between_tools_and_a_prompt_with_all_mail(
    run_relay, store_home, tmp_path
) -> None:
    sid = new_id()
    assert run_relay("hook", "qwen", input=qwen_event("SessionStart", sid, tmp_path, source="startup")).returncode == 0
    assert stored_registry(store_home)["agents"][sid]["tool"] == "qwen"
    for body, urgent in (("n1", False), ("u1", True)):
        assert run_relay("send", sid, *(["--urgent"] if urgent else []), "--", body).returncode == 0

    continuation = run_relay("hook", "qwen", input=qwen_event("UserPromptSubmit", sid, tmp_path, prompt="[result]"))
    context = json.loads(continuation.stdout)["hookSpecificOutput"]["additionalContext"]
    assert "u1" in context and "n1" not in context  # between tool calls: urgent mail only

    prompt = run_relay(
        "hook", "qwen", input=qwen_event("UserPromptSubmit", sid, tmp_path, prompt="go", submitted_prompt="go")
    )
    answer = json.loads(prompt.stdout)["hookSpecificOutput"]
    assert answer["hookEventName"] == "UserPromptSubmit" and "n1" in answer["additionalContext"]


def test_claudes_hook_command_run_by_qwen_registers_a_qwen_session(run_relay, store_home, tmp_path) -> None:
    sid = new_id()
    started = qwen_event("SessionStart", sid, tmp_path, source="startup")
    assert run_relay("hook", input=started, extra_env={"QWEN_CODE_SESSION_ID": sid}).returncode == 0
    assert stored_registry(store_home)["agents"][sid]["tool"] == "qwen"
    claude_sid = new_id()  # a Claude session under a Qwen shell: the variable names another session
    started = qwen_event("SessionStart", claude_sid, tmp_path, source="startup")
    assert run_relay("hook", input=started, extra_env={"QWEN_CODE_SESSION_ID": sid}).returncode == 0
    assert stored_registry(store_home)["agents"][claude_sid]["tool"] == "claude"


def test_the_bus_under_qwen_speaks_for_the_session_qwen_names(monkeypatch, tmp_path) -> None:
    from relay.usecases.identity import current_session

    sid = new_id()
    monkeypatch.setenv("QWEN_CODE_SESSION_ID", sid)
    monkeypatch.setenv("RELAY_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "")  # qwen-extension.json blanks a Claude id inherited from a shell
    me = current_session(store=None)  # type: ignore[arg-type]  # decided before the store is asked
    assert (me.session_id, me.tool, me.project_dir, me.source) == (sid, "qwen", str(tmp_path), "QWEN_CODE_SESSION_ID")


def test_the_manifest_blanks_claudes_session_variable_for_the_bus_and_runs_hook_qwen() -> None:
    manifest = json.loads((Path(__file__).resolve().parents[2] / "qwen-extension.json").read_text())
    bus = manifest["mcpServers"]["bus"]
    assert bus["command"] == "${extensionPath}/launcher" and bus["args"] == ["bus"]
    assert bus["env"]["CLAUDE_CODE_SESSION_ID"] == ""
    commands = {
        event: [hook["command"] for group in groups for hook in group["hooks"]]
        for event, groups in manifest["hooks"].items()
    }
    assert commands == {event: ['"${CLAUDE_PLUGIN_ROOT}/launcher" hook qwen'] for event in qwen.EVENTS}
