"""`launcher bus` driven by the MCP Inspector CLI (pinned in tests/clients/package.json), and the
initialize handshake checked for every protocol version the bus supports.

The Inspector is a second, independent MCP client (TypeScript SDK) besides the Python SDK of
tests/real/test_mcp_sdk.py. It starts the server itself with only the environment it is given (`-e`),
like a real host does. The bus is started through the plugin's launcher, the way both agent CLIs
start it (a checkout without a binary for this platform runs the sources).
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import realclients as rc

pytestmark = pytest.mark.real_clients

LAUNCHER = str(rc.REPO / "launcher")
SUPPORTED = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ME = "5b0c6d2e-8f41-4a7b-9e3c-2d1f0a9b8c7e"
OTHER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """A private store, empty transcript roots, and one registered Claude session (ME)."""
    values = {
        "AGENT_RELAY_HOME": str(tmp_path / "store"),
        "RELAY_CLAUDE_PROJECTS": str(tmp_path / "claude-projects"),
        "RELAY_CODEX_SESSIONS": str(tmp_path / "codex-sessions"),
    }
    (tmp_path / "project").mkdir()
    event = {"session_id": ME, "cwd": str(tmp_path / "project"), "hook_event_name": "SessionStart", "source": "startup"}
    done = subprocess.run(
        [LAUNCHER, "hook"],
        input=json.dumps(event).encode(),
        env=_base_env(tmp_path, values),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout, done.stderr
    return values


def _base_env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {name: os.environ[name] for name in ("PATH", "LANG", "TMPDIR") if name in os.environ}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), **extra}


def inspector(tmp_path: Path, store: dict[str, str], *args: str, me: str | None = ME) -> dict[str, Any]:
    """Run one Inspector CLI request against `launcher bus`; its JSON answer."""
    if not (rc.clients_bin() / "mcp-inspector").exists():
        rc.give_up(f"{rc.clients_bin() / 'mcp-inspector'} is missing: install tests/clients (see tests/realclients.py)")
    server_env = dict(store)
    if me:
        server_env["CLAUDE_CODE_SESSION_ID"] = me
    argv = [str(rc.clients_bin() / "mcp-inspector"), "--cli"]
    for name, value in server_env.items():
        argv += ["-e", f"{name}={value}"]
    argv += [LAUNCHER, "bus", *args]
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "-n", *argv]  # nothing here needs a network; make sure of it
    done = subprocess.run(argv, env=_base_env(tmp_path, {}), capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def call(tmp_path: Path, store: dict[str, str], tool_name: str, **arguments: Any) -> tuple[bool, Any]:
    """(isError, parsed text) of one tools/call through the Inspector."""
    args = ["--method", "tools/call", "--tool-name", tool_name]
    for key, value in arguments.items():
        args += ["--tool-arg", f"{key}={value}"]
    answer = inspector(tmp_path, store, *args)
    content, *note = answer["content"]  # each call starts a bus: an unregistered caller also gets its hook note
    assert [item["text"][:20] for item in note] in ([], ["session-relay note: "]), note
    assert content["type"] == "text"
    try:
        return answer["isError"], json.loads(content["text"])
    except ValueError:
        return answer["isError"], content["text"]


@pytest.mark.parametrize("version", [*SUPPORTED, "1999-01-01"])
def test_initialize_answers_each_protocol_version(tmp_path: Path, store: dict[str, str], version: str) -> None:
    """Raw JSON-RPC over the launcher: the asked version when supported, else the latest."""
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
    ]
    payload = "".join(json.dumps(line) + "\n" for line in lines).encode()
    done = subprocess.run(
        [LAUNCHER, "bus"], input=payload, env=_base_env(tmp_path, store), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["id"] for r in replies] == [1, 2, 3], "a notification was answered, or a reply is missing"
    init = replies[0]["result"]
    assert init["protocolVersion"] == (version if version in SUPPORTED else SUPPORTED[-1])
    assert init["capabilities"] == {"tools": {}}
    assert init["serverInfo"] == {"name": "session-relay-bus", "version": rc.package_version()}
    assert [t["name"] for t in replies[1]["result"]["tools"]] == list(rc.BUS_TOOLS)
    assert replies[2]["result"] == {}


def test_inspector_lists_the_eight_tools(tmp_path: Path, store: dict[str, str]) -> None:
    tools = inspector(tmp_path, store, "--method", "tools/list")["tools"]
    assert [t["name"] for t in tools] == list(rc.BUS_TOOLS)
    for tool in tools:
        assert len(tool["description"]) > 40, tool["name"]
        assert tool["inputSchema"]["type"] == "object"
        assert tool["inputSchema"]["additionalProperties"] is False


def test_inspector_calls_every_tool(tmp_path: Path, store: dict[str, str]) -> None:
    # Another live session, visible to discover through its Claude transcript.
    other_dir = tmp_path / "other-project"
    other_dir.mkdir()
    transcript = Path(store["RELAY_CLAUDE_PROJECTS"]) / "-other-project" / f"{OTHER}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text(json.dumps({"type": "user", "cwd": str(other_dir), "sessionId": OTHER}) + "\n")
    now = time.time()
    os.utime(transcript, (now, now))

    failed, me = call(tmp_path, store, "whoami")
    assert not failed
    assert (me["registered"], me["id"], me["tool"]) == (True, ME, "claude")

    failed, named = call(tmp_path, store, "register", name="alpha")
    assert not failed and named["name"] == "alpha" and named["id"] == ME

    failed, text = call(tmp_path, store, "register", name="beta", id=OTHER, dir=str(other_dir))
    assert failed and "not you" in text  # through MCP a session names only itself
    person = subprocess.run(
        [LAUNCHER, "register", "beta", "--id", OTHER, "--dir", str(other_dir)],
        env=_base_env(tmp_path, store),
        capture_output=True,
        check=False,
    )
    assert person.returncode == 0, person.stderr

    failed, roster = call(tmp_path, store, "roster")
    assert not failed
    assert [(a["name"], a["id"]) for a in roster["agents"]] == [("alpha", ME), ("beta", OTHER)]

    failed, sent = call(tmp_path, store, "send", to="beta", body="hello beta")
    assert not failed
    assert (sent["ok"], sent["delivered_to"], sent["recipient_dir"]) == (True, "beta", str(other_dir))
    assert "wake" in sent["hint"]

    failed, found = call(tmp_path, store, "discover", activeWithinMin=60)
    assert not failed
    assert [(s["id"], s["cwd"], s["name"]) for s in found["sessions"]] == [(OTHER, str(other_dir), "beta")]

    failed, mine = call(tmp_path, store, "inbox")
    assert not failed and mine | {"note": ""} == {"count": 0, "messages": [], "remaining": 0, "note": ""}

    # The mail for beta is taken by beta's own bus, exactly once.
    inbox = ["--method", "tools/call", "--tool-name", "inbox"]
    theirs = json.loads(inspector(tmp_path, store, *inbox, me=OTHER)["content"][0]["text"])
    assert theirs["count"] == 1
    [message] = theirs["messages"]
    assert (message["from"], message["fromName"], message["body"]) == (ME, "alpha", "hello beta")
    again = json.loads(inspector(tmp_path, store, *inbox, me=OTHER)["content"][0]["text"])
    assert again["count"] == 0


def test_inspector_sees_tool_failures_as_results(tmp_path: Path, store: dict[str, str]) -> None:
    failed, text = call(tmp_path, store, "send", to="beta")
    assert failed and "body" in text
    failed, text = call(tmp_path, store, "send", to="nobody-here", body="x")
    assert failed and "roster" in text
    failed, text = call(tmp_path, store, "discover", tool="aider")
    assert failed and "tool" in text
