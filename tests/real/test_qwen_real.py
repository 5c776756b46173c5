"""The real Qwen Code (tests/clients: 0.24.4) hosts relay: installed the user's way, real turns
against a mock Chat Completions API on 127.0.0.1 inside `unshare -n` (tests/realclients.py).

One session is driven through every delivery point and each piece of mail must reach the model
exactly once, in the request the point belongs to: at session start, before a prompt, between tool
calls (urgent mail) and at the end of a turn (a Stop continuation). The model calls the bus's tools by
name (Qwen defers MCP tools behind `tool_search`), discover finds the session with its cwd, and
`relay wake` resumes it headless so that it answers its mail through the bus.
"""

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import realclients as rc
from conftest import relay_command

from relay.agents.qwen import WAKE_OPTIONS

pytestmark = pytest.mark.real_clients

START_MAIL = "mail-at-start: the build is green"
PROMPT_MAIL = "mail-before-prompt: schema v2 is merged"
URGENT_MAIL = "mail-between-tools: stop editing config.py"
TURN_MAIL = "mail-at-stop: lunch at noon"
QUESTION = "question from the asker: is the v2 schema final"
ANSWER = "answer from the woken qwen session: yes, v2 is final"
# Only the session's own requests offer `tool_search`; Qwen's memory-extraction sub-agent offers a few
# file tools, and side queries none.
MAIN_TOOL = "tool_search"


def relay_env(sandbox: rc.Sandbox) -> dict[str, str]:
    """The sandbox's environment, able to run the relay under test from the sources; Qwen's home
    inside the sandbox, its auth set to the OpenAI-compatible mock."""
    qwen_home = sandbox.home / ".qwen"
    qwen_home.mkdir(parents=True, exist_ok=True)
    (qwen_home / "settings.json").write_text(json.dumps({"security": {"auth": {"selectedType": "openai"}}}))
    return {**sandbox.env(), "PYTHONPATH": str(rc.REPO), "QWEN_CODE_SUPPRESS_YOLO_WARNING": "1"}


def relay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*relay_command(), *args], env=env, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, (args, done.stderr.decode(errors="replace"))
    return done


def install_extension(sandbox: rc.Sandbox, env: dict[str, str], tmp_path: Path) -> Path:
    """`qwen extensions install <clone>:session-relay --consent`, as the README says; the copy."""
    clone = rc.plugin_under_test(tmp_path / "clone")
    qwen = str(rc.clients_bin() / "qwen")
    done = rc.offline([qwen, "extensions", "install", f"{clone}:session-relay", "--consent"], env, sandbox.project)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    installed = sandbox.home / ".qwen" / "extensions" / "session-relay"
    record = json.loads((installed / ".qwen-extension-install.json").read_text())
    # Qwen took the clone's own manifest, not a conversion of the Claude plugin beside it.
    assert record["originSource"] == "QwenCode", record
    return installed


def qwen_installed(sandbox: rc.Sandbox, tmp_path: Path) -> tuple[dict[str, str], str]:
    """The extension under test installed in the sandbox's Qwen: the environment and the `qwen` to run."""
    rc.skip_in_compat_pass("qwen")
    rc.skip_unless_runnable("qwen", "node")
    env = relay_env(sandbox)
    install_extension(sandbox, env, tmp_path)
    return env, str(rc.clients_bin() / "qwen")


def request_texts(request: dict[str, Any]) -> str:
    """Every text of a Chat Completions request's messages, joined."""
    return "\n".join(text for message in request.get("messages", []) for text in rc.strings_in(message.get("content")))


def new_texts(requests: list[dict[str, Any]]) -> list[str]:
    """For each request, the text of the messages after the model's last answer (what is new in it)."""
    found = []
    for request in requests:
        messages = request.get("messages", [])
        spoke = [i for i, message in enumerate(messages) if message.get("role") == "assistant"]
        tail = messages[spoke[-1] + 1 :] if spoke else messages
        found.append("\n".join(text for message in tail for text in rc.strings_in(message.get("content"))))
    return found


def fenced(text: str) -> str:
    return "\n".join(rc.fence_insides(text))


def tool_results(request: dict[str, Any]) -> list[str]:
    return [
        text
        for message in request.get("messages", [])
        if message.get("role") == "tool"
        for text in rc.strings_in(message.get("content"))
    ]


