"""`relay doctor` and the bus's hook note against the real Codex and Claude Code (both pinned sets), offline.

The plugin is installed the user's way from a clone, and doctor runs from that clone (its launcher,
the sources). What doctor says is checked against what the CLIs really do: Codex holds the plugin's
hooks until they are trusted in its TUI, so the session is not registered and the bus's first tool
result says why; after "Trust all and continue" doctor passes. Codex runs a cached copy: an edited
clone makes doctor warn, and its fix command, run for real, makes the copies agree again. Claude
runs a local-clone marketplace straight from the clone.
"""

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import realclients as rc
from test_plugin_codex import WHOAMI_JS, exec_step

pytestmark = pytest.mark.real_clients

PLUGIN_ID = "session-relay@session-relay"


def lines(result: subprocess.CompletedProcess, prefix: str) -> list[str]:
    return [line for line in result.stdout.decode().splitlines() if line.startswith(prefix)]


def doctor(clone: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(clone / "launcher"), "doctor"], env=env, cwd=str(cwd), capture_output=True, check=False, timeout=60
    )


def runs_from(listed: subprocess.CompletedProcess, clone: Path) -> bool:
    """Does `claude mcp list` show the bus started from `clone`'s launcher? Claude 2.1.197 prints
    `<clone>//launcher bus`, 2.1.332 `<clone>/launcher bus`."""
    return re.search(rf"(?m): {re.escape(str(clone))}/+launcher bus - ", listed.stdout.decode()) is not None


def install(sandbox: rc.Sandbox, env: dict[str, str], clone: Path, client: str, add: str) -> None:
    program = str(rc.clients_bin() / client)
    for args in (["plugin", "marketplace", "add", str(clone)], ["plugin", add, PLUGIN_ID]):
        done = rc.offline([program, *args], env, sandbox.project)
        assert done.returncode == 0, f"{client} {args}: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}"


def run_fix(line: str, env: dict[str, str], cwd: Path) -> None:
    """Run the command a doctor line names, offline (the CLIs must never reach their vendors)."""
    fix = line.rsplit("; fix: ", 1)[1]
    done = rc.offline(["sh", "-c", fix], env, cwd)
    assert done.returncode == 0, (fix, done.stdout[-2000:], done.stderr[-2000:])


