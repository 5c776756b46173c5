"""A real `relay wake` of a real idle session, which reads its mail and answers it (docs/wake.md).

Offline, in a loopback-only network namespace (tests/realclients.py): the plugin is installed the
user's way from a copy that runs the relay under test, a real session is created, another party
mails it a question, and the real doorbell resumes it headless against a scripted mock model. The
mock sees what the woken client sent it (the fenced mail, relay's nudge as the prompt, the bus's
tools) and answers with a call of the bus's `send` tool, which the client must be allowed to run
unattended. The answer must then wait in the asker's mailbox.
"""

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import realclients as rc
from conftest import relay_command

from relay.agents.claude import WAKE_OPTIONS as CLAUDE_WAKE_OPTIONS

pytestmark = pytest.mark.real_clients

QUESTION = "question from the asker: is the v2 schema final"
ANSWER = "answer from the woken session: yes, v2 is final"


def relay_env(sandbox: rc.Sandbox) -> dict[str, str]:
    """The sandbox's environment, able to run the relay under test from the sources."""
    return {**sandbox.env(), "PYTHONPATH": str(rc.REPO)}


def relay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*relay_command(), *args], env=env, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, (args, done.stderr.decode(errors="replace"))
    return done


def slow_bus(plugin: Path, seconds: int) -> None:
    """Make the copy's bus start `seconds` late, as on a loaded machine (the hook is not delayed)."""
    launcher = plugin / "launcher"
    text = launcher.read_text()
    launcher.write_text(text.replace("\nself=$0\n", f'\n[ "$1" = bus ] && sleep {seconds}\nself=$0\n', 1))
    assert f"sleep {seconds}" in launcher.read_text()


def texts_of(message: dict[str, Any]) -> list[str]:
    """The text parts of one Anthropic message (a string content or text blocks)."""
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    return [block["text"] for block in content or [] if block.get("type") == "text"]


def fenced_mail(texts: list[str]) -> list[str]:
    """The insides of every session-relay-mail fence in `texts`."""
    return [inside for text in texts for inside in rc.fence_insides(text)]


