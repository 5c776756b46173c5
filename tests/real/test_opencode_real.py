"""The real OpenCode CLI with relay's plugin, offline, against a scripted chat-completions mock.

The plugin is installed the user's way (`opencode plugin -g <clone>/opencode-plugin`) from a copy
that runs the relay under test, inside a loopback-only network namespace (tests/realclients.py).
What the mock model received proves each delivery point exactly once: urgent mail between tools
(end of the tool's output), mail that came during a turn at its end (one more turn), mail waiting
for a resumed session before its prompt (`relay wake`), and the MCP round trip (the model's
`bus_whoami` call answers with the OpenCode session's own id). The interactive OpenCode (the TUI, in a
pseudo-terminal) takes one more turn for mail that came during a turn, and is woken by mail while
idle within 5 seconds.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import realclients as rc

pytestmark = pytest.mark.real_clients

URGENT = "urgent note between tools 7d1f"
AT_END = "note that came during the turn 93ab"
WAITING = "note waiting for the next prompt 5c2e"
IDLE = "note for the idle session e41a"


def bodies(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The requests of a step that offered tools (the session's turns, not its title requests)."""
    return [r["body"] for r in step["requests"] if r["body"].get("tools")]


def contents(body: dict[str, Any], role: str) -> list[str]:
    """The text of every message of `role` in one chat-completions request."""
    texts = []
    for message in body.get("messages", []):
        if message.get("role") != role:
            continue
        content = message.get("content")
        parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content or []]
        texts.extend(part for part in parts if isinstance(part, str))
    return texts


def times_in(body: dict[str, Any], needle: str) -> int:
    return sum(text.count(needle) for role in ("user", "tool", "system") for text in contents(body, role))


def setup(tmp_path: Path) -> tuple[rc.Sandbox, Path, dict[str, str]]:
    rc.skip_in_compat_pass("opencode")
    rc.skip_unless_runnable("opencode")
    sandbox = rc.Sandbox(tmp_path / "sandbox")
    plugin = rc.plugin_under_test(tmp_path / "clone")
    env = rc.opencode_install(sandbox, plugin)
    return sandbox, plugin, env