def test_codex_untrusted_hook_then_trusted_then_a_stale_cache_refreshed(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    rc.skip_unless_runnable("codex")
    env = sandbox.env()
    clone = rc.plugin_under_test(tmp_path / "clone")
    install(sandbox, env, clone, "codex", "add")

    # Installed, never trusted: doctor fails on it and says how to trust.
    before = doctor(clone, env, sandbox.project)
    assert before.returncode == 1, before.stdout.decode() + before.stderr.decode()
    [untrusted] = lines(before, "FAIL  Codex hooks: none of session-relay's hooks are trusted")
    assert "/hooks" in untrusted and untrusted.endswith("; fix: codex")
    assert lines(before, "PASS  Codex runs a copy identical to this checkout"), before.stdout

    # A real Codex run with the hook held for review: not registered, and the bus says why, once.
    [run] = rc.scenario({"steps": [exec_step(sandbox, "hi", js=WHOAMI_JS, trust_hooks=False)]}, env, sandbox.project)[
        "steps"
    ]
    assert run["rc"] == 0, run["stderr"][-3000:]
    [session] = rc.codex_rollouts(sandbox)
    assert session not in sandbox.registry()["agents"]
    called: dict[str, Any] = rc.exec_output(run, "RELAY_WHOAMI")
    texts = [item.get("text", "") for item in called["content"]]
    assert len(texts) == 2, called
    assert json.loads(texts[0])["id"] == session
    assert texts[1].startswith("session-relay note: this session is not registered because its SessionStart hook")
    assert 'type /hooks and choose "Trust all and continue"' in texts[1]

    # The user trusts the hooks in the TUI, as docs/install.md says: doctor passes.
    config = sandbox.codex_home / "config.toml"
    config.write_text(rc.codex_mock_config() + "\n" + config.read_text())
    tui = {"kind": "codex-tui-trust", "cwd": str(sandbox.project), "config": str(config)}
    [trust] = rc.scenario({"steps": [{**tui, "argv": [str(rc.clients_bin() / "codex")]}]}, env, sandbox.project)[
        "steps"
    ]
    sandbox.stop_leftovers()
    assert trust["trusted"], trust["screen"]
    after = doctor(clone, env, sandbox.project)
    assert lines(after, "PASS  Codex hooks: all 5 of session-relay's hooks are trusted"), after.stdout
    assert after.returncode == 0, after.stdout

    # `git pull` in the clone: Codex still runs its cached copy, doctor warns; its fix refreshes the copy.
    mail = clone / "relay" / "usecases" / "mail.py"
    mail.write_text(mail.read_text() + "\n# pulled\n")
    stale = doctor(clone, env, sandbox.project)
    [warn] = lines(stale, "WARN  Codex runs another copy of session-relay")
    assert "relay/usecases/mail.py" in warn and warn.endswith(f"; fix: codex plugin add {PLUGIN_ID}")
    run_fix(warn, env, sandbox.project)
    fixed = doctor(clone, env, sandbox.project)
    assert lines(fixed, "PASS  Codex runs a copy identical to this checkout"), fixed.stdout
    assert lines(fixed, "PASS  Codex hooks: all 5"), fixed.stdout  # re-adding kept the trust


def test_claude_runs_a_local_clone_itself_and_doctor_says_so(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    rc.skip_unless_runnable("claude")
    env = sandbox.env()
    clone = rc.plugin_under_test(tmp_path / "clone")
    install(sandbox, env, clone, "claude", "install")
    listed = rc.offline([str(rc.clients_bin() / "claude"), "mcp", "list"], env, sandbox.project)
    assert runs_from(listed, clone), listed.stdout
    result = doctor(clone, env, sandbox.project)
    assert lines(result, f"PASS  Claude Code runs this checkout itself ({clone}"), result.stdout

    # From another checkout, doctor warns, and its fix (run for real) points Claude at that checkout.
    other = rc.plugin_under_test(tmp_path / "other")
    (other / "relay" / "usecases" / "mail.py").write_text(
        (other / "relay" / "usecases" / "mail.py").read_text() + "\n# newer\n"
    )
    [warn] = lines(doctor(other, env, sandbox.project), "WARN  Claude Code runs another copy of session-relay")
    assert f"claude plugin marketplace add {shlex.quote(str(other))}" in warn
    run_fix(warn, env, sandbox.project)
    listed = rc.offline([str(rc.clients_bin() / "claude"), "mcp", "list"], env, sandbox.project)
    assert runs_from(listed, other), listed.stdout
    assert lines(doctor(other, env, sandbox.project), f"PASS  Claude Code runs this checkout itself ({other}")


def test_a_deny_rule_doctor_warns_about_really_stops_a_woken_claude_and_its_fix_lets_it(
    sandbox: rc.Sandbox, tmp_path: Path
) -> None:
    """Check (b) against the real Claude: a settings deny rule wins over the wake's --allowedTools
    (2.1.197 does not even offer the denied tool; 2.1.332 still names it among the deferred tools but
    answers a call with an error, never reaching the bus), and doctor's fix command gives it back."""
    import uuid

    from conftest import relay_command

    rc.skip_unless_runnable("claude")
    env = {**sandbox.env(), "PYTHONPATH": str(rc.REPO)}
    claude = str(rc.clients_bin() / "claude")
    clone = rc.plugin_under_test(tmp_path / "clone")
    install(sandbox, env, clone, "claude", "install")
    target = str(uuid.uuid4())
    start = {"kind": "claude", "cwd": str(sandbox.project), "argv": [claude, "-p", "start", "--session-id", target]}
    [started] = rc.scenario({"steps": [start]}, env, sandbox.project)["steps"]
    assert started["rc"] == 0, started["stderr"][-2000:]
    assert target in sandbox.registry()["agents"]

    settings = sandbox.claude_config / "settings.json"
    current = json.loads(settings.read_text())
    current["permissions"] = {"deny": [rc.CLAUDE_TOOL_PREFIX + "inbox"]}
    settings.write_text(json.dumps(current))
    [warn] = lines(doctor(clone, env, sandbox.project), "WARN  woken Claude:")
    assert str(settings) in warn

    def wake() -> dict[str, Any]:
        step = {
            "kind": "claude",
            "cwd": str(sandbox.root),
            "argv": [*relay_command(), "wake", target, "--force"],
            "calls": [[rc.CLAUDE_TOOL_PREFIX + "inbox", {}]],
            "timeout": 50,
        }
        [woken] = rc.scenario({"steps": [step]}, env, sandbox.project)["steps"]
        assert woken["rc"] == 0, woken["stderr"][-3000:]
        return woken

    # Denied, the woken model cannot read its mail that way: the tool is not offered (2.1.197), or a
    # call of it (the mock calls every tool it finds named) comes back as Claude's own error (2.1.332).
    denied = wake()
    offered = rc.offered_tools(denied)
    assert rc.CLAUDE_TOOL_PREFIX + "send" in offered, offered
    results = rc.tool_results(denied)
    if rc.CLAUDE_TOOL_PREFIX + "inbox" in offered:
        [refused] = results
        assert "No such tool available" in refused and '"count"' not in refused, refused
    else:
        assert results == []
    # doctor's fix, run for real, removes the rule: the woken model is offered inbox and may call it.
    run_fix(warn, env, sandbox.project)
    assert json.loads(settings.read_text())["permissions"]["deny"] == []
    assert lines(doctor(clone, env, sandbox.project), "PASS  woken Claude:")
    allowed = wake()
    assert rc.CLAUDE_TOOL_PREFIX + "inbox" in rc.offered_tools(allowed)
    # (The resumed session's history may hold the refused call of the denied wake: count only the
    # result this wake's call got back.)
    answered = rc.since_model_spoke(rc.model_requests(allowed)[-1])
    [result] = rc.tool_results({"requests": [{"body": {"messages": answered}}]})
    assert json.loads(result)["count"] == 0, result  # the hook had already handed it the mail (none)
    outcome = json.loads(allowed["stdout"])
    assert outcome["permission_denials"] == [] and outcome["is_error"] is False, outcome
