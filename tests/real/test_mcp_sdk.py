"""The official MCP Python SDK client drives `relay bus` as a subprocess (docs/mcp.md).

Every tool is called with good arguments (results and store effects checked) and with bad ones
(isError naming the field, nothing stored). The program under test comes from `relay_cmd`.
"""

import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types
import pytest
from conftest import file_registry, new_id
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from relay.domain.ids import AGENT_CLIS

SUPPORTED = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
TOOL_ORDER = ["whoami", "register", "roster", "send", "inbox", "discover", "status", "wait"]


@asynccontextmanager
async def connect(relay_cmd: list[str], env: dict[str, str], cwd: Path, **extra: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=relay_cmd[0], args=[*relay_cmd[1:], "bus"], env={**env, **extra}, cwd=str(cwd)
    )
    with open(cwd / f"bus-stderr-{time.monotonic_ns()}.log", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            yield session


def run(test: Callable[[], Awaitable[None]], seconds: float = 60) -> None:
    async def bounded() -> None:
        with anyio.fail_after(seconds):
            await test()

    anyio.run(bounded)


HOOK_NOTE = "session-relay note: this session is not registered because its SessionStart hook did not run"


def single_text(result: Any) -> str:
    """A tool result's one text item; a second one may only be the bus's one-time note about a missing hook."""
    content = list(result.content)
    if len(content) == 2:
        assert content[1].type == "text" and content[1].text.startswith(HOOK_NOTE), content
        content = content[:1]
    assert len(content) == 1 and content[0].type == "text"
    return content[0].text


def payload(result: Any) -> dict[str, Any]:
    """The JSON object in a successful tool result."""
    assert result.is_error is False, result.content
    return json.loads(single_text(result))


def error_text(result: Any) -> str:
    assert result.is_error is True, result.content
    return single_text(result)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def mailbox_files(store_home: Path) -> list[Path]:
    files: list[Path] = []
    for sub in ("mailbox", "inflight"):
        if (store_home / sub).is_dir():
            files += [p for p in (store_home / sub).iterdir() if p.suffix == ".jsonl"]
    return files


# -- lifecycle -------------------------------------------------------------------------------------


def test_initialize_negotiates_and_names_the_server(relay_cmd, env, project):
    async def test() -> None:
        async with connect(relay_cmd, env, project) as session:
            init = await session.initialize()
            assert init.server_info.name == "session-relay-bus"
            assert init.server_info.version
            assert init.protocol_version in SUPPORTED
            sdk_latest = mcp.types.LATEST_PROTOCOL_VERSION
            assert init.protocol_version == (sdk_latest if sdk_latest in SUPPORTED else SUPPORTED[-1])
            assert session.protocol_version == init.protocol_version
            assert init.capabilities.tools is not None
            assert init.instructions and "untrusted" in init.instructions
            await session.send_ping()

    run(test)


def test_list_tools_order_and_schemas(relay_cmd, env, project):
    async def test() -> None:
        async with connect(relay_cmd, env, project) as session:
            await session.initialize()
            listed = await session.list_tools()
            assert [t.name for t in listed.tools] == TOOL_ORDER
            for tool in listed.tools:
                assert tool.description and len(tool.description) > 20
                assert tool.input_schema["type"] == "object"
                assert tool.input_schema["additionalProperties"] is False
            schemas = {t.name: t.input_schema for t in listed.tools}
            assert schemas["register"]["required"] == ["name"]
            assert sorted(schemas["send"]["required"]) == ["body", "to"]
            assert schemas["discover"]["properties"]["tool"]["enum"] == list(AGENT_CLIS)

    run(test)


# -- every tool, good arguments --------------------------------------------------------------------


def test_whoami_register_roster(relay_cmd, env, project, store_home, run_relay):
    me, other1, other2 = new_id(), new_id(), new_id()

    async def test() -> None:
        async with connect(relay_cmd, env, project, CLAUDE_CODE_SESSION_ID=me) as session:
            await session.initialize()
            got = payload(await session.call_tool("whoami", {}))
            assert got["registered"] is False
            assert got["id"] == me
            assert got["dir"] == str(project)
            assert "register" in got["note"]

            got = payload(await session.call_tool("register", {"name": "mike"}))
            assert got["registered"] is True
            assert (got["id"], got["name"], got["dir"], got["tool"]) == (me, "mike", str(project), "claude")
            assert got["lastSeen"].endswith("Z")

            got = payload(await session.call_tool("whoami"))  # arguments omitted altogether
            assert got["registered"] is True
            assert (got["id"], got["name"]) == (me, "mike")

            text = error_text(await session.call_tool("register", {"name": "zulu", "id": other1}))
            assert "not you" in text  # through MCP a session names only itself; a person uses the CLI
            for argv in (["zulu", "--id", other1, "--dir", "/srv/zulu"], ["alpha", "--id", other2]):
                assert run_relay("register", *argv).returncode == 0
            roster = payload(await session.call_tool("roster", {}))["agents"]
            assert [a["name"] for a in roster] == ["alpha", "mike", "zulu"]
            assert {a["id"] for a in roster} == {me, other1, other2}
            zulu = next(a for a in roster if a["name"] == "zulu")
            assert (zulu["dir"], zulu["tool"]) == ("/srv/zulu", "claude")

            # renaming drops the old name
            payload(await session.call_tool("register", {"name": "mike2"}))
            roster = payload(await session.call_tool("roster", {}))["agents"]
            assert [a["name"] for a in roster] == ["alpha", "mike2", "zulu"]

    run(test)
    registry = file_registry(store_home)
    assert registry["names"] == {"alpha": other2, "mike2": me, "zulu": other1}


def test_roster_sorts_unnamed_entries_by_id(relay_cmd, env, project, run_relay, tmp_path):
    """Sessions start named after their dir; one is unnamed when its name was moved to another."""
    ids = sorted(new_id() for _ in range(3))
    for session_id in reversed(ids):
        event = {"session_id": session_id, "cwd": str(tmp_path), "hook_event_name": "SessionStart"}
        assert run_relay("hook", input=json.dumps(event)).returncode == 0
        assert run_relay("register", "holder", "--id", session_id).returncode == 0  # the previous one's goes
    other = new_id()
    assert run_relay("register", "holder", "--id", other).returncode == 0  # and the last one's

    async def test() -> None:
        async with connect(relay_cmd, env, project) as session:
            await session.initialize()
            roster = payload(await session.call_tool("roster", {}))["agents"]
            assert [a["id"] for a in roster] == [*ids, other]  # "holder" sorts after any hex id
            assert [a["name"] for a in roster] == [None, None, None, "holder"]

    run(test)


def test_whoami_without_any_session(relay_cmd, env, project):
    async def test() -> None:
        async with connect(relay_cmd, env, project) as session:
            await session.initialize()
            got = payload(await session.call_tool("whoami", {}))
            assert got["registered"] is False
            assert got["id"] is None
            assert got["dir"] == str(project)
            text = error_text(await session.call_tool("register", {"name": "x"}))
            assert "id" in text and ("hook" in text or "restart" in text)
            text = error_text(await session.call_tool("inbox", {}))
            assert "unknown" in text

    run(test)


def test_marker_written_by_the_hook_identifies_the_session(relay_cmd, env, project, run_relay, tmp_path):
    me = new_id()
    event = {"session_id": me, "cwd": str(project), "source": "startup", "hook_event_name": "SessionStart"}
    assert run_relay("hook", "codex", input=json.dumps(event)).returncode == 0

    async def test() -> None:
        async with connect(relay_cmd, env, tmp_path, RELAY_PROJECT_DIR=str(project)) as session:
            await session.initialize()
            got = payload(await session.call_tool("whoami", {}))
            assert got["registered"] is True
            assert (got["id"], got["dir"], got["tool"]) == (me, str(project), "codex")

    run(test)


def test_send_then_inbox_exactly_once(relay_cmd, env, project, store_home, tmp_path):
    alice, bob = new_id(), new_id()
    bob_dir = tmp_path / "bob"
    bob_dir.mkdir()

    async def test() -> None:
        async with connect(relay_cmd, env, bob_dir, CLAUDE_CODE_SESSION_ID=bob) as session:
            await session.initialize()
            payload(await session.call_tool("register", {"name": "bob"}))
        async with connect(relay_cmd, env, project, CLAUDE_CODE_SESSION_ID=alice) as session:
            await session.initialize()
            payload(await session.call_tool("register", {"name": "alice"}))
            sent = payload(await session.call_tool("send", {"to": "bob", "body": "hi bob — ünïcode ✓\nline 2"}))
            assert sent["ok"] is True
            assert sent["delivered_to"] == "bob"
            assert sent["recipient_dir"] == str(bob_dir)
            assert "wake" in sent["hint"] and "bob" in sent["hint"]
            by_id = payload(await session.call_tool("send", {"to": bob, "body": "second, by id"}))
            assert by_id["delivered_to"] == "bob"

        lines = (store_home / "mailbox" / f"{bob}.jsonl").read_text().splitlines()
        stored = [json.loads(line) for line in lines]
        assert [m["body"] for m in stored] == ["hi bob — ünïcode ✓\nline 2", "second, by id"]
        for message in stored:
            assert (message["from"], message["fromName"], message["to"], message["toName"]) == (
                alice,
                "alice",
                bob,
                "bob",
            )
            assert message["ts"].endswith("Z")
        assert stored[0]["id"] != stored[1]["id"]

        async with connect(relay_cmd, env, bob_dir, CLAUDE_CODE_SESSION_ID=bob) as session:
            await session.initialize()
            first = payload(await session.call_tool("inbox", {}))
            assert first["count"] == 2
            # as stored, less the mark that the first was sent to the name (which models never see)
            assert first["messages"] == [{k: v for k, v in m.items() if k != "byName"} for m in stored]
            second = payload(await session.call_tool("inbox", {}))
            assert second | {"note": ""} == {"count": 0, "messages": [], "remaining": 0, "note": ""}
        async with connect(relay_cmd, env, bob_dir, CLAUDE_CODE_SESSION_ID=bob) as session:
            await session.initialize()
            assert payload(await session.call_tool("inbox", {}))["count"] == 0
        assert mailbox_files(store_home) == []

    run(test)


def test_send_to_an_unregistered_uuid(relay_cmd, env, project, store_home):
    me, target = new_id(), new_id()

    async def test() -> None:
        async with connect(relay_cmd, env, project, CLAUDE_CODE_SESSION_ID=me) as session:
            await session.initialize()
            sent = payload(await session.call_tool("send", {"to": target, "body": "hello stranger"}))
            assert (sent["ok"], sent["delivered_to"], sent["recipient_dir"]) == (True, target, None)
            assert "--dir" in sent["hint"]

    run(test)
    (message,) = [json.loads(x) for x in (store_home / "mailbox" / f"{target}.jsonl").read_text().splitlines()]
    assert (message["from"], message["fromName"], message["to"], message["toName"]) == (me, None, target, None)


def _transcript(path: Path, lines: list[dict[str, Any]], age_seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    when = time.time() - age_seconds
    os.utime(path, (when, when))


def test_discover_excludes_me_and_sorts_my_dir_first(relay_cmd, env, project, tmp_path, run_relay):
    me, same_dir, elsewhere, stale, codex = (new_id() for _ in range(5))
    other_dir = str(tmp_path / "elsewhere")
    claude_root, codex_root = Path(env["RELAY_CLAUDE_PROJECTS"]), Path(env["RELAY_CODEX_SESSIONS"])
    encoded = "-" + str(project).strip("/").replace("/", "-")
    _transcript(claude_root / encoded / f"{me}.jsonl", [{"type": "user", "cwd": str(project)}], 5)
    _transcript(claude_root / encoded / f"{same_dir}.jsonl", [{"type": "x"}, {"cwd": str(project)}], 900)
    _transcript(claude_root / "-elsewhere" / f"{elsewhere}.jsonl", [{"cwd": other_dir}], 10)
    _transcript(claude_root / "-elsewhere" / f"{stale}.jsonl", [{"cwd": other_dir}], 3 * 3600)
    _transcript(
        codex_root / "2026" / "11" / "23" / f"rollout-2026-11-23T00-00-00-{codex}.jsonl",
        [{"type": "session_meta", "payload": {"id": codex, "cwd": other_dir}}],
        60,
    )

    async def test() -> None:
        async with connect(relay_cmd, env, tmp_path, CLAUDE_CODE_SESSION_ID=me, RELAY_PROJECT_DIR=str(project)) as s:
            await s.initialize()
            payload(await s.call_tool("register", {"name": "self"}))
            assert run_relay("register", "neighbour", "--id", same_dir).returncode == 0
            found = payload(await s.call_tool("discover", {}))
            assert found["note"]
            rows = found["sessions"]
            assert found["count"] == len(rows)
            assert [r["id"] for r in rows] == [same_dir, elsewhere, codex]
            first = rows[0]
            assert (first["tool"], first["cwd"], first["name"], first["registered"]) == (
                "claude",
                str(project),
                "neighbour",
                True,
            )
            assert first["live"] is False and first["ageSec"] >= 890
            assert rows[1]["live"] is False and rows[1]["registered"] is False and rows[1]["name"] is None
            assert all("active" not in r for r in rows)  # `live` (from the CLIs' processes) replaced it
            assert (rows[2]["tool"], rows[2]["cwd"]) == ("codex", other_dir)
            assert all(r["lastActivity"].endswith("Z") for r in rows)

            rows = payload(await s.call_tool("discover", {"tool": "codex"}))["sessions"]
            assert [r["id"] for r in rows] == [codex]
            rows = payload(await s.call_tool("discover", {"tool": "claude", "activeWithinMin": 240}))["sessions"]
            assert [r["id"] for r in rows] == [same_dir, elsewhere, stale]
            rows = payload(await s.call_tool("discover", {"activeWithinMin": 0.5}))["sessions"]
            assert [r["id"] for r in rows] == [elsewhere]

    run(test)


# -- bad arguments ---------------------------------------------------------------------------------


BAD_CALLS = [
    # (tool, arguments, text the error must contain)
    ("register", {}, "`name`"),
    ("register", {"name": 5}, "`name`"),
    ("register", {"name": ""}, "`name`"),
    ("register", {"name": "x", "id": "not-a-uuid"}, "`id`"),
    ("register", {"name": "x", "id": "--config=evil"}, "`id`"),
    ("register", {"name": "x", "nick": "y"}, "`nick`"),
    ("register", {"name": "x", "dir": "relative/dir"}, "dir"),
    ("register", {"name": "123e4567-e89b-12d3-a456-426614174000"}, "name"),
    ("register", {"name": "-rf"}, "name"),
    ("whoami", {"verbose": True}, "`verbose`"),
    ("roster", {"all": 1}, "`all`"),
    ("inbox", {"peek": True}, "`peek`"),
    ("send", {"body": "hi"}, "`to`"),
    ("send", {"to": "bob"}, "`body`"),
    ("send", {"to": 7, "body": "hi"}, "`to`"),
    ("send", {"to": "bob", "body": ["hi"]}, "`body`"),
    ("send", {"to": "bob", "body": "hi", "urgent": "yes"}, "`urgent`"),
    ("send", {"to": "bob", "body": "hi", "priority": 1}, "`priority`"),
    ("register", {"name": "x", "deliver": "sometimes"}, "`deliver`"),
    ("send", {"to": "nobody-by-that-name", "body": "hi"}, "roster"),
    ("send", {"to": "", "body": "hi"}, "`to`"),
    ("send", {"to": "bob", "body": ""}, "`body`"),
    ("discover", {"tool": "aider"}, "`tool`"),
    ("discover", {"activeWithinMin": "60"}, "`activeWithinMin`"),
    ("discover", {"activeWithinMin": True}, "`activeWithinMin`"),
    ("discover", {"activeWithinMin": 0}, "`activeWithinMin`"),
    ("discover", {"since": 5}, "`since`"),
]


def test_bad_arguments_are_is_error_results_naming_the_field(relay_cmd, env, project, store_home, run_relay):
    me, bob = new_id(), new_id()

    async def test() -> None:
        async with connect(relay_cmd, env, project, CLAUDE_CODE_SESSION_ID=me) as session:
            await session.initialize()
            assert run_relay("register", "bob", "--id", bob).returncode == 0
            before = file_registry(store_home)
            for tool, arguments, needle in BAD_CALLS:
                text = error_text(await session.call_tool(tool, arguments))
                assert needle in text, (tool, arguments, text)
            # nothing stored by any of them, and the server is still fine
            assert file_registry(store_home) == before
            assert mailbox_files(store_home) == []
            await session.send_ping()
            empty = payload(await session.call_tool("inbox", {}))
            assert empty | {"note": ""} == {"count": 0, "messages": [], "remaining": 0, "note": ""}

    run(test)


def test_unknown_tool_is_a_protocol_error(relay_cmd, env, project):
    async def test() -> None:
        async with connect(relay_cmd, env, project) as session:
            await session.initialize()
            with pytest.raises(MCPError) as caught:
                await session.call_tool("delete_everything", {})
            assert caught.value.code == -32602
            assert "delete_everything" in str(caught.value)
            await session.send_ping()
            assert payload(await session.call_tool("roster", {})) == {"agents": []}

    run(test)


def test_codex_session_named_in_the_call_meta(relay_cmd, env, project, store_home):
    """Codex sends no session id in the environment; it names the session in each call's `_meta`."""
    codex_id, other = new_id(), new_id()

    async def test() -> None:
        async with connect(relay_cmd, env, project) as session:
            await session.initialize()
            assert payload(await session.call_tool("whoami", {}))["id"] is None
            meta = {"sessionId": codex_id, "threadId": codex_id}
            got = payload(await session.call_tool("register", {"name": "codexy"}, meta=meta))
            assert (got["id"], got["name"], got["dir"], got["tool"]) == (codex_id, "codexy", str(project), "codex")
            got = payload(await session.call_tool("whoami", {}, meta=meta))
            assert (got["registered"], got["id"]) == (True, codex_id)
            payload(await session.call_tool("send", {"to": other, "body": "from codex"}, meta=meta))
            got = payload(await session.call_tool("whoami", {}, meta={"sessionId": other}))
            assert (got["registered"], got["id"]) == (False, other)
            taken = payload(await session.call_tool("inbox", {}, meta={"sessionId": other}))
            assert [(m["from"], m["fromName"], m["body"]) for m in taken["messages"]] == [
                (codex_id, "codexy", "from codex")
            ]

    run(test)
    assert mailbox_files(store_home) == []
