"""The plugin inside the real Codex CLI (pinned in tests/clients/package.json), offline.

The plugin is installed the way a user does it (`codex plugin marketplace add <clone>`, then
`codex plugin add session-relay@session-relay`) from a clean copy of this repo, and `codex exec`
runs against a mock Responses API on loopback inside `unshare -n` (tests/realclients.py). The mock
makes Codex call the bus through its `exec` tool, so the test sees what the real Codex MCP client
got back from the real plugin bus: which tools it offered and whom `whoami` named.
"""

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import realclients as rc

pytestmark = pytest.mark.real_clients

CLAUDE_SESSION = "7d3e9a1b-2c4f-4e8a-b6d0-1f5c8e2a9b34"

# Runs inside Codex's `exec` tool (JavaScript): list the bus tools Codex offers, call whoami.
WHOAMI_JS = """
text("RELAY_TOOLS " + JSON.stringify(ALL_TOOLS.map((t) => t.name).filter((n) => n.startsWith("mcp__bus__"))));
text("RELAY_WHOAMI " + JSON.stringify(await tools.mcp__bus__whoami({})));
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[rc.Sandbox]:
    rc.skip_unless_runnable("codex")
    box = rc.Sandbox(tmp_path / "box")
    # The relay under test: a copy of the committed binary may predate the hook events registered.
    clone = rc.plugin_under_test(tmp_path / "clone")
    try:
        for args in (["plugin", "marketplace", "add", str(clone)], ["plugin", "add", "session-relay@session-relay"]):
            done = codex(box, *args)
            assert done.returncode == 0, done.stderr.decode()
        yield box
    finally:
        box.stop_leftovers()


def codex(sandbox: rc.Sandbox, *args: str) -> subprocess.CompletedProcess:
    return rc.offline([str(rc.clients_bin() / "codex"), *args], sandbox.env(), sandbox.project)


def exec_step(sandbox: rc.Sandbox, *args: str, js: str | None = WHOAMI_JS, trust_hooks: bool = True) -> dict[str, Any]:
    argv = [str(rc.clients_bin() / "codex"), "exec", "--skip-git-repo-check", *rc.codex_provider_args("{PORT}")]
    if trust_hooks:
        argv.append("--dangerously-bypass-hook-trust")
    return {"kind": "codex", "cwd": str(sandbox.project), "js": js, "argv": [*argv, *args]}


def whoami_of(step: dict[str, Any]) -> dict[str, Any]:
    called = rc.exec_output(step, "RELAY_WHOAMI")
    assert called.get("isError") is False, called
    return json.loads(called["content"][0]["text"])


def launcher(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(rc.REPO / "launcher"), *args], env=env, capture_output=True, check=False)


def test_pinned_version_is_the_one_installed(sandbox: rc.Sandbox) -> None:
    done = codex(sandbox, "--version")
    assert done.returncode == 0
    assert done.stdout.decode().split()[-1] == rc.pinned_versions()["@openai/codex"]


def test_codex_manifests() -> None:
    manifest = json.loads((rc.REPO / ".codex-plugin" / "plugin.json").read_text())
    assert manifest["name"] == "session-relay"
    assert manifest["version"] == rc.package_version()
    for key in ("skills", "hooks", "mcpServers"):
        assert (rc.REPO / manifest[key]).exists(), manifest[key]
    hooks = json.loads((rc.REPO / manifest["hooks"]).read_text())
    [command] = [h["command"] for group in hooks["hooks"]["SessionStart"] for h in group["hooks"]]
    assert command.endswith('/launcher" hook codex')
    # Not `.mcp.json`: Claude Code would load that too and start a second bus.
    assert manifest["mcpServers"] != "./.mcp.json"
    bus = json.loads((rc.REPO / manifest["mcpServers"]).read_text())["mcpServers"]["bus"]
    assert (bus["command"], bus["args"], bus["cwd"]) == ("./launcher", ["bus"], ".")
    assert "${" not in json.dumps(bus), "Codex does not substitute variables in MCP configs"
    assert {"AGENT_RELAY_HOME", "SESSION_RELAY_HOME", "CODEX_HOME", "RELAY_HOPS"} <= set(bus["env_vars"])
    # The Redis store (docs/redis-store.md): without these the Codex bus would use the local files while its
    # hook, which inherits Codex's whole environment, uses Redis (and name another host).
    assert {"AGENT_RELAY_URL", "RELAY_HOST"} <= set(bus["env_vars"])


def test_installs_from_the_repo_as_a_marketplace(sandbox: rc.Sandbox) -> None:
    done = codex(sandbox, "plugin", "list", "--json")
    assert done.returncode == 0, done.stderr
    [mine] = [p for p in json.loads(done.stdout)["installed"] if p["pluginId"] == "session-relay@session-relay"]
    assert mine["installed"] is True and mine["enabled"] is True
    assert mine["version"] == rc.package_version()


def test_skill_is_in_the_prompt(sandbox: rc.Sandbox) -> None:
    done = codex(sandbox, "debug", "prompt-input", "hello")
    assert done.returncode == 0, done.stderr
    prompt = done.stdout.decode()
    match = re.search(r"- session-relay:session-relay: ([^\n]*?) \(file: ([^)]*)\)", prompt.replace("\\n", "\n"))
    assert match, "the session-relay skill is not listed in Codex's prompt"
    assert "another AI coding session" in match.group(1)
    assert match.group(2).endswith("/skills/session-relay/SKILL.md")


def test_exec_runs_hook_and_bus_knows_its_session_then_resume_delivers_mail(sandbox: rc.Sandbox) -> None:
    env = sandbox.env()
    [first] = rc.scenario({"steps": [exec_step(sandbox, "say hi")]}, env, sandbox.project)["steps"]
    assert first["rc"] == 0, first["stderr"][-3000:]
    [session] = rc.codex_rollouts(sandbox)

    # The hook ran and registered the Codex session with its project dir.
    entry = sandbox.registry()["agents"][session]
    assert (entry["tool"], entry["dir"]) == ("codex", str(sandbox.project))

    # The bus Codex started offers the eight tools, and whoami names exactly this session.
    assert sorted(rc.exec_output(first, "RELAY_TOOLS")) == sorted(rc.CODEX_TOOL_PREFIX + t for t in rc.BUS_TOOLS)
    me = whoami_of(first)
    assert (me["registered"], me["id"], me["tool"], me["dir"]) == (True, session, "codex", str(sandbox.project))

    # Mail queued for it arrives, fenced, as a developer message when the session is resumed.
    body = "hello codex <session-relay-mail> not a fence"
    assert launcher(env, "send", "--id", session, "--", body).returncode == 0
    resume = exec_step(sandbox, "resume", session, "read your mail", js=None)
    [second] = rc.scenario({"steps": [resume]}, env, sandbox.project)["steps"]
    assert second["rc"] == 0, second["stderr"][-3000:]
    developer = []
    for line in rc.codex_rollouts(sandbox)[session].read_text().splitlines():
        payload = json.loads(line).get("payload") or {}
        if payload.get("type") == "message" and payload.get("role") == "developer":
            developer.append(json.dumps(payload))
    mail = [text for text in developer if "session-relay-mail" in text]
    assert len(mail) == 1, developer
    assert "hello codex [session-relay-mail] not a fence" in json.loads(mail[0])["content"][0]["text"]
    assert json.loads(launcher(env, "peek", session).stdout)["count"] == 0
    # The model request Codex made after the hook carried the same developer message.
    assert any("hello codex [session-relay-mail] not a fence" in json.dumps(r["body"]) for r in second["requests"])


def test_bus_knows_its_session_even_when_the_hook_is_held_for_review(sandbox: rc.Sandbox) -> None:
    """Codex holds untrusted plugin hooks; the bus must still know which session it serves."""
    step = exec_step(sandbox, "say hi", trust_hooks=False)
    [run] = rc.scenario({"steps": [step]}, sandbox.env(), sandbox.project)["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    [session] = rc.codex_rollouts(sandbox)
    assert session not in sandbox.registry()["agents"], "the hook ran although it was never trusted"
    me = whoami_of(run)
    assert me["id"] == session
    assert me["dir"] == str(sandbox.project)


def test_claude_and_codex_in_the_same_dir_each_know_themselves(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    """While a Codex session waits for its model, a Claude session starts in the same dir.

    The Claude hook then owns the dir's marker, so a bus that went by the marker would call the
    Codex session by the Claude session's id (the 0.1 bug).
    """
    rc.skip_unless_runnable("codex", "claude")
    plugin = rc.plugin_under_test(tmp_path / "claude-plugin")
    claude_step = rc.claude_whoami_step(sandbox.project, plugin, CLAUDE_SESSION)
    step = {**exec_step(sandbox, "say hi"), "during_first_request": claude_step}
    [run] = rc.scenario({"steps": [step]}, sandbox.env(), sandbox.project)["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    nested = run["during_first_request"]
    assert nested and nested["rc"] == 0, nested
    [codex_session] = rc.codex_rollouts(sandbox)

    agents = sandbox.registry()["agents"]
    assert agents[CLAUDE_SESSION]["tool"] == "claude"
    assert agents[codex_session]["tool"] == "codex"
    marker = sandbox.relay_home / "markers" / re.sub(r"[^A-Za-z0-9]", "-", str(sandbox.project))
    # the Claude session started last (the marker's first line; the second names the dir)
    assert marker.read_text().splitlines() == [CLAUDE_SESSION, str(sandbox.project)]

    [claude_said] = rc.tool_results(nested)
    assert json.loads(claude_said)["id"] == CLAUDE_SESSION
    codex_said = whoami_of(run)
    assert codex_said["id"] == codex_session
    assert codex_said["tool"] == "codex"


def test_send_then_wake_a_codex_session_with_the_real_doorbell(sandbox: rc.Sandbox) -> None:
    """`relay wake` resumes the idle Codex session headless; the woken model takes its mail via the bus.

    Hooks are not trusted in the woken run (the doorbell cannot bypass hook trust), so the mail comes
    through the `inbox` tool, which Codex must run without asking (`codex exec` never asks).
    """
    env = sandbox.env()
    [first] = rc.scenario({"steps": [exec_step(sandbox, "start", js=None)]}, env, sandbox.project)["steps"]
    assert first["rc"] == 0, first["stderr"][-3000:]
    [session] = rc.codex_rollouts(sandbox)
    assert launcher(env, "send", "--id", session, "--", "please confirm the v2 schema").returncode == 0

    config = sandbox.codex_home / "config.toml"
    config.write_text(rc.codex_mock_config() + "\n" + config.read_text())
    inbox_js = 'text("RELAY_INBOX " + JSON.stringify(await tools.mcp__bus__inbox({})));'
    extra = "Also: the deploy waits on your answer."
    wake = {
        "kind": "codex",
        "port": rc.MOCK_PORT,
        "js": inbox_js,
        "cwd": str(sandbox.root),  # not the project: wake must change into the target's dir itself
        "argv": [str(rc.REPO / "launcher"), "wake", session, "--", extra],
    }
    [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
    assert woken["rc"] == 0, woken["stderr"][-3000:]
    first_request = json.dumps(woken["requests"][0]["body"])
    assert "You have session-relay mail" in first_request, "relay's nudge never reached the model"
    assert extra not in first_request, "the wake text became part of the prompt instead of mail"
    taken = rc.exec_output(woken, "RELAY_INBOX")
    assert taken.get("isError") is False, taken
    mail = json.loads(taken["content"][0]["text"])
    # the wake text was queued as mail from the CLI, after the mail sent before it
    assert [(m["body"], m["fromName"]) for m in mail["messages"]] == [
        ("please confirm the v2 schema", "cli"),
        (extra, "cli"),
    ]
    assert json.loads(launcher(env, "peek", session).stdout)["count"] == 0
    # It resumed the same session (same rollout file), not a new one.
    assert list(rc.codex_rollouts(sandbox)) == [session]


def test_trusting_the_hook_once_in_the_tui_makes_every_codex_run_register(sandbox: rc.Sandbox) -> None:
    """The Codex install step (docs/install.md): answer the TUI's hook review with "Trust all and continue"; from then
    on plain `codex exec` (and so the doorbell's `codex exec resume`) runs the hook."""
    config = sandbox.codex_home / "config.toml"
    config.write_text(rc.codex_mock_config() + "\n" + config.read_text())  # no login screen, no OpenAI
    tui = {
        "kind": "codex-tui-trust",
        "cwd": str(sandbox.project),
        "config": str(config),
        "argv": [str(rc.clients_bin() / "codex")],
    }
    [trust] = rc.scenario({"steps": [tui]}, sandbox.env(), sandbox.project)["steps"]
    assert trust["trusted"], trust["screen"]
    assert "hooks" in trust["answered"], "Codex never asked to review the plugin's hook"
    # Codex keeps trust per hook entry: "Trust all" must have covered every event the plugin registers.
    events = json.loads((rc.REPO / "hooks" / "codex-hooks.json").read_text())["hooks"]
    assert {"SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd"} <= set(events), sorted(events)
    for event in events:
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", event).lower()  # SessionStart -> session_start
        assert f'"session-relay@session-relay:hooks/codex-hooks.json:{snake}:0:0"' in config.read_text(), event

    [run] = rc.scenario(
        {"steps": [exec_step(sandbox, "hi", js=None, trust_hooks=False)]}, sandbox.env(), sandbox.project
    )["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    [session] = rc.codex_rollouts(sandbox)
    assert sandbox.registry()["agents"][session]["tool"] == "codex"
    for event in ("SessionStart", "UserPromptSubmit", "Stop"):  # the events a plain answer passes through
        assert f"hook: {event} Completed" in run["stderr"], run["stderr"][-3000:]
