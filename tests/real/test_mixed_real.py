"""One conversation across three vendors' CLIs sharing one relay store, for real and offline.

Codex asks a Gemini session a question, `relay wake` resumes Gemini to answer it through the bus,
Codex reads the answer when it resumes, and a Claude Code session in a third dir watches the thread.
Each CLI is the pinned real client (installed from a copy of the clone the user's way) running real
turns against tests/realclients.py's mock of its vendor's API, inside `unshare -n`. The test reads
what each mock *received*: the question fenced with its id in Gemini's request (the mock answers
with the id it read there), the reply fenced exactly once in Codex's, and in Claude's the journal of
the thread as `relay log --thread` prints it through Bash. A third session may not look at someone
else's message through the bus (docs/delivery.md): its `status` call on the question is refused.
"""

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import realclients as rc
from test_conversation_real import only_mail_line, tool_payload
from test_gemini_real import (
    BUS,
    gemini_run,
    gemini_setup,  # noqa: F401 (the fixture: the clone, linked into Gemini)
    new_texts,
    shown,
)
from test_gemini_real import launcher as relay_in
from test_plugin_codex import exec_step
from test_wake_real import fenced_mail, input_texts, install_plugin, sent_by_the_model

pytestmark = pytest.mark.real_clients

QUESTION = "question from codex: does the v2 schema keep the legacy ids"
ANSWER = "answer from gemini: yes, v2 keeps them until the next major"


def project(sandbox: rc.Sandbox, name: str) -> Path:
    """Another project dir of the sandbox, a git repo (Codex resumes only inside one)."""
    where = sandbox.root / name
    where.mkdir()
    subprocess.run(["git", "init", "-q", str(where)], check=True)
    return where


def developer_texts(request: dict[str, Any]) -> list[str]:
    """The texts of a Responses API request's developer messages (where Codex puts hook context)."""
    items = [item for item in request.get("input", []) if isinstance(item, dict) and item.get("type") == "message"]
    return [text for item in items if item.get("role") == "developer" for text in input_texts(item)]


def lines_with(fences: list[str], body: str) -> list[str]:
    """The `- from` lines inside `fences` that deliver `body`."""
    return [line for inside in fences for line in inside.splitlines() if line.startswith("- from ") and body in line]