def run_steps(sandbox: rc.Sandbox, env: dict[str, str], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the steps in one namespace; nothing of them may outlive the test."""
    try:
        return rc.scenario({"steps": steps}, env, sandbox.project, timeout=600)["steps"]
    finally:
        sandbox.stop_leftovers()


def test_opencode_delivers_at_every_point_and_is_woken_headless(tmp_path):
    sandbox, plugin, env = setup(tmp_path)
    launcher = str(plugin / "launcher")
    opencode = str(rc.clients_bin() / "opencode")
    cwd = str(sandbox.project)
    run, discovered, _, woken = run_steps(
        sandbox,
        env,
        [
            {
                "kind": "opencode",
                "argv": [opencode, "run", "--format", "json", "--", "first prompt"],
                "cwd": cwd,
                "timeout": 240,
                "calls": [
                    {"tool": "bus_whoami", "before": [launcher, "send", "--urgent", "project", "--", URGENT]},
                    {"text": "turn done", "before": [launcher, "send", "project", "--", AT_END]},
                ],
            },
            {"kind": "plain", "argv": [launcher, "discover", "--json"], "cwd": cwd},
            {"kind": "plain", "argv": [launcher, "send", "project", "--", WAITING], "cwd": cwd},
            {
                "kind": "opencode",
                "argv": [launcher, "wake", "project"],
                "cwd": cwd,
                "timeout": 240,
                "calls": [{"text": "read it"}],
            },
        ],
    )
    turns = bodies(run)
    assert run["rc"] == 0, run["stderr"][-3000:]
    agents = sandbox.registry()["agents"]
    [session_id] = [sid for sid, entry in agents.items() if entry.get("tool") == "opencode"]
    assert session_id.startswith("ses_") and len(session_id) == 30
    assert agents[session_id]["dir"] == cwd
    assert all(b["rc"] == 0 for b in run["befores"]), run["befores"]

    # The MCP round trip: the bus's tools were offered and whoami named this very session.
    assert {f"bus_{name}" for name in rc.BUS_TOOLS} <= {t["function"]["name"] for t in turns[0]["tools"]}
    whoami = [text for text in contents(turns[1], "tool") if '"registered"' in text]
    assert whoami and json.loads(whoami[0].split("\n\n")[0])["id"] == session_id, whoami

    # Urgent mail between tools: at the end of the tool's output, fenced, once.
    assert any(URGENT in inside for text in contents(turns[1], "tool") for inside in rc.fence_insides(text))
    # `opencode run` ends when its session goes idle, so mail that came during the turn is not taken
    # there (it would be lost with the process): it waits for the session's next prompt.
    assert len(turns) == 2, [contents(t, "user")[-1:] for t in turns]
    assert times_in(turns[-1], URGENT) == 1 and times_in(turns[-1], AT_END) == 0

    # discover finds the session with its directory.
    rows = json.loads(discovered["stdout"])
    rows = rows.get("sessions", rows) if isinstance(rows, dict) else rows
    assert any(row.get("id") == session_id and row.get("cwd") == cwd for row in rows), rows

    # relay wake resumes it headless; the waiting mail comes before the prompt, once each.
    assert woken["rc"] == 0, woken["stderr"][-3000:]
    resumed = bodies(woken)
    assert resumed, woken
    fenced = [inside for text in contents(resumed[0], "user") for inside in rc.fence_insides(text)]
    assert any(WAITING in inside for inside in fenced) and any(AT_END in inside for inside in fenced), fenced
    assert times_in(resumed[-1], WAITING) == 1 and times_in(resumed[-1], AT_END) == 1
    assert times_in(resumed[-1], URGENT) == 1  # the earlier turn's history, not a second delivery
    prompt_at = next(r["at"] for r in woken["requests"] if r["body"].get("tools"))
    print(
        f"opencode tool-path latency (send -> next model request): "
        f"{[r['at'] for r in run['requests'] if r['body'].get('tools')][1] - run['befores'][0]['at']:.2f} s; "
        f"wake path (relay wake start -> model request): {prompt_at - woken['started']:.2f} s"
    )


def test_an_idle_opencode_tui_is_woken_by_mail(tmp_path):
    sandbox, plugin, env = setup(tmp_path)
    launcher = str(plugin / "launcher")
    opencode = str(rc.clients_bin() / "opencode")
    cwd = str(sandbox.project)
    [tui] = run_steps(
        sandbox,
        env,
        [
            {
                "kind": "opencode-tui",
                "argv": [opencode, "--prompt", "hello"],
                "cwd": cwd,
                "calls": [{"text": "first turn done", "before": [launcher, "send", "project", "--", AT_END]}],
                "send": [launcher, "send", "project", "--", IDLE],
                "expect": IDLE,
                "timeout": 240,
            }
        ],
    )
    assert tui["idle"], tui["screen"]
    assert tui["send"]["rc"] == 0, tui["send"]
    assert tui["woken"], tui["screen"]
    latency, send = tui["latency"], tui["send_seconds"]
    print(f"idle wake latency (mail queued -> model request): {latency:.2f} s (relay send itself: {send:.2f} s)")
    assert tui["latency"] < 5.0
    # Mail that came during the first turn: one more turn at its end (a new user message), once.
    turns = bodies(tui)
    assert any(AT_END in inside for text in contents(turns[1], "user") for inside in rc.fence_insides(text))
    assert times_in(turns[-1], AT_END) == 1
    woken = [b for b in turns if times_in(b, IDLE)]
    assert any(IDLE in inside for text in contents(woken[0], "user") for inside in rc.fence_insides(text))
    assert times_in(bodies(tui)[-1], IDLE) == 1
