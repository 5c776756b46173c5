"""Live delivery through the real CLIs, real turns (docs/delivery.md), offline.

Claude Code (`claude -p`, against a mock Messages API) and Codex (`codex exec`, against a mock
Responses provider) run the plugin under test inside `unshare -n` (tests/realclients.py). The mock
model scripts the turn: its first answer is a tool call whose shell command itself runs
`<launcher> send [--urgent] <this session> -- <text>`, so the mail lands while the session is
mid-turn. The tests then read what the mock *received*: the mail must be in the very next model
request the policy allows (next to the tool result when urgent; after the model's final text via
the Stop hook's block otherwise; before the next prompt when sent between turns), exactly once,
fenced, and the mailbox must be empty afterwards. A turn is extended at most once, and a session
that chose `deliver: start` gets nothing mid-session.

"Exactly once" is counted on the part of each request the model has not seen yet (what came after
its last answer): later requests carry earlier turns again as history, and Claude repeats a Stop
block's reason there.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import realclients as rc

pytestmark = pytest.mark.real_clients

PROMPT = "run the task"


def unique(label: str) -> str:
    """A mail body no other text in any request can contain by chance."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


def deliveries(value: object, body: str) -> int:
    """How many times `body` appears as a delivered mail line (`- from SENDER (TS): BODY`) in `value`.

    The mock's own tool call carries the body too (in the `send` command), so only the fenced
    line's form counts.
    """
    if isinstance(value, str):
        return value.count(f"): {body}")
    if isinstance(value, dict):
        return sum(deliveries(item, body) for item in value.values())
    if isinstance(value, list):
        return sum(deliveries(item, body) for item in value)
    return 0


def fenced_strings(value: object, body: str) -> list[str]:
    """The strings in `value` that deliver `body`; each must hold the fence around it."""
    if isinstance(value, str):
        return [value] if deliveries(value, body) else []
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in fenced_strings(item, body)]


def assert_fenced(value: object, body: str) -> None:
    """Every delivery of `body` sits inside a session-relay fence marked untrusted."""
    texts = fenced_strings(value, body)
    assert texts, f"{body} not delivered"
    for text in texts:
        assert "UNTRUSTED DATA" in text, text
        assert any(f"): {body}" in inside for inside in rc.fence_insides(text)), text


def fenced_blocks(value: object, body: str) -> list[str]:
    """Every fenced block in `value` that delivers `body`, as the model saw it (one per showing)."""
    return [block for text in fenced_strings(value, body) for block in rc.fence_insides(text) if f"): {body}" in block]


def assert_taken_once(plugin: Path, env: dict[str, str], shown: list[str]) -> None:
    """`shown` are showings of one delivery, not several: the same block each time (same message id
    and time, never marked redelivered), and the store has that message delivered."""
    assert shown and len(set(shown)) == 1, shown
    assert "redelivered" not in shown[0], shown[0]
    ids = re.findall(r"\bid ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b", shown[0])
    assert len(ids) == 1, shown[0]
    assert json.loads(launcher(plugin, env, "status", ids[0], "--json").stdout)["state"] == "delivered"


def hook_context(message: dict[str, Any], event: str) -> bool:
    """Is `message` the separate system message Claude 2.1.3xx sends a hook's additionalContext in?"""
    content = message.get("content")
    texts = [content] if isinstance(content, str) else [b.get("text", "") for b in content or [] if isinstance(b, dict)]
    label = f"{event} hook additional context: "
    return message.get("role") == "system" and any(str(text).startswith(label) for text in texts)


def send_command(plugin: Path, session: str, body: str, urgent: bool = False) -> str:
    """The shell command a tool call runs to mail `session` through the plugin's launcher.

    Codex runs it in a login shell, which resets PATH; the launcher running the sources needs this
    test's Python, so its directory goes first.
    """
    python_dir = shlex.quote(os.path.dirname(sys.executable))
    flag = "--urgent " if urgent else ""
    return f'PATH={python_dir}:"$PATH" {shlex.quote(str(plugin / "launcher"))} send {flag}{session} -- {body}'


def launcher(plugin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(plugin / "launcher"), *args], env=env, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, (args, done.stderr.decode(errors="replace"))
    return done


def queued(plugin: Path, env: dict[str, str], session: str) -> list[str]:
    """The bodies still waiting in `session`'s mailbox."""
    return [m["body"] for m in json.loads(launcher(plugin, env, "peek", session).stdout)["messages"]]


# ---------------------------------------------------------------- Claude Code


@pytest.fixture
def claude_plugin(sandbox: rc.Sandbox, tmp_path: Path) -> Path:
    rc.skip_unless_runnable("claude")
    return rc.plugin_under_test(tmp_path / "plugin")


