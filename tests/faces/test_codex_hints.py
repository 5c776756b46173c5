"""In a Codex session the hints leave out the `relay` command when the store is outside the
sandbox's writable roots (docs/agents/codex.md): such a command would fail there, the MCP tools work.

Black-box through the program under test (RELAY_CMD): the Codex hook delivering a question, with
Codex's config.toml saying where its sandbox may write.
"""

import json
from pathlib import Path

import pytest
from conftest import new_id
from test_addressing import ok, project, start


def deliver_question(run_relay, tmp_path: Path, config: str, tool: str = "codex") -> str:
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(config)
    extra = {"CODEX_HOME": str(codex_home), "TMPDIR": ""}
    sid = new_id()
    directory = project(tmp_path, "api")
    start(run_relay, sid, directory, *(["codex"] if tool == "codex" else []))
    asker = new_id()
    ok(run_relay("register", "asker", "--id", asker))
    run_relay("ask", "api", "--from", "asker", "--wait", "0", "--", "what port?")
    event = {"session_id": sid, "cwd": str(directory), "hook_event_name": "UserPromptSubmit", "prompt": "hi"}
    result = run_relay("hook", *(["codex"] if tool == "codex" else []), input=json.dumps(event), extra_env=extra)
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    return json.loads(result.stdout)["hookSpecificOutput"]["additionalContext"]


def test_the_cli_fallback_is_left_out_when_codex_cannot_write_the_store(run_relay, tmp_path):
    text = deliver_question(run_relay, tmp_path, "[sandbox_workspace_write]\nexclude_slash_tmp = true\n")
    assert "what port?" in text and "the session-relay `send` tool with to" in text
    assert "or run:" not in text and " send SENDER " not in text and " inbox " not in text


@pytest.mark.parametrize(
    "config",
    [
        "",  # the default roots hold /tmp, where this test's store lives
        'sandbox_mode = "danger-full-access"\n',
        "[sandbox_workspace_write]\nexclude_slash_tmp = true\nwritable_roots = [{store!r}]\n",
    ],
)
def test_the_cli_fallback_stays_when_codex_can_write_the_store(run_relay, store_home, tmp_path, config):
    assert str(store_home).startswith("/tmp/")
    text = deliver_question(run_relay, tmp_path, config.format(store=str(store_home.parent)).replace("'", '"'))
    assert "or run:" in text and "--reply-to" in text


def test_claude_sessions_keep_the_cli_fallback(run_relay, tmp_path):
    text = deliver_question(run_relay, tmp_path, "[sandbox_workspace_write]\nexclude_slash_tmp = true\n", "claude")
    assert "or run:" in text