def sent_by_the_model(request: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(tool_use, tool_result) pairs of the model's last answer and what came back for it."""
    messages = request["messages"]
    spoke = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    uses = [block for block in messages[spoke[-1]]["content"] if block.get("type") == "tool_use"]
    results = {
        block["tool_use_id"]: block
        for message in rc.since_model_spoke(request)
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    }
    return [(use, results.get(use["id"], {})) for use in uses]


def install_plugin(sandbox: rc.Sandbox, env: dict[str, str], plugin: Path, client: str, add: str) -> None:
    """Install the plugin under test the user's way: add the clone as a marketplace, then the plugin
    (`add` is the client's verb: Claude's `install`, Codex's `add`)."""
    program = str(rc.clients_bin() / client)
    for args in (["plugin", "marketplace", "add", str(plugin)], ["plugin", add, "session-relay@session-relay"]):
        done = rc.offline([program, *args], env, sandbox.project)
        assert done.returncode == 0, f"{client} {args}: {done.stdout[-3000:]!r} {done.stderr[-3000:]!r}"


def idle_codex_session(sandbox: rc.Sandbox, env: dict[str, str], tmp_path: Path) -> str:
    """A real Codex session with the plugin under test installed, started once and left idle; its id.

    Every codex run, the doorbell's too, uses the mock; the user trusted the hook once in the TUI
    (docs/install.md), since the doorbell cannot bypass hook trust. The real hook registered the session."""
    codex = str(rc.clients_bin() / "codex")
    install_plugin(sandbox, env, rc.plugin_under_test(tmp_path / "clone"), "codex", "add")
    config = sandbox.codex_home / "config.toml"
    config.write_text(rc.codex_mock_config() + "\n" + config.read_text())
    tui = {"kind": "codex-tui-trust", "cwd": str(sandbox.project), "config": str(config), "argv": [codex]}
    [trust] = rc.scenario({"steps": [tui]}, env, sandbox.project)["steps"]
    assert trust["trusted"], trust["screen"]
    start = {"kind": "codex", "port": rc.MOCK_PORT, "cwd": str(sandbox.project), "argv": [codex, "exec", "start"]}
    [started] = rc.scenario({"steps": [start]}, env, sandbox.project)["steps"]
    assert started["rc"] == 0, started["stderr"][-3000:]
    [target] = rc.codex_rollouts(sandbox)
    assert sandbox.registry()["agents"][target]["tool"] == "codex"
    return target


# Claude waits 5 s for its MCP servers when told to wait at all: 8 s late needs the longer timeout too.
@pytest.mark.parametrize("bus_delay", [0, 8], ids=["bus-ready", "bus-starts-8s-late"])
def test_woken_claude_reads_its_mail_and_answers_through_the_bus(
    sandbox: rc.Sandbox, tmp_path: Path, bus_delay: int
) -> None:
    rc.skip_unless_runnable("claude")
    env = relay_env(sandbox)
    claude = str(rc.clients_bin() / "claude")
    plugin = rc.plugin_under_test(tmp_path / "clone")
    if bus_delay:
        slow_bus(plugin, bus_delay)
    install_plugin(sandbox, env, plugin, "claude", "install")

    # A real session, registered by the real SessionStart hook, then idle.
    target = str(uuid.uuid4())
    start = {"kind": "claude", "cwd": str(sandbox.project), "argv": [claude, "-p", "start", "--session-id", target]}
    [started] = rc.scenario({"steps": [start]}, env, sandbox.project)["steps"]
    assert started["rc"] == 0, started["stderr"][-2000:]
    assert sandbox.registry()["agents"][target]["dir"] == str(sandbox.project)

    # The asker: a registered session, so there is an address to answer to; it mails a question.
    asker = str(uuid.uuid4())
    (sandbox.root / "asker").mkdir()
    relay(env, "register", "asker", "--id", asker, "--dir", str(sandbox.root / "asker"), "--tool", "claude")
    relay(env, "send", target, "--", QUESTION)

    # What the doorbell will run: relay's own prompt, never the mail.
    planned = json.loads(relay(env, "wake", target, "--dry").stdout)
    nudge = planned["args"][-1]
    assert QUESTION not in nudge
    assert planned["args"] == ["-p", "--resume", target, "--output-format", "json", *CLAUDE_WAKE_OPTIONS, "--", nudge]

    wake = {
        "kind": "claude",
        "cwd": str(sandbox.root),  # not the project: wake changes into the target's dir itself
        "argv": [*relay_command(), "wake", target],
        "calls": [
            [rc.CLAUDE_TOOL_PREFIX + "inbox", {}],
            [rc.CLAUDE_TOOL_PREFIX + "send", {"to": asker, "body": ANSWER}],
        ],
        "timeout": 50,
    }
    [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
    assert woken["rc"] == 0, woken["stderr"][-3000:]
    first, *rest = rc.model_requests(woken)

    # The first model request of the woken run: the mail fenced, relay's nudge as the prompt, the bus's tools.
    turn = rc.since_model_spoke(first)
    texts = [text for message in turn for text in texts_of(message)]
    fences = fenced_mail(texts)
    assert len(fences) == 1, texts
    [mail_line] = [line for line in fences[0].splitlines() if line.startswith("- from ")]
    assert mail_line.endswith(": " + QUESTION), fences
    assert nudge in [text for message in turn if message["role"] == "user" for text in texts_of(message)], turn
    assert all(QUESTION not in text for text in texts if not rc.has_fence_open(text)), "mail outside a fence"
    offered = rc.callable_tools(first)  # listed in `tools`, or named as deferred (Claude 2.1.3xx)
    assert {rc.CLAUDE_TOOL_PREFIX + "inbox", rc.CLAUDE_TOOL_PREFIX + "send"} <= offered, sorted(offered)

    # The mock called `inbox`, then `send`; Claude ran both without asking and sent the results back.
    second, third = rest
    [(use, result)] = sent_by_the_model(second)
    assert use["name"] == rc.CLAUDE_TOOL_PREFIX + "inbox"
    assert result and not result.get("is_error"), result
    assert json.loads(result["content"][0]["text"])["count"] == 0  # the hook had already handed it the mail
    [(use, result)] = sent_by_the_model(third)
    assert (use["name"], use["input"]) == (rc.CLAUDE_TOOL_PREFIX + "send", {"to": asker, "body": ANSWER})
    assert result and not result.get("is_error"), result
    assert asker in json.dumps(result) or "asker" in json.dumps(result), result
    outcome = json.loads(woken["stdout"])  # `claude --output-format json`, passed through by wake
    assert outcome["session_id"] == target
    assert outcome["permission_denials"] == [] and outcome["is_error"] is False, outcome

    # The store: the answer waits for the asker, from the woken session, one wake deep (its bus
    # inherited RELAY_HOPS); the question was taken.
    answer = json.loads(relay(env, "peek", asker).stdout)
    assert [(m["from"], m["body"], m.get("hops")) for m in answer["messages"]] == [(target, ANSWER, 1)]
    assert json.loads(relay(env, "peek", target).stdout)["count"] == 0
    assert_status_line(woken, Path(sandbox.project).name, "claude")


def assert_status_line(woken: dict[str, Any], label: str, tool: str) -> None:
    """relay ran the CLI as its child and said on stderr how it ended (docs/wake.md), naming the session
    by the name its start gave it (its project dir's)."""
    last = woken["stderr"].strip().splitlines()[-1]
    assert re.fullmatch(rf"relay: woke {re.escape(label)}: {tool} exited 0 after \d+\.\d s", last), last


def input_texts(item: dict[str, Any]) -> list[str]:
    """The text parts of one Responses API input message."""
    content = item.get("content")
    if isinstance(content, str):
        return [content]
    return [part["text"] for part in content or [] if isinstance(part, dict) and "text" in part]


def test_woken_codex_reads_its_mail_and_answers_through_the_bus(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    rc.skip_unless_runnable("codex")
    env = relay_env(sandbox)
    # A real session, registered by the real hook, then idle.
    target = idle_codex_session(sandbox, env, tmp_path)

    asker = str(uuid.uuid4())
    (sandbox.root / "asker").mkdir()
    relay(env, "register", "asker", "--id", asker, "--dir", str(sandbox.root / "asker"), "--tool", "claude")
    relay(env, "send", target, "--", QUESTION)
    nudge = json.loads(relay(env, "wake", target, "--dry").stdout)["args"][-1]
    assert QUESTION not in nudge

    reply = json.dumps({"to": asker, "body": ANSWER})
    send_js = f'text("RELAY_SEND " + JSON.stringify(await tools.mcp__bus__send({reply})));'
    wake = {
        "kind": "codex",
        "port": rc.MOCK_PORT,
        "js": send_js,
        "cwd": str(sandbox.root),  # not the project: wake changes into the target's dir itself
        "argv": [*relay_command(), "wake", target],
        "timeout": 50,
    }
    [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
    assert woken["rc"] == 0, woken["stderr"][-3000:]
    first, *rest = [request["body"] for request in woken["requests"]]

    # The first request of the woken run: the mail fenced (the hook's developer message), the nudge as prompt.
    items = [item for item in first["input"] if isinstance(item, dict) and item.get("type") == "message"]
    developer = [text for item in items if item.get("role") == "developer" for text in input_texts(item)]
    fences = fenced_mail(developer)
    assert len(fences) == 1, developer
    [mail_line] = [line for line in fences[0].splitlines() if line.startswith("- from ")]
    assert mail_line.endswith(": " + QUESTION), fences
    user = [text for item in items if item.get("role") == "user" for text in input_texts(item)]
    assert nudge in user, user
    assert all(QUESTION not in text for text in user), "mail outside a fence"

    # The mock's JavaScript called `send` through the bus; Codex ran it and sent the result back.
    [second] = rest
    assert rc.tool_results({"requests": [{"body": second}]}), "no tool result came back"
    sent = rc.exec_output(woken, "RELAY_SEND")
    assert sent.get("isError") is False, sent

    # The store: the answer waits for the asker, from the woken Codex session; the question was taken.
    answer = json.loads(relay(env, "peek", asker).stdout)
    # It carries hops 1: Codex passes its MCP server only the variables .codex-mcp.json's env_vars
    # names, RELAY_HOPS among them, so the loop guard counts answers sent through the bus too.
    assert [(m["from"], m["body"], m.get("hops")) for m in answer["messages"]] == [(target, ANSWER, 1)]
    assert json.loads(relay(env, "peek", target).stdout)["count"] == 0
    assert_status_line(woken, Path(sandbox.project).name, "codex")
    assert list(rc.codex_rollouts(sandbox)) == [target], "the wake started a new session instead of resuming"
