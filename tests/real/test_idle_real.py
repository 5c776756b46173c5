"""Mail reaches an open, idle, real Claude Code session with nobody typing (docs/delivery.md).

The plugin is installed the user's way; Claude runs with stream-json input kept open against a
mock Messages API inside `unshare -n` (tests/idle_driver.py). After its first turn nobody types;
then another party sends it mail. relay rings the session's own messaging socket (Claude Code
2.1.224+) with its fixed nudge, and the prompt hook hands Claude the mail; where that socket is
missing or refuses, the asyncRewake watcher does. Either way Claude must put the mail, fenced, in
its very next model request, exactly once; and when the input closes Claude must still end
promptly (the watcher must not hold it).
"""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import realclients as rc
from conftest import relay_command

pytestmark = pytest.mark.real_clients

BODY = "idle-mail-7f3a: the staging deploy finished"


def request_texts(request: dict) -> list[str]:
    """Every text of every message of one Messages API request (strings and text blocks)."""
    texts = []
    for message in request["body"].get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "text":
                texts.append(block["text"])
            inner = block.get("content")
            if isinstance(inner, str):
                texts.append(inner)
    return texts


def model_calls(requests: list[dict]) -> list[dict]:
    return [r for r in requests if r["path"].startswith("/v1/messages") and "count_tokens" not in r["path"]]


# Claude Code's words around a message that came through its messaging socket, and around the
# stderr of an asyncRewake hook: which bell woke the session.
SOCKET_WRAPPER = "Another Claude session sent a message"
REWAKE_WRAPPER = "<task-notification>"


def run_idle_driver(
    sandbox: rc.Sandbox,
    env: dict[str, str],
    sid: str,
    socket: str,
    rounds: int = 1,
    ask: bool = False,
    busy: bool = False,
) -> dict:
    """Run tests/idle_driver.py in a loopback-only namespace; its report."""
    spec = {
        "claude": str(rc.clients_bin() / "claude"),
        "cwd": str(sandbox.project),
        "session_id": sid,
        "store": str(sandbox.relay_home),
        "relay": relay_command(),
        "body": BODY,
        "socket": socket,
        "rounds": rounds,
        "ask": ask,
        "busy": busy,
    }
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(Path(__file__).resolve().parents[1] / "idle_driver.py")],
        input=json.dumps(spec).encode(),
        env=env,
        cwd=str(sandbox.project),
        capture_output=True,
        timeout=300 + 30 * rounds,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    return json.loads(done.stdout)


def install_claude_plugin(sandbox: rc.Sandbox, env: dict[str, str], tmp_path: Path) -> None:
    claude = str(rc.clients_bin() / "claude")
    plugin = rc.plugin_under_test(tmp_path / "clone")
    for args in (["plugin", "marketplace", "add", str(plugin)], ["plugin", "install", "session-relay@session-relay"]):
        done = rc.offline([claude, *args], env, sandbox.project)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@pytest.mark.parametrize("socket", ["keep", "missing", "refuse"])
