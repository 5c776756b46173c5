"""Gemini CLI hosting session-relay, for real: real turns against a mock Gemini API, offline.

The extension is installed the documented way (`gemini extensions link <clone>/gemini`) from a copy
of the clone that runs the relay under test, and Gemini CLI 0.61 runs inside `unshare -n` against
tests/realclients.py's mock of `/v1beta/models/...:streamGenerateContent` (docs/agents/gemini.md).
The tests read what the mock *received*: each mail must reach the model at the delivery point its
policy allows (session start, before the prompt, between tool calls when urgent, at the end of a
turn), exactly once, fenced; the model's calls of the bus's tools must come back with the bus's
answers; `relay discover` must find the session with its dir (and call it live while it runs);
`relay wake` must resume it headless so that it reads its mail and answers through the bus.

"Exactly once" is counted on what each request adds after the model's last answer: Gemini sends
the whole conversation again with every request.
"""

import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import realclients as rc

pytestmark = pytest.mark.real_clients

BUS = "mcp_bus_"  # Gemini names an MCP tool mcp_<server>_<tool>
QUESTION = "question from the asker: is the v2 schema final"
ANSWER = "answer from the woken gemini: yes, v2 is final"


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def gemini_setup(sandbox: rc.Sandbox, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The clone's copy, linked into the sandbox's Gemini CLI; the environment to run both in."""
    rc.skip_in_compat_pass("gemini")
    rc.skip_unless_runnable("gemini")
    plugin = rc.plugin_under_test(tmp_path / "clone")
    python_dir = os.path.dirname(sys.executable)  # the launcher runs the sources with this test's Python
    env = {**rc.gemini_env(sandbox), "PYTHONPATH": str(plugin)}
    env["PATH"] = f"{python_dir}{os.pathsep}{env['PATH']}"
    rc.gemini_link(sandbox, plugin, env)
    return plugin, env


def launcher(plugin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(plugin / "launcher"), *args], env=env, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, (args, done.stderr.decode(errors="replace"))
    return done


def send_argv(plugin: Path, session: str, body: str, urgent: bool = False) -> list[str]:
    return [str(plugin / "launcher"), "send", *(["--urgent"] if urgent else []), session, "--", body]


def new_texts(request: dict[str, Any]) -> list[str]:
    """Every string of what a Gemini request adds after the model last spoke (its new turn)."""
    contents = [c for c in request.get("contents") or [] if isinstance(c, dict)]
    spoke = [i for i, content in enumerate(contents) if content.get("role") == "model"]
    return list(rc.strings_in(contents[spoke[-1] + 1 :] if spoke else contents))


def shown(texts: list[str], body: str) -> int:
    """How many fenced mail lines deliver `body` in `texts` (each must sit inside a fence)."""
    count = 0
    for text in texts:
        lines = [line for line in text.splitlines() if line.startswith("- from ") and line.endswith(f"): {body}")]
        if lines:
            insides = rc.fence_insides(text)
            assert "UNTRUSTED DATA" in text and any(f"): {body}" in inside for inside in insides), text
        count += len(lines)
    return count


def gemini_run(sandbox: rc.Sandbox, plugin: Path, argv: list[str], **step: Any) -> dict[str, Any]:
    """One `gemini` run in the project dir against the mock (headless, the bus allowed by the shipped policy)."""
    gemini = str(rc.clients_bin() / "gemini")
    policy = ["--policy", str(plugin / "gemini" / "bus-policy.toml")]
    spec = {"kind": "gemini", "cwd": str(sandbox.project), "argv": [gemini, *policy, "-o", "json", *argv], **step}
    return spec


def test_mail_reaches_the_model_once_at_each_delivery_point(
    sandbox: rc.Sandbox, gemini_setup: tuple[Path, dict[str, str]]
) -> None:
    plugin, env = gemini_setup
    session = str(uuid.uuid4())
    at_start, before_prompt = unique("start-mail"), unique("prompt-mail")
    between_tools, end_of_turn = unique("urgent-mail"), unique("stop-mail")
    launcher(plugin, env, "send", session, "--", at_start)  # waits for the session's start

    # Mail that lands after the session started and before the prompt reaches the model: the user's
    # own BeforeAgent hook (settings hooks run before an extension's, in order when sequential) sends it.
    flag = sandbox.root / "sent-before-prompt"
    command = f"[ -e {flag} ] || {{ touch {flag}; {shlex.join(send_argv(plugin, session, before_prompt))} >&2; }}"
    settings = json.loads((sandbox.gemini_dir / "settings.json").read_text())
    settings["hooks"] = {"BeforeAgent": [{"sequential": True, "hooks": [{"type": "command", "command": command}]}]}
    (sandbox.gemini_dir / "settings.json").write_text(json.dumps(settings))

    discover = [str(plugin / "launcher"), "discover", "--json", "--tool", "gemini"]
    step = gemini_run(
        sandbox,
        plugin,
        ["--session-id", session, "--prompt=run the task"],
        # First model turn: mail arrives mid-turn (one urgent, one not), the model calls whoami.
        # Second: it answers; the end-of-turn hook hands it the other mail; third: done.
        calls=[[BUS + "whoami", {}], [None, "first answer"]],
        before={
            "0": [
                send_argv(plugin, session, between_tools, urgent=True),
                send_argv(plugin, session, end_of_turn),
                discover,
            ]
        },
        timeout=180,
    )
    [run] = rc.scenario({"steps": [step]}, env, sandbox.project)["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    turns = rc.gemini_turns(run)
    assert len(turns) == 3, [new_texts(turn) for turn in turns]
    first, second, third = (new_texts(turn) for turn in turns)

    # Start and before-prompt mail: in the first model request, once each.
    assert (shown(first, at_start), shown(first, before_prompt)) == (1, 1), first
    # Urgent mail: between tool calls, next to whoami's answer; the other mail not yet.
    assert (shown(second, between_tools), shown(second, end_of_turn)) == (1, 0), second
    # The end of the turn: the Stop-like hook went on with the turn once, with the remaining mail.
    assert shown(third, end_of_turn) == 1, third
    everything = [text for turn in turns for text in new_texts(turn)]
    for body in (at_start, before_prompt, between_tools, end_of_turn):
        assert shown(everything, body) == 1, body
    assert json.loads(launcher(plugin, env, "peek", session).stdout)["count"] == 0

    # The MCP round trip: the model's whoami call came back with this session, registered as gemini.
    answers = [text for text in second if '"registered"' in text]
    assert answers and f'"id":"{session}"' in answers[0].replace(" ", "") and '"tool":"gemini"' in answers[0], second
    assert {BUS + name for name in rc.BUS_TOOLS} <= rc.gemini_tools(turns[0])

    # discover, while the session ran (mid-turn) and after it ended: found with its dir; live only then.
    [during] = [ran for ran in run["ran"] if ran["argv"] == discover]
    [row] = [r for r in json.loads(during["stdout"]) if r["id"] == session]
    assert (row["tool"], row["cwd"], row["live"]) == ("gemini", str(sandbox.project), True), row
    [row] = [r for r in json.loads(launcher(plugin, env, *discover[1:]).stdout) if r["id"] == session]
    assert (row["cwd"], row["live"]) == (str(sandbox.project), False), row
    assert sandbox.registry()["agents"][session]["tool"] == "gemini"
    assert sandbox.registry()["agents"][session].get("endedAt")  # SessionEnd was recorded


def test_woken_gemini_reads_its_mail_and_answers_through_the_bus(
    sandbox: rc.Sandbox, gemini_setup: tuple[Path, dict[str, str]]
) -> None:
    plugin, env = gemini_setup
    target = str(uuid.uuid4())
    [started] = rc.scenario(
        {"steps": [gemini_run(sandbox, plugin, ["--session-id", target, "--prompt=start"])]}, env, sandbox.project
    )["steps"]
    assert started["rc"] == 0, started["stderr"][-3000:]
    assert sandbox.registry()["agents"][target]["tool"] == "gemini"

    asker = str(uuid.uuid4())
    (sandbox.root / "asker").mkdir()
    launcher(plugin, env, "register", "asker", "--id", asker, "--dir", str(sandbox.root / "asker"), "--tool", "claude")
    launcher(plugin, env, "send", target, "--", QUESTION)

    planned = json.loads(launcher(plugin, env, "wake", target, "--dry").stdout)
    nudge = planned["args"][-1].removeprefix("--prompt=")
    policy = str(plugin.resolve() / "gemini" / "bus-policy.toml")
    assert planned["cmd"] == "gemini" and QUESTION not in nudge
    assert planned["args"] == ["--resume", target, "--policy", policy, "-o", "json", f"--prompt={nudge}"]

    wake = rc.gemini_wake_step(sandbox, plugin, target, [[BUS + "send", {"to": asker, "body": ANSWER}]])
    [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
    assert woken["rc"] == 0, woken["stderr"][-3000:]
    first, *_ = rc.gemini_turns(woken)
    texts = new_texts(first)
    assert shown(texts, QUESTION) == 1, texts
    assert any(nudge in text for text in texts), texts
    outcome = json.loads(woken["stdout"])  # `gemini -o json`, passed through by wake
    assert outcome.get("session_id", target) == target, outcome

    answer = json.loads(launcher(plugin, env, "peek", asker).stdout)
    assert [(m["from"], m["body"], m.get("hops")) for m in answer["messages"]] == [(target, ANSWER, 1)]
    assert json.loads(launcher(plugin, env, "peek", target).stdout)["count"] == 0


def test_the_extension_links_from_the_clone_and_loads_clean(
    sandbox: rc.Sandbox, gemini_setup: tuple[Path, dict[str, str]]
) -> None:
    plugin, env = gemini_setup
    installed = sandbox.gemini_dir / "extensions" / "session-relay" / ".gemini-extension-install.json"
    record = json.loads(installed.read_text())
    assert record["type"] == "link" and Path(record["source"]).resolve() == (plugin / "gemini").resolve(), record
    listed = rc.offline([str(rc.clients_bin() / "gemini"), "extensions", "list"], env, sandbox.project)
    out = (listed.stdout + listed.stderr).decode(errors="replace")
    assert listed.returncode == 0 and "session-relay" in out, out
    for bad in ("rror", "nvalid", "ailed", "arning"):
        assert bad not in out, out
    doctor = subprocess.run([str(plugin / "launcher"), "doctor"], env=env, capture_output=True, check=False, timeout=60)
    report = doctor.stdout.decode(errors="replace")
    assert "Gemini CLI runs this checkout itself" in report, report