def test_codex_asks_gemini_answers_and_claude_watches_the_thread(
    sandbox: rc.Sandbox,
    gemini_setup: tuple[Path, dict[str, str]],  # noqa: F811
) -> None:
    rc.skip_unless_runnable("gemini", "codex", "claude")
    plugin, env = gemini_setup  # the clone's copy, Gemini's extension linked from it; one store for all
    install_plugin(sandbox, env, plugin, "codex", "add")

    # 1. A Gemini session starts in its project; its hook registers it under a name.
    gemini_id = str(uuid.uuid4())
    start = gemini_run(sandbox, plugin, ["--session-id", gemini_id, "--prompt=start"])
    [started] = rc.scenario({"steps": [start]}, env, sandbox.project)["steps"]
    assert started["rc"] == 0, started["stderr"][-3000:]
    entry = sandbox.registry()["agents"][gemini_id]
    gemini_name = entry.get("name")
    assert (entry["tool"], entry["dir"]) == ("gemini", str(sandbox.project)) and gemini_name, entry

    # 2. A Codex session elsewhere: its model asks the Gemini session, by name, expecting a reply.
    codex_dir = project(sandbox, "codex-side")
    ask = json.dumps({"to": gemini_name, "body": QUESTION, "expectsReply": True})
    js = f'text("RELAY_SEND " + JSON.stringify(await tools.mcp__bus__send({ask})));'
    [asked] = rc.scenario(
        {"steps": [{**exec_step(sandbox, "ask gemini", js=js), "cwd": str(codex_dir)}]}, env, codex_dir
    )["steps"]
    assert asked["rc"] == 0, asked["stderr"][-3000:]
    [codex_id] = rc.codex_rollouts(sandbox)
    codex_entry = sandbox.registry()["agents"][codex_id]
    assert (codex_entry["tool"], codex_entry["dir"]) == ("codex", str(codex_dir)), codex_entry
    sent = tool_payload(rc.exec_output(asked, "RELAY_SEND"))
    qid = sent["id"]
    # (the headless Gemini run is over, and its SessionEnd was seen: `ended`, to be woken)
    assert (sent["thread"], sent["delivered_to"], sent["recipient"]["state"]) == (qid, gemini_name, "ended"), sent
    [question] = json.loads(relay_in(plugin, env, "peek", gemini_id).stdout)["messages"]
    assert (question["id"], question["from"], question["expectsReply"]) == (qid, codex_id, True), question
    assert not question.get("hops"), f"a question from a session nobody woke carries hops: {question}"

    # 3. The doorbell resumes Gemini headless; its model answers with the id and sender it read in the fence.
    answer = {"to": "{MAIL_FROM}", "body": ANSWER, "replyTo": "{MAIL_ID}"}
    wake = rc.gemini_wake_step(sandbox, plugin, gemini_name, [[BUS + "send", answer]])
    [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
    assert woken["rc"] == 0, woken["stderr"][-3000:]
    first, *later = rc.gemini_turns(woken)
    texts = new_texts(first)
    assert shown(texts, QUESTION) == 1, texts
    line = only_mail_line(fenced_mail([text for text in texts if f"): {QUESTION}" in text]))
    assert f"id {qid}" in line and "expects a reply" in line, line
    assert later, "Gemini never sent the bus's answer back to its model"
    model_parts = [
        part for content in later[0].get("contents", []) if content.get("role") == "model" for part in content["parts"]
    ]
    called = [part["functionCall"] for part in model_parts if "functionCall" in part]
    # The mock's call as Gemini ran it: the sender and id read off the fenced question.
    assert [(call["name"], call["args"]) for call in called] == [
        (BUS + "send", {"to": codex_id, "body": ANSWER, "replyTo": qid})
    ], called
    responses = [text for text in new_texts(later[0]) if '"replyTo"' in text or '"thread"' in text]
    assert responses, new_texts(later[0])
    reply_id = json.loads(relay_in(plugin, env, "status", qid, "--json").stdout)["replyId"]
    assert reply_id and reply_id in responses[0], responses

    [reply] = json.loads(relay_in(plugin, env, "peek", codex_id).stdout)["messages"]
    assert (reply["id"], reply["from"], reply["replyTo"], reply["thread"]) == (reply_id, gemini_id, qid, qid), reply
    assert (reply["body"], reply.get("hops")) == (ANSWER, 1), reply  # one wake deep: the loop guard counts it
    status = json.loads(relay_in(plugin, env, "status", qid, "--json").stdout)
    assert (status["to"], status["state"], status["thread"]) == (gemini_id, "replied", qid), status
    assert status["deliveredAt"] and status["repliedAt"], status

    # 4. Codex resumes: the reply reaches its model, fenced, exactly once.
    resume = {**exec_step(sandbox, "resume", codex_id, "read your mail", js=None), "cwd": str(codex_dir)}
    [resumed] = rc.scenario({"steps": [resume]}, env, codex_dir)["steps"]
    assert resumed["rc"] == 0, resumed["stderr"][-3000:]
    assert list(rc.codex_rollouts(sandbox)) == [codex_id], "the resume started a new Codex session"
    assert resumed["requests"], resumed["stderr"][-3000:]
    for request in (r["body"] for r in resumed["requests"]):  # each request carries the whole thread again
        [reply_line] = lines_with(fenced_mail(developer_texts(request)), ANSWER)
        assert f"id {reply_id}" in reply_line and reply_line.startswith(f"- from {gemini_name} ("), reply_line
        assert json.dumps(request).count(ANSWER) == 1, "the reply reached Codex's model more than once"
    assert json.loads(relay_in(plugin, env, "peek", codex_id).stdout)["count"] == 0
    reply_status = json.loads(relay_in(plugin, env, "status", reply_id, "--json").stdout)
    assert (reply_status["to"], reply_status["state"], reply_status["thread"]) == (codex_id, "delivered", qid)

    # 5. A Claude session in a third dir watches the thread: the journal through Bash; the bus's
    #    `status` is refused, the question being neither its own nor sent to it.
    watcher_dir = project(sandbox, "watcher")
    log = f"{plugin / 'launcher'} log --thread {qid} --json"
    status_tool = rc.CLAUDE_TOOL_PREFIX + "status"
    claude_id = str(uuid.uuid4())
    watch = {
        "kind": "claude",
        "cwd": str(watcher_dir),
        "calls": [[status_tool, {"id": qid}], ["Bash", {"command": log, "description": "show the thread"}]],
        "argv": [
            str(rc.clients_bin() / "claude"),
            "-p",
            "watch the thread",
            "--plugin-dir",
            str(plugin),
            "--session-id",
            claude_id,
            "--allowedTools",
            f"Bash,{status_tool}",
        ],
        "timeout": 120,
    }
    [watched] = rc.scenario({"steps": [watch]}, env, watcher_dir)["steps"]
    assert watched["rc"] == 0, watched["stderr"][-3000:]
    assert sandbox.registry()["agents"][claude_id]["tool"] == "claude"
    requests = rc.model_requests(watched)
    assert len(requests) == 3, f"{len(requests)} model requests; stderr: {watched['stderr'][-3000:]}"
    [(asked_status, refused)] = sent_by_the_model(requests[1])
    [(ran, logged)] = sent_by_the_model(requests[2])
    assert (asked_status["name"], ran["name"]) == (status_tool, "Bash"), (asked_status, ran)
    [log_text] = (
        [block["text"] for block in logged["content"]] if isinstance(logged["content"], list) else [logged["content"]]
    )
    events = [json.loads(row) for row in log_text.splitlines() if row.startswith("{")]
    print("relay log --thread", qid, "--json, as the Claude session's model received it:")
    for event in events:
        print(json.dumps(event))
    human = relay_in(plugin, env, "log", "--thread", qid).stdout.decode()
    print(f"relay log --thread {qid}:\n{human}")

    seen = [(e["event"], e["id"], e["from"], e["to"], e["replyTo"]) for e in events]
    assert ("sent", qid, codex_id, gemini_id, None) in seen, seen
    assert ("delivered", qid, codex_id, gemini_id, None) in seen, seen
    assert ("sent", reply_id, gemini_id, codex_id, qid) in seen, seen
    assert ("replied", qid, gemini_id, codex_id, None) in seen, seen
    assert ("delivered", reply_id, gemini_id, codex_id, qid) in seen, seen
    assert all(e["thread"] == qid for e in events), events
    bodies = {e["id"]: e["body"] for e in events if e["event"] == "sent"}
    assert bodies == {qid: QUESTION, reply_id: ANSWER}, bodies
    print("the bus's answer to the watcher's `status` call:", json.dumps(refused))
    assert refused.get("is_error") is True and f"unknown message id {qid}" in json.dumps(refused), refused
    said = json.dumps(refused)
    assert ANSWER not in said and QUESTION not in said and reply_id not in said and gemini_id not in said, said
