"""A question answered across a real doorbell: ask, wake, reply, and the asker gets it (docs/delivery.md).

Offline, in a loopback-only network namespace (tests/realclients.py), like tests/real/test_wake_real.py: a
real idle session (Claude Code, then Codex) is asked something, the real `relay wake` resumes it
against a scripted mock model, and the mock answers through the bus's `send` with `replyTo`. What
must hold on the real path, not only in unit tests: the woken model sees the question fenced with
its id (and, when asked with `ask`, the note that it expects a reply), its `send` is accepted, and
the original sender's bounded wait ends with that answer — `relay ask` printing it (Claude), the
asker's own bus `wait` returning it (Codex) — while `relay status` records the question as replied
by that very message.
"""

import json
import queue
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import pytest
import realclients as rc
from conftest import relay_command
from test_wake_real import (
    fenced_mail,
    idle_codex_session,
    input_texts,
    install_plugin,
    relay,
    relay_env,
    sent_by_the_model,
    texts_of,
)

pytestmark = pytest.mark.real_clients

QUESTION = "question for the woken session: which port does staging use"
ANSWER = "answer from the woken session: staging listens on 8443"
REPLY_NOTE = "expects a reply"
# A waiting asker must have its answer this soon after the woken session sent it (it polls far faster).
PROMPTLY = 15


def tail(data: bytes | str, size: int = 3000) -> str:
    """The end of a process's output, for a failure message."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    return text[-size:]


def only_mail_line(fences: list[str]) -> str:
    """The one `- from ...` line of the one fence a woken model was shown."""
    assert len(fences) == 1, f"expected the mail fenced once, got {len(fences)} fences: {fences}"
    lines = [line for line in fences[0].splitlines() if line.startswith("- from ")]
    assert len(lines) == 1, fences
    return lines[0]


def check_question_shown(mail_line: str, question_id: str, expects_reply: bool) -> None:
    """The fenced line carries the question and its id, and the note when an answer was asked for (§13)."""
    assert mail_line.endswith(": " + QUESTION), mail_line
    annotations = mail_line[: -len(": " + QUESTION)]
    assert f"id {question_id}" in annotations, f"the question's id is not shown: {mail_line}"
    if expects_reply:
        assert REPLY_NOTE in annotations, f"no `{REPLY_NOTE}` note: {mail_line}"


def tool_payload(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON object inside an MCP tool result (as an MCP client passes it on)."""
    assert result.get("isError") is False, result
    [part] = result["content"]
    return json.loads(part["text"])