def test_qwen_session_gets_mail_at_every_point_once_and_uses_the_bus(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    env, qwen = qwen_installed(sandbox, tmp_path)
    session = str(uuid.uuid4())
    peer = str(uuid.uuid4())
    (sandbox.root / "peer").mkdir()
    relay(env, "register", "peer", "--id", peer, "--dir", str(sandbox.root / "peer"), "--tool", "claude")
    relay(env, "send", session, "--", START_MAIL)  # waits for the session to start
    send = [*relay_command(), "send", session]
    shell = f"{' '.join(send)} --urgent -- '{URGENT_MAIL}' && {' '.join(send)} -- '{TURN_MAIL}'"
    script = [
        # turn 1: a shell tool that mails the session twice; the urgent mail arrives after it, the other at Stop
        {"tool": "run_shell_command", "args": {"command": shell, "description": "send mail"}},
        {"text": "turn one done"},
        {"text": "read the mail from the stop hook"},
        # turn 2: the bus, by name
        {"tool": "mcp__bus__whoami", "args": {}},
        {"tool": "mcp__bus__send", "args": {"to": "peer", "body": "hello from qwen"}},
        {"text": "turn two done"},
    ]
    turns = {
        "kind": "qwen-turns",
        "cwd": str(sandbox.project),
        "session_id": session,
        "script": script,
        "main_tool": MAIN_TOOL,
        "argv": [
            qwen,
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--approval-mode",
            "yolo",
            "--session-id",
            session,
        ],
        "turns": [
            {"prompt": "first prompt"},
            {
                "before": [[*send, "--", PROMPT_MAIL], [*relay_command(), "discover", "--tool", "qwen", "--json"]],
                "prompt": "second prompt",
            },
        ],
    }
    [run] = rc.scenario({"steps": [turns]}, env, sandbox.project)["steps"]
    assert all(turn["result"] for turn in run["turns"]), (run["stderr"][-3000:], run["stdout"][-2000:])
    main = [each["body"] for each in run["requests"] if rc.is_main_request(each["body"], MAIN_TOOL)]
    news = new_texts(main)
    # Each piece of mail is fenced in exactly one request: the one its delivery point belongs to.
    for mail in (START_MAIL, PROMPT_MAIL, URGENT_MAIL, TURN_MAIL):
        carrying = [i for i, text in enumerate(news) if mail in fenced(text)]
        assert len(carrying) == 1, (mail, carrying, news)
    where = {
        mail: next(i for i, text in enumerate(news) if mail in fenced(text))
        for mail in (START_MAIL, PROMPT_MAIL, URGENT_MAIL, TURN_MAIL)
    }
    assert "first prompt" in news[where[START_MAIL]]  # session start: in the turn's first request
    assert "second prompt" in news[where[PROMPT_MAIL]]  # before the prompt, with it
    assert where[URGENT_MAIL] == 1 and tool_results(main[1])  # right after the tool ran, in the same turn
    assert where[TURN_MAIL] == 2, news[1:3]  # the Stop continuation of turn 1
    # The bus: whoami names this qwen session; send reached the peer from it.
    whoami = json.loads(tool_results(main[4])[-1])
    assert (whoami["id"], whoami["tool"], whoami["dir"]) == (session, "qwen", str(sandbox.project))
    inbox = json.loads(relay(env, "inbox", peer).stdout)
    assert [(m["from"], m["body"]) for m in inbox["messages"]] == [(session, "hello from qwen")]
    # Registered by the real hook as a qwen session; discover finds it with its cwd.
    assert sandbox.registry()["agents"][session]["tool"] == "qwen"
    rows = json.loads(relay(env, "discover", "--tool", "qwen", "--json").stdout)
    assert [(row["id"], row["cwd"], row["tool"]) for row in rows] == [(session, str(sandbox.project), "qwen")]
    # live while its Qwen process ran (between the two prompts), not after it exited
    [between] = json.loads(run["turns"][1]["before"][1]["stdout"])
    assert (between["id"], between["live"]) == (session, True)
    assert rows[0]["live"] is False
    main_at = [each["at"] for each in run["requests"] if rc.is_main_request(each["body"], MAIN_TOOL)]
    print(
        "latency tool (tool call answered -> next request, incl. the tool's two sends, s):",
        round(main_at[1] - main_at[0], 2),
    )
    print(
        "latency prompt (written -> request, s):",
        round(run["requests"][0]["at"] - run["turns"][0]["written"], 2),
        round(
            next(r["at"] for r in run["requests"][run["turns"][1]["first_request"] :]) - run["turns"][1]["written"], 2
        ),
    )


def test_relay_wake_resumes_a_qwen_session_headless_and_it_answers(sandbox: rc.Sandbox, tmp_path: Path) -> None:
    env, qwen = qwen_installed(sandbox, tmp_path)
    target = str(uuid.uuid4())
    start = {"kind": "qwen", "cwd": str(sandbox.project), "argv": [qwen, "--session-id", target, "start"]}
    [started] = rc.scenario({"steps": [start]}, env, sandbox.project)["steps"]
    assert started["rc"] == 0, started["stderr"][-3000:]
    assert sandbox.registry()["agents"][target]["tool"] == "qwen"

    asker = str(uuid.uuid4())
    (sandbox.root / "asker").mkdir()
    relay(env, "register", "asker", "--id", asker, "--dir", str(sandbox.root / "asker"), "--tool", "claude")
    relay(env, "send", target, "--from", "asker", "--", QUESTION)
    planned = json.loads(relay(env, "wake", target, "--dry").stdout)
    nudge = planned["args"][-1]
    assert QUESTION not in nudge
    assert planned["args"] == ["--resume", target, *WAKE_OPTIONS, "--prompt", nudge]
    assert planned["cwd"] == str(sandbox.project)

    script = [{"tool": "mcp__bus__send", "args": {"to": "asker", "body": ANSWER}}, {"text": "answered"}]
    wake = {
        "kind": "qwen",
        "cwd": str(sandbox.root),
        "argv": [*relay_command(), "wake", target],
        "script": script,
        "main_tool": MAIN_TOOL,
    }
    [woken] = rc.scenario({"steps": [wake]}, env, sandbox.project)["steps"]
    assert woken["rc"] == 0, (woken["stdout"][-2000:], woken["stderr"][-3000:])
    main = [each for each in woken["requests"] if rc.is_main_request(each["body"], MAIN_TOOL)]
    first = main[0]["body"]
    assert QUESTION in fenced(request_texts(first))  # the mail, fenced, in the resumed session's first request
    assert nudge in request_texts(first)
    assert "start" in request_texts(first)  # it is the same session, with its history
    inbox = json.loads(relay(env, "inbox", asker).stdout)
    assert [(m["from"], m["body"]) for m in inbox["messages"]] == [(target, ANSWER)]
    print("latency wake (relay wake -> first request, s):", round(main[0]["at"] - woken["started"], 2))
