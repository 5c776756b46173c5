"""relay.agents.gemini: Gemini CLI's hook events through `relay hook gemini`, its transcripts
(discover), its running sessions (live), its wake command and its doctor checks.

Shapes come from Gemini CLI 0.61 (docs/agents/gemini.md); the real CLI runs in
tests/real/test_gemini_real.py.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import new_id

from relay import agents
from relay.agents import gemini

# The black-box tests run on the file store and on Redis (conftest's `world`).
black_box = pytest.mark.usefixtures("world")


def gemini_event(name: str, sid: str, cwd: Path, **fields: object) -> bytes:
    """A Gemini CLI hook event as 0.61 writes it on stdin."""
    payload = {
        "session_id": sid,
        "transcript_path": f"/home/u/.gemini/tmp/p/chats/session-2026-12-06T10-00-{sid[:8]}.jsonl",
        "cwd": str(cwd),
        "hook_event_name": name,
        "timestamp": "2026-12-06T10:00:00.000Z",
        **fields,
    }
    return json.dumps(payload).encode()


def hook(run_relay, name: str, sid: str, cwd: Path, **fields: object):
    done = run_relay("hook", "gemini", input=gemini_event(name, sid, cwd, **fields))
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def send(run_relay, sid: str, body: str, urgent: bool = False) -> None:
    done = run_relay("send", *(["--urgent"] if urgent else []), sid, "--", body)
    assert done.returncode == 0, done.stderr


@black_box
def test_each_gemini_event_delivers_in_the_shape_gemini_reads(run_relay, store_home, tmp_path) -> None:
    sid = new_id()
    send(run_relay, sid, "at start")
    start = hook(run_relay, "SessionStart", sid, tmp_path, source="startup")
    assert start["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert "): at start" in start["hookSpecificOutput"]["additionalContext"]
    entry = json.loads(run_relay("list", "--json").stdout)
    assert [(e["id"], e["tool"], e["dir"]) for e in entry] == [(sid, "gemini", str(tmp_path))]

    send(run_relay, sid, "before the prompt")
    prompt = hook(run_relay, "BeforeAgent", sid, tmp_path, prompt="go on")
    assert prompt["hookSpecificOutput"]["hookEventName"] == "BeforeAgent"
    assert "): before the prompt" in prompt["hookSpecificOutput"]["additionalContext"]

    send(run_relay, sid, "ordinary")
    send(run_relay, sid, "urgent", urgent=True)
    tool = hook(run_relay, "AfterTool", sid, tmp_path, tool_name="mcp_bus_whoami", tool_input={})
    assert tool["hookSpecificOutput"]["hookEventName"] == "AfterTool"
    context = tool["hookSpecificOutput"]["additionalContext"]
    assert "): urgent" in context and "): ordinary" not in context  # between tools: urgent only

    assert hook(run_relay, "AfterAgent", sid, tmp_path, stop_hook_active=True) is None  # extended once at most
    stop = hook(run_relay, "AfterAgent", sid, tmp_path, stop_hook_active=False)
    assert stop["decision"] == "block" and "): ordinary" in stop["reason"]

    assert hook(run_relay, "SessionEnd", sid, tmp_path, reason="exit") is None
    [ended] = json.loads(run_relay("list", "--json").stdout)
    assert ended.get("endedAt")


@black_box
@pytest.mark.parametrize("name", ["UserPromptSubmit", "PostToolUse", "Stop", "BeforeTool", "Notification"])
def test_names_gemini_does_not_send_for_these_moments_are_ignored(run_relay, store_home, tmp_path, name) -> None:
    sid = new_id()
    send(run_relay, sid, "waiting", urgent=True)
    assert hook(run_relay, name, sid, tmp_path) is None
    assert json.loads(run_relay("peek", sid).stdout)["count"] == 1


# ---------------------------------------------------------------- transcripts


def transcript(root: Path, project: str, cwd: str | None, sid: str, name_id: str | None = None) -> Path:
    """A Gemini transcript as 0.61 writes it: tmp/<project>/chats/session-<time>-<id8>.jsonl."""
    folder = root / project
    (folder / "chats").mkdir(parents=True, exist_ok=True)
    if cwd is not None:
        (folder / ".project_root").write_text(cwd)
    path = folder / "chats" / f"session-2026-12-06T10-00-{(name_id or sid)[:8]}.jsonl"
    first = {"sessionId": sid, "projectHash": "ab" * 32, "startTime": "2026-12-06T10:00:00.000Z", "kind": "main"}
    path.write_text(json.dumps(first) + "\n" + json.dumps({"type": "user", "content": "hi"}) + "\n")
    return path


@pytest.fixture
def gemini_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "gemini-home"
    monkeypatch.setenv("GEMINI_CLI_HOME", str(home))
    monkeypatch.delenv("RELAY_GEMINI_TMP", raising=False)
    return home / ".gemini" / "tmp"


def test_sessions_are_read_with_their_project_dir(gemini_tmp: Path, monkeypatch) -> None:
    assert gemini.tmp_root() == gemini_tmp
    one, two, planted = new_id(), new_id(), new_id()
    transcript(gemini_tmp, "api", "/src/api", one)
    transcript(gemini_tmp, "web", None, two)  # no .project_root: cwd unknown
    transcript(gemini_tmp, "api", "/src/api", planted, name_id=new_id())  # the name and the content disagree
    (gemini_tmp / "api" / "chats" / "notes.jsonl").write_text("{}\n")
    found = {(sid, cwd) for sid, cwd, _ in gemini.recent_sessions(0.0)}
    assert found == {(one, "/src/api"), (two, None), (None, "/src/api")}
    assert {sid for sid, _ in gemini.transcript_times()} == {one, two}
    assert list(gemini.recent_sessions(time.time() + 60)) == []
    monkeypatch.setenv("RELAY_GEMINI_TMP", str(gemini_tmp / "api"))
    assert gemini.tmp_root() == gemini_tmp / "api"


@black_box
def test_discover_lists_gemini_sessions(run_relay, store_home, tmp_path) -> None:
    root = tmp_path / "gtmp"
    sid = new_id()
    transcript(root, "proj", str(tmp_path), sid)
    done = run_relay("discover", "--json", "--tool", "gemini", extra_env={"RELAY_GEMINI_TMP": str(root)})
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert (row["tool"], row["id"], row["cwd"], row["live"]) == ("gemini", sid, str(tmp_path), False)


# ---------------------------------------------------------------- live


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["node", "/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js"], True),
        (["/usr/bin/node", "--max-old-space-size=8192", "/x/bundle/gemini.js", "--resume", "latest"], True),
        (["node", "/home/u/.npm/bin/gemini", "-p", "hi"], True),
        (["/opt/gemini"], True),
        (["/plugin/launcher", "hook", "gemini"], False),
        (["node", "/x/qwen.js", "gemini"], False),
        (["python3", "gemini.js"], False),
        ([], False),
    ],
)
def test_which_command_lines_are_gemini(argv: list[str], expected: bool) -> None:
    assert gemini.is_gemini_command(argv) is expected


def test_the_session_a_command_line_names() -> None:
    sid = new_id()
    assert gemini.named_session(["gemini", "--resume", sid.upper()]) == sid
    assert gemini.named_session(["gemini", f"--session-id={sid}"]) == sid
    assert gemini.named_session(["gemini", "-r", sid, "-p", "x"]) == sid
    assert gemini.named_session(["gemini", "--resume", "latest"]) is None
    assert gemini.named_session(["gemini", "--resume"]) is None
    assert gemini.named_session(["gemini", "-p", f"--resume {sid}"]) is None


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")
def test_live_sessions_are_those_a_running_gemini_names_or_works_on(gemini_tmp: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    named, newest, older, elsewhere = new_id(), new_id(), new_id(), new_id()
    transcript(gemini_tmp, "project", str(project), older)
    time.sleep(0.05)
    transcript(gemini_tmp, "project", str(project), newest)
    transcript(gemini_tmp, "other", str(tmp_path / "other"), elsewhere)
    # A program named `gemini` (a shell that sleeps), once naming a session, once not.
    program = tmp_path / "bin" / "gemini"
    program.parent.mkdir()
    shutil.copy(shutil.which("sh") or "/bin/sh", program)
    started = []
    try:
        assert gemini.live_sessions() & {named, newest, older, elsewhere} == set()
        script = "sleep 60; :"
        started.append(subprocess.Popen([str(program), "-c", script, "gemini", "--resume", named], cwd=tmp_path))
        started.append(subprocess.Popen([str(program), "-c", script, "gemini", "-p", "hi"], cwd=project))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and newest not in gemini.live_sessions():
            time.sleep(0.05)
        live = gemini.live_sessions()
        assert {named, newest} <= live and not live & {older, elsewhere}, live
        assert agents.is_live(named, "gemini") and not agents.is_live(older, "gemini")
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
    assert gemini.live_sessions() & {named, newest} == set()


# ---------------------------------------------------------------- wake


def test_wake_resumes_headless_with_the_nudge_as_one_prompt_word(monkeypatch, tmp_path: Path) -> None:
    sid = new_id()
    root = tmp_path / "clone"
    (root / "gemini").mkdir(parents=True)
    (root / "gemini" / "bus-policy.toml").write_text("")
    monkeypatch.setenv("RELAY_LAUNCHER", str(root / "launcher"))
    argv = gemini.wake_argv(sid, "--flag-like nudge")
    policy = str(root / "gemini" / "bus-policy.toml")
    assert argv == ["gemini", "--resume", sid, "--policy", policy, "-o", "json", "--prompt=--flag-like nudge"]
    (root / "gemini" / "bus-policy.toml").unlink()
    assert "--policy" not in gemini.wake_argv(sid, "x")


def test_the_shipped_policy_allows_the_bus_and_nothing_else() -> None:
    import tomllib

    repo = Path(__file__).resolve().parent.parent.parent
    rules = tomllib.loads((repo / "gemini" / "bus-policy.toml").read_text())["rule"]
    assert [(r["mcpName"], r["toolName"], r["decision"]) for r in rules] == [("bus", "*", "allow")]
    manifest = json.loads((repo / "gemini" / "gemini-extension.json").read_text())
    assert list(manifest["mcpServers"]) == ["bus"]
    hooks = json.loads((repo / "gemini" / "hooks" / "hooks.json").read_text())["hooks"]
    assert set(hooks) == set(gemini.EVENTS)
    for groups in hooks.values():
        [[handler]] = [group["hooks"] for group in groups]
        assert handler["command"].endswith('launcher" hook gemini') and handler["timeout"] >= 1000  # ms


# ---------------------------------------------------------------- doctor


def install(gemini_home: Path, record: dict) -> None:
    where = gemini_home / ".gemini" / "extensions" / "session-relay"
    where.mkdir(parents=True, exist_ok=True)
    (where / ".gemini-extension-install.json").write_text(json.dumps(record))


def test_doctor_checks_that_gemini_links_this_checkout(gemini_tmp: Path, tmp_path: Path) -> None:
    gemini_home = gemini_tmp.parent.parent
    root = tmp_path / "clone"
    (root / "gemini").mkdir(parents=True)
    (root / "gemini" / "gemini-extension.json").write_text("{}")
    (root / "gemini" / "bus-policy.toml").write_text("")
    [(level, what, _)] = gemini.runs_checkout(root)
    assert level == "PASS" and "not installed" in what
    assert gemini.bus_allowed(root) == []

    install(gemini_home, {"source": str(root / "gemini"), "type": "link"})
    [(level, what, fix)] = gemini.runs_checkout(root)
    assert (level, fix) == ("PASS", "") and "this checkout itself" in what
    [(level, what, _)] = gemini.bus_allowed(root)
    assert level == "PASS" and "--policy" in what

    install(gemini_home, {"source": str(tmp_path / "old-clone" / "gemini"), "type": "link"})
    [(level, what, fix)] = gemini.runs_checkout(root)
    assert level == "WARN" and "old-clone" in what
    assert fix.endswith(f"gemini extensions link {root / 'gemini'} --consent")

    install(gemini_home, {"source": str(root / "gemini"), "type": "local"})
    [(level, what, fix)] = gemini.runs_checkout(root)
    assert level == "WARN" and "copy" in what and "extensions link" in fix

    policies = gemini_home / ".gemini" / "policies"
    policies.mkdir(parents=True)
    (policies / "relay.toml").write_text('[[rule]]\nmcpName = "bus"\ntoolName = "*"\ndecision = "allow"\n')
    [(level, what, _)] = gemini.bus_allowed(None)
    assert level == "PASS" and "every session" in what