def wait_for_pending(env: dict[str, str], who: str, asking: subprocess.Popen, seconds: float = 30) -> dict[str, Any]:
    """The one message pending for `who`, once the asker has queued it (`relay peek`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pending = json.loads(relay(env, "peek", who).stdout)
        if pending["count"]:
            [message] = pending["messages"]
            return message
        if asking.poll() is not None:
            out, err = asking.communicate()
            raise AssertionError(f"`relay ask` ended ({asking.returncode}) before queuing: {tail(out)} {tail(err)}")
        time.sleep(0.2)
    raise AssertionError(f"`relay ask` queued nothing for {who} within {seconds}s")


def test_ask_is_answered_by_a_woken_claude(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    rc.skip_unless_runnable("claude")
    env = relay_env(sandbox)
    claude = str(rc.clients_bin() / "claude")
    install_plugin(sandbox, env, rc.plugin_under_test(tmp_path / "clone"), "claude", "install")

    # A real session, registered by the real SessionStart hook, then idle.
    target = str(uuid.uuid4())
    start = {"kind": "claude", "cwd": str(sandbox.project), "argv": [claude, "-p", "start", "--session-id", target]}
    [started] = rc.scenario({"steps": [start]}, env, sandbox.project)["steps"]
    assert started["rc"] == 0, tail(started["stderr"])
    assert sandbox.registry()["agents"][target]["dir"] == str(sandbox.project)

    # A script asks it something and waits; the question is queued from the id minted for this ask.
    ask = [*relay_command(), "ask", target, "--wait", "150", "--", QUESTION]
    asking = subprocess.Popen(ask, env=env, cwd=str(sandbox.root), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        question = wait_for_pending(env, target, asking)
        assert question["body"] == QUESTION and question["expectsReply"] is True, question
        qid, asker = question["id"], question["from"]
        assert asker not in (target, "cli"), f"the ask has no reply address of its own: {question}"

        # The doorbell; the woken model answers with `send` + `replyTo`, addressed to the question's sender.
        answer = {"to": asker, "body": ANSWER, "replyTo": qid}
        wake = {
            "kind": "claude",
            "cwd": str(sandbox.root),
            "argv": [*relay_command(), "wake", target],
            "calls": [[rc.CLAUDE_TOOL_PREFIX + "send", answer]],
            "timeout": 60,
        }
        [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
        assert woken["rc"] == 0, tail(woken["stderr"])
        requests = rc.model_requests(woken)
        assert len(requests) == 2, f"{len(requests)} model requests; stderr: {tail(woken['stderr'])}"
        first, second = requests

        # The woken model saw the question fenced, with its id, the reply note and how to answer.
        texts = [text for message in rc.since_model_spoke(first) for text in texts_of(message)]
        check_question_shown(only_mail_line(fenced_mail(texts)), qid, expects_reply=True)
        [context] = [text for text in texts if rc.has_fence_open(text)]
        assert "replyTo" in context, f"the delivered mail does not say how to answer: {context}"

        # Claude ran the model's `send` unattended and the bus accepted the reply.
        [(use, result)] = sent_by_the_model(second)
        assert (use["name"], use["input"]) == (rc.CLAUDE_TOOL_PREFIX + "send", answer)
        assert result and not result.get("is_error"), result
        sent = json.loads(result["content"][0]["text"])
        reply_id = sent["id"]
        assert sent["thread"] == qid, f"the reply does not continue the question's thread: {sent}"

        # The asker's bounded wait ends with the answer on stdout, soon after it was sent.
        try:
            out, err = asking.communicate(timeout=PROMPTLY)
        except subprocess.TimeoutExpired as late:
            raise AssertionError(f"`relay ask` still waiting {PROMPTLY}s after the answer was sent") from late
    finally:
        if asking.poll() is None:
            asking.kill()
            asking.communicate()
    assert asking.returncode == 0, f"`relay ask` exit {asking.returncode}: {tail(err)}"
    assert out.decode().strip() == ANSWER, (out, tail(err))

    status = json.loads(relay(env, "status", qid, "--json").stdout)
    assert (status["id"], status["to"], status["state"]) == (qid, target, "replied"), status
    assert status["replyId"] == reply_id, status


class Bus:
    """A real `relay bus` driven with plain JSON-RPC over stdio, one request in flight at a time."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, errlog: IO[bytes]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, cwd=str(cwd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout or []:
            self.lines.put(line)

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> int:
        """Send a request without waiting; its id."""
        self.next_id += 1
        self._write({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def response(self, request_id: int, seconds: float) -> dict[str, Any]:
        """The result of request `request_id` (stdout must carry nothing but JSON-RPC)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.lines.get(timeout=left))
            except queue.Empty:
                break
            if message.get("id") == request_id:
                assert "result" in message, message
                return message["result"]
        raise AssertionError(f"the bus did not answer request {request_id} within {seconds}s")

    def start(self) -> None:
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}
        self.response(self.request("initialize", init), 30)
        self._write({"method": "notifications/initialized"})

    def call(self, tool: str, arguments: dict[str, Any], seconds: float = 30) -> dict[str, Any]:
        return tool_payload(self.response(self.request("tools/call", {"name": tool, "arguments": arguments}), seconds))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_wait_gets_the_answer_of_a_woken_codex(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    rc.skip_unless_runnable("codex")
    env = relay_env(sandbox)
    # A real session, registered by the real hook, then idle.
    target = idle_codex_session(sandbox, env, tmp_path)

    # The asker: a registered session that sends its question as itself, so the answer has an address.
    asker = str(uuid.uuid4())
    home = sandbox.root / "asker"
    home.mkdir()
    relay(env, "register", "asker", "--id", asker, "--dir", str(home), "--tool", "claude")
    sent = json.loads(relay(env, "send", target, "--from", "asker", "--json", "--", QUESTION).stdout)
    qid = sent["id"]
    assert (sent["to"], sent["thread"]) == (target, qid), sent
    assert sent["recipient"]["state"] != "live", f"the finished codex run counts as running: {sent}"

    def bus_log() -> str:
        return (tmp_path / "asker-bus.stderr").read_text(errors="replace")

    # The asker's own bus (identified as Claude Code names its session) waits for the answer while the
    # doorbell rings: the answer must end that pending wait.
    bus_env = {**env, "CLAUDE_CODE_SESSION_ID": asker, "RELAY_NO_ANCESTRY": "1"}
    with open(tmp_path / "asker-bus.stderr", "wb") as errlog:
        bus = Bus([*relay_command(), "bus"], bus_env, home, errlog)
        try:
            bus.start()
            waiting_since = time.monotonic()
            pending = bus.request("tools/call", {"name": "wait", "arguments": {"id": qid, "timeoutSec": 50}})

            reply = json.dumps({"to": asker, "body": ANSWER, "replyTo": qid})
            wake = {
                "kind": "codex",
                "port": rc.MOCK_PORT,
                "js": f'text("RELAY_SEND " + JSON.stringify(await tools.mcp__bus__send({reply})));',
                "cwd": str(sandbox.root),
                "argv": [*relay_command(), "wake", target],
                "timeout": 90,
            }
            [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
            assert woken["rc"] == 0, tail(woken["stderr"])

            woken_at = time.monotonic()
            waited = tool_payload(bus.response(pending, 60))
            if waited["replied"]:
                assert time.monotonic() - woken_at < PROMPTLY, "the pending wait did not end when the answer came"
            else:  # only excusable when the wake outlasted the 50 s wait
                late = time.monotonic() - waiting_since
                assert late > 45, f"a pending wait missed the answer: {waited}; bus stderr: {tail(bus_log())}"
                waited = bus.call("wait", {"id": qid, "timeoutSec": 0})
            asked_status = bus.call("status", {"id": qid})
        finally:
            bus.close()

    # The woken run's first request: the question fenced (the hook's developer message) with its id.
    first = woken["requests"][0]["body"]
    items = [item for item in first["input"] if isinstance(item, dict) and item.get("type") == "message"]
    developer = [text for item in items if item.get("role") == "developer" for text in input_texts(item)]
    # (`relay send` asks for no reply: the id alone lets the model answer with `replyTo`.)
    mail_line = only_mail_line(fenced_mail(developer))
    assert mail_line.startswith("- from asker ("), mail_line
    check_question_shown(mail_line, qid, expects_reply=False)

    # The model's `send` went through the woken session's bus.
    reply_id = tool_payload(rc.exec_output(woken, "RELAY_SEND"))["id"]

    # The asker's wait returned that very message, and the question is marked replied by it.
    assert waited["replied"] is True, f"wait never saw the answer: {waited}; bus stderr: {tail(bus_log())}"
    message = waited["message"]
    assert (message["body"], message["replyTo"], message["from"]) == (ANSWER, qid, target), message
    assert (message["id"], message["thread"]) == (reply_id, qid), message
    assert (asked_status["state"], asked_status["replyId"]) == ("replied", reply_id), asked_status
    status = json.loads(relay(env, "status", qid, "--json").stdout)
    assert (status["state"], status["replyId"]) == ("replied", reply_id), status
    assert json.loads(relay(env, "peek", asker).stdout)["count"] == 0, "wait did not take the reply"
    assert list(rc.codex_rollouts(sandbox)) == [target], "the wake started a new session instead of resuming"