def claude_step(sandbox: rc.Sandbox, plugin: Path, session: str, calls: list[list[Any]]) -> dict[str, Any]:
    """One `claude -p` run of a new session with the plugin, the mock scripted by `calls`."""
    argv = [str(rc.clients_bin() / "claude"), "-p", PROMPT, "--plugin-dir", str(plugin), "--session-id", session]
    return {
        "kind": "claude",
        "cwd": str(sandbox.project),
        "calls": calls,
        "argv": [*argv, "--allowedTools", "Bash"],
        "timeout": 60,
    }


def bash(command: str) -> list[Any]:
    """A scripted Bash tool call for the Anthropic mock."""
    return ["Bash", {"command": command, "description": "mail a session"}]


def claude_requests(sandbox: rc.Sandbox, step: dict[str, Any]) -> list[dict[str, Any]]:
    [run] = rc.scenario({"steps": [step]}, sandbox.env(), sandbox.project)["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    return rc.model_requests(run)


def has_tool_result(message: dict[str, Any]) -> bool:
    return any(isinstance(block, dict) and block.get("type") == "tool_result" for block in message["content"])


def claude_new(requests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Per request, the messages the model had not seen (after its last answer)."""
    return [rc.since_model_spoke(request) for request in requests]


def test_claude_mail_sent_between_prompts_reaches_the_next_prompt(sandbox: rc.Sandbox, claude_plugin: Path) -> None:
    """One open session (`--input-format stream-json`): mail sent while it is idle between two prompts
    is in the request of the second prompt, with that prompt, and in no later one as a new item.

    Claude's own messaging is off here: with it on, relay rings the idle session through its socket
    the moment the mail is sent, a turn of its own (tests/real/test_idle_real.py)."""
    env = {**sandbox.env(), "CLAUDE_CODE_HARBOR_KITE": "0"}
    session = str(uuid.uuid4())
    body = unique("between-prompts")
    argv = [
        str(rc.clients_bin() / "claude"),
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--plugin-dir",
        str(claude_plugin),
        "--session-id",
        session,
    ]
    send = [str(claude_plugin / "launcher"), "send", session, "--", body]
    step = {
        "kind": "claude-turns",
        "cwd": str(sandbox.project),
        "argv": argv,
        "turns": [{"prompt": "first prompt"}, {"before": [send], "prompt": "second prompt"}, {"prompt": "third"}],
        "timeout": 90,
    }
    [run] = rc.scenario({"steps": [step]}, env, sandbox.project)["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    assert all(turn["result"] for turn in run["turns"]), run["stdout"][-3000:]
    assert run["turns"][1]["before"][0]["rc"] == 0, run["turns"][1]["before"]
    requests = rc.model_requests(run)
    assert len(requests) == 3, "one model request per turn: no turn was extended"
    new = claude_new(requests)

    assert deliveries(new[0], body) == 0
    assert deliveries(new[1], body) == 1, json.dumps(new[1])[:3000]
    assert_fenced(new[1], body)
    # It came with the second prompt, from the UserPromptSubmit hook (Claude labels hook context).
    assert "second prompt" in json.dumps(new[1])
    [carrier] = [m for m in new[1] if deliveries(m, body)]
    assert "UserPromptSubmit hook additional context" in json.dumps(carrier), carrier
    assert deliveries(new[2], body) == 0, "delivered again on the next prompt"
    assert deliveries(requests[2], body) == 1, "the history holds it once"
    assert queued(claude_plugin, env, session) == []


def test_claude_urgent_mail_sent_during_a_tool_call_comes_with_the_tool_result(
    sandbox: rc.Sandbox, claude_plugin: Path
) -> None:
    """PostToolUse hands urgent mail to the model in the request that returns the tool's result."""
    env = sandbox.env()
    session = str(uuid.uuid4())
    body = unique("urgent-mid-tool")
    requests = claude_requests(
        sandbox, claude_step(sandbox, claude_plugin, session, [bash(send_command(claude_plugin, session, body, True))])
    )
    assert len(requests) == 2, "tool call, then the final answer: the Stop hook had nothing left to add"
    new = claude_new(requests)
    assert deliveries(new[0], body) == 0
    assert deliveries(new[1], body) == 1, json.dumps(new[1])[:3000]
    assert_fenced(new[1], body)
    # Next to the tool result: the user message carrying the result holds the mail too (Claude
    # 2.1.197), or the system message right after it is the PostToolUse hook's (2.1.3xx).
    [carrier] = [m for m in new[1] if deliveries(m, body)]
    [returned] = [i for i, m in enumerate(new[1]) if isinstance(m["content"], list) and has_tool_result(m)]
    after = new[1][returned + 1 : returned + 2]
    assert new[1][returned] is carrier or (after == [carrier] and hook_context(carrier, "PostToolUse:Bash")), new[1]
    assert queued(claude_plugin, env, session) == []


def test_claude_mail_sent_during_a_turn_extends_it_once(sandbox: rc.Sandbox, claude_plugin: Path) -> None:
    """Ordinary mail waits for the end of the turn (not between tool calls); the Stop hook's block
    then hands it over and the model answers it. Mail that comes during that extension is not
    delivered by a second block: it waits for the next turn."""
    env = sandbox.env()
    session = str(uuid.uuid4())
    body, later = unique("during-turn"), unique("during-extension")
    calls = [
        bash(send_command(claude_plugin, session, body)),
        [None, "finished the task"],
        bash(send_command(claude_plugin, session, later)),
        [None, "read the mail"],
    ]
    requests = claude_requests(sandbox, claude_step(sandbox, claude_plugin, session, calls))
    # 1 prompt -> send, 2 tool result -> text, 3 Stop block -> send, 4 tool result -> text, Stop: no second block.
    assert len(requests) == 4, [json.dumps(claude_new([r])[0])[:500] for r in requests]
    new = claude_new(requests)
    # Only the Stop block's request carries it. Claude 2.1.197 shows a Stop reason once; 2.1.3xx
    # shows it twice in that request (as "Stop hook feedback" and as a "blocking error"): the same
    # block, taken once.
    counts = [deliveries(part, body) for part in new]
    assert counts[:2] == [0, 0] and counts[3] == 0 and counts[2] in (1, 2), counts
    assert_fenced(new[2], body)
    shown = fenced_blocks(new[2], body)
    assert len(shown) == counts[2], shown
    assert all("Stop hook" in text for text in fenced_strings(new[2], body)), "shown by something else"
    assert_taken_once(claude_plugin, env, shown)
    last_answer = [m for m in requests[2]["messages"] if m["role"] == "assistant"][-1]
    assert "finished the task" in json.dumps(last_answer), "the block came after the final text"
    assert all(deliveries(part, later) == 0 for part in new), "a turn was extended twice"
    assert queued(claude_plugin, env, session) == [later]


def test_claude_deliver_start_gets_no_mail_mid_session(sandbox: rc.Sandbox, claude_plugin: Path) -> None:
    """A session that chose `deliver: start` is not interrupted, even by urgent mail: none of its
    requests carries it, it stays queued, and its next session start delivers it."""
    env = sandbox.env()
    session = str(uuid.uuid4())
    project = str(sandbox.project)
    launcher(claude_plugin, env, "register", "quiet", "--id", session, "--dir", project, "--deliver", "start")
    urgent, plain = unique("urgent-for-start"), unique("plain-for-start")
    command = f"{send_command(claude_plugin, session, urgent, True)} && {send_command(claude_plugin, session, plain)}"
    requests = claude_requests(sandbox, claude_step(sandbox, claude_plugin, session, [bash(command)]))
    assert len(requests) == 2, "the Stop hook extended the turn of a deliver:start session"
    assert deliveries(requests, urgent) == deliveries(requests, plain) == 0
    assert sandbox.registry()["agents"][session]["deliver"] == "start", "the session start reset the policy"
    assert queued(claude_plugin, env, session) == [urgent, plain]

    resume = {
        "kind": "claude",
        "cwd": str(sandbox.project),
        "argv": [str(rc.clients_bin() / "claude"), "-p", "again", "--plugin-dir", str(claude_plugin), "-r", session],
        "timeout": 60,
    }
    [first, *_] = claude_requests(sandbox, resume)
    assert deliveries(rc.since_model_spoke(first), urgent) == deliveries(rc.since_model_spoke(first), plain) == 1
    assert queued(claude_plugin, env, session) == []


# ---------------------------------------------------------------- Codex


@pytest.fixture
def codex_plugin(sandbox: rc.Sandbox, tmp_path: Path) -> Path:
    """The plugin under test installed into Codex the user's way (marketplace add, plugin add)."""
    rc.skip_unless_runnable("codex")
    plugin = rc.plugin_under_test(tmp_path / "plugin")
    codex = str(rc.clients_bin() / "codex")
    for args in (["plugin", "marketplace", "add", str(plugin)], ["plugin", "add", "session-relay@session-relay"]):
        done = rc.offline([codex, *args], sandbox.env(), sandbox.project)
        assert done.returncode == 0, done.stderr.decode()
    return plugin


def codex_step(sandbox: rc.Sandbox, script: list[dict[str, str]], *args: str) -> dict[str, Any]:
    """One `codex exec` run (hooks trusted, shell unsandboxed so a tool call can write the store)."""
    argv = [
        str(rc.clients_bin() / "codex"),
        "exec",
        "--skip-git-repo-check",
        *rc.codex_provider_args("{PORT}"),
        "--dangerously-bypass-hook-trust",
        "--dangerously-bypass-approvals-and-sandbox",
    ]
    return {"kind": "codex", "cwd": str(sandbox.project), "script": script, "argv": [*argv, *args], "timeout": 60}


def shell_js(command: str) -> dict[str, str]:
    """A scripted call of Codex's `exec` tool that runs `command` through its nested shell tool;
    `{SESSION}` in it becomes the calling thread's id."""
    return {"js": f"text(JSON.stringify(await tools.exec_command({{cmd: {json.dumps(command)}}})));"}


def codex_requests(sandbox: rc.Sandbox, step: dict[str, Any]) -> list[dict[str, Any]]:
    [run] = rc.scenario({"steps": [step]}, sandbox.env(), sandbox.project)["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    return [request["body"] for request in run["requests"]]


def codex_new(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The input items the model had not seen: after its last message or tool call."""
    items = [item for item in request.get("input", []) if isinstance(item, dict)]
    spoke = [
        i for i, item in enumerate(items) if item.get("role") == "assistant" or item.get("type", "").endswith("_call")
    ]
    return items[spoke[-1] + 1 :] if spoke else items


def the_session(sandbox: rc.Sandbox) -> str:
    [session] = rc.codex_rollouts(sandbox)
    return session


def test_codex_mail_sent_between_turns_reaches_the_next_turn(sandbox: rc.Sandbox, codex_plugin: Path) -> None:
    """Mail sent to a Codex session between two turns is in the first request of the next turn,
    once, and not delivered again within it."""
    env = sandbox.env()
    first = codex_requests(sandbox, codex_step(sandbox, [{"text": "ok"}], "first prompt"))
    session = the_session(sandbox)
    body = unique("between-turns")
    assert all(deliveries(request, body) == 0 for request in first)
    launcher(codex_plugin, env, "send", session, "--", body)

    script = [shell_js("true"), {"text": "ok"}]
    requests = codex_requests(sandbox, codex_step(sandbox, script, "resume", session, "second prompt"))
    assert len(requests) == 2, "the turn was extended although no mail came during it"
    assert deliveries(codex_new(requests[0]), body) == 1, json.dumps(codex_new(requests[0]))[:3000]
    assert_fenced(codex_new(requests[0]), body)
    assert "second prompt" in json.dumps(codex_new(requests[0]))
    assert deliveries(codex_new(requests[1]), body) == 0
    assert deliveries(requests[1], body) == 1, "the history holds it once"
    assert queued(codex_plugin, env, session) == []


def test_codex_urgent_mail_sent_during_a_tool_call_comes_with_the_tool_result(
    sandbox: rc.Sandbox, codex_plugin: Path
) -> None:
    """PostToolUse hands urgent mail to the model in the request that returns the tool's output."""
    env = sandbox.env()
    body = unique("urgent-mid-tool")
    script = [shell_js(send_command(codex_plugin, "{SESSION}", body, True)), {"text": "ok"}]
    requests = codex_requests(sandbox, codex_step(sandbox, script, PROMPT))
    session = the_session(sandbox)
    assert len(requests) == 2, "tool call, then the final answer: the Stop hook had nothing left to add"
    new = [codex_new(request) for request in requests]
    assert deliveries(new[0], body) == 0
    assert deliveries(new[1], body) == 1, json.dumps(new[1])[:3000]
    assert_fenced(new[1], body)
    # With the tool's output: the same batch of new items returns the result of the call.
    kinds = [item.get("type") for item in new[1]]
    assert "custom_tool_call_output" in kinds, kinds
    assert queued(codex_plugin, env, session) == []


def test_codex_mail_sent_during_a_turn_extends_it_once(sandbox: rc.Sandbox, codex_plugin: Path) -> None:
    """Ordinary mail waits for the end of the turn; the Stop block hands it over once (Codex
    XML-escapes it inside <hook_prompt>); mail during the extension waits for the next turn."""
    env = sandbox.env()
    body, later = unique("during-turn"), unique("during-extension")
    script = [
        shell_js(send_command(codex_plugin, "{SESSION}", body)),
        {"text": "finished the task"},
        shell_js(send_command(codex_plugin, "{SESSION}", later)),
        {"text": "read the mail"},
    ]
    requests = codex_requests(sandbox, codex_step(sandbox, script, PROMPT))
    session = the_session(sandbox)
    new = [codex_new(request) for request in requests]
    assert len(requests) == 4, [json.dumps(part)[:500] for part in new]
    assert [deliveries(part, body) for part in new] == [0, 0, 1, 0]
    assert_fenced(new[2], body)
    assert "<hook_prompt" in json.dumps(new[2])
    assert all(deliveries(part, later) == 0 for part in new), "a turn was extended twice"
    assert queued(codex_plugin, env, session) == [later]