def test_idle_claude_session_gets_mail_with_nobody_typing(sandbox: rc.Sandbox, tmp_path: Path, socket: str) -> None:
    if socket == "keep":  # the older Claude has no socket: the other two cases show its watcher
        rc.skip_in_compat_pass("Claude's messaging socket (2.1.224 and later)")
    rc.skip_unless_runnable("claude")
    env = {**sandbox.env(), "PYTHONPATH": str(rc.REPO)}
    install_claude_plugin(sandbox, env, tmp_path)
    sid = str(uuid.uuid4())
    report = run_idle_driver(sandbox, env, sid, socket)
    assert report["first_turn"], report["stderr"]
    assert report["watcher_armed"], "the Stop hook did not arm the watcher"
    assert report["send_rc"] == 0
    before = model_calls(report["before_mail"])
    assert before and not any(BODY in t for r in before for t in request_texts(r))

    # With nobody typing, Claude took a new turn for the mail, in its very next model request.
    assert report["woke"], f"no turn after the mail ({report['wake_seconds']:.1f} s): {report['stderr']}"
    after = model_calls(report["after_mail"])
    assert after, "Claude made no model request after the mail"
    first = after[0]
    carrying = [t for t in request_texts(first) if BODY in t]
    assert len(carrying) == 1, carrying  # exactly once in that request
    assert any(BODY in inside for inside in rc.fence_insides(carrying[0])) and "UNTRUSTED" in carrying[0]
    # ... woken by the bell this case expects: the socket when it is there, else the watcher
    woken_by = [t for t in request_texts(first) if SOCKET_WRAPPER in t or REWAKE_WRAPPER in t]
    expected = SOCKET_WRAPPER if socket == "keep" else REWAKE_WRAPPER
    assert woken_by and all(expected in t for t in woken_by), woken_by
    if socket == "keep":  # the socket carried relay's fixed nudge, never the mail
        assert all(BODY not in t and "You have session-relay mail." in t for t in woken_by), woken_by
    # ... and never delivered a second time: later requests hold it only as that same history item
    for request in after[1:]:
        assert sum(BODY in t for t in request_texts(request)) == 1
    assert (
        not (sandbox.relay_home / "mailbox" / f"{sid}.jsonl").exists()
        or not (sandbox.relay_home / "mailbox" / f"{sid}.jsonl").read_text()
    )

    # The rewake counted as a turn relay started (no UserPromptSubmit of the user's reset it).
    assert report["auto_wakes"] == 1

    # Input closed: Claude ends promptly, and the watcher is gone.
    assert report["rc"] == 0, report["stderr"]
    assert report["exit_seconds"] < 15, f"Claude took {report['exit_seconds']:.1f} s to end after its input closed"
    assert report["watcher_left"]


def test_a_question_rung_by_socket_says_to_answer_with_relays_send(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    """A Claude model sees two ways to message; the question's `To answer:` line, in the real
    2.1.332 request, names relay's `send` and says Claude's own SendMessage is not the way."""
    from relay.agents.claude import ANSWER_NOTE

    rc.skip_in_compat_pass("Claude's messaging socket (2.1.224 and later)")
    rc.skip_unless_runnable("claude")
    env = {**sandbox.env(), "PYTHONPATH": str(rc.REPO)}
    install_claude_plugin(sandbox, env, tmp_path)
    report = run_idle_driver(sandbox, env, str(uuid.uuid4()), "keep", ask=True)
    assert report["woke"] and report["bell"] == "socket", report["stderr"]
    [first, *_] = model_calls(report["after_mail"])
    [carrying] = [t for t in request_texts(first) if BODY in t]
    [inside] = [inside for inside in rc.fence_insides(carrying) if BODY in inside]
    answer = inside[inside.index("To answer:") :].splitlines()[0]
    assert "the session-relay `send` tool with to " in answer and "replyTo" in answer, answer
    assert f"({ANSWER_NOTE})" in answer, answer
    assert "SendMessage" in ANSWER_NOTE


def test_a_busy_session_is_not_rung_and_gets_the_mail_from_its_turn(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    """Mail sent while a turn runs (Claude's record says `busy`): no ring, the turn's hooks deliver it."""
    rc.skip_in_compat_pass("Claude's messaging socket (2.1.224 and later)")
    rc.skip_unless_runnable("claude")
    env = {**sandbox.env(), "PYTHONPATH": str(rc.REPO)}
    install_claude_plugin(sandbox, env, tmp_path)
    sid = str(uuid.uuid4())
    report = run_idle_driver(sandbox, env, sid, "keep", busy=True)
    assert report["status_at_send"] == "busy" and report["send_rc"] == 0, report["stderr"]
    assert report["woke"], report["stderr"]
    assert not report["rung"]
    texts = [t for request in model_calls(report["after_mail"]) for t in request_texts(request)]
    assert not any(SOCKET_WRAPPER in t for t in texts)
    carrying = [t for t in texts if BODY in t]
    assert carrying and any(BODY in inside for inside in rc.fence_insides(carrying[0]))
