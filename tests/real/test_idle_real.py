"""Mail reaches an open, idle, real Claude Code session with nobody typing (docs/delivery.md).

The plugin is installed the user's way; Claude runs with stream-json input kept open against a
mock Messages API inside `unshare -n` (tests/idle_driver.py). After its first turn nobody types;
then another party sends it mail. The relay's asyncRewake watcher must hand the mail to Claude,
which must put it, fenced, in its very next model request, exactly once; and when the input
closes Claude must still end promptly (the watcher must not hold it).
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


def test_idle_claude_session_gets_mail_with_nobody_typing(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    rc.skip_unless_runnable("claude")
    env = {**sandbox.env(), "PYTHONPATH": str(rc.REPO)}
    claude = str(rc.clients_bin() / "claude")
    plugin = rc.plugin_under_test(tmp_path / "clone")
    for args in (["plugin", "marketplace", "add", str(plugin)], ["plugin", "install", "session-relay@session-relay"]):
        done = rc.offline([claude, *args], env, sandbox.project)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

    sid = str(uuid.uuid4())
    spec = {
        "claude": claude,
        "cwd": str(sandbox.project),
        "session_id": sid,
        "store": str(sandbox.relay_home),
        "relay": relay_command(),
        "body": BODY,
    }
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(Path(__file__).resolve().parents[1] / "idle_driver.py")],
        input=json.dumps(spec).encode(),
        env=env,
        cwd=str(sandbox.project),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    report = json.loads(done.stdout)
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
