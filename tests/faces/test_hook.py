"""The SessionStart hook (docs/delivery.md): register, print fenced mail as one JSON object, never break a session."""

import fcntl
import json
import os
import re
from pathlib import Path

import pytest
from agent_files import claude_hook_event, codex_hook_event, fake_agent_cli, read_record
from conftest import file_registry, new_id, plain_tags
from test_bus import HOOK_NOTE, by_id, call, req, run_bus

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def marker_file(store_home: Path, directory: str) -> Path:
    return store_home / "markers" / re.sub(r"[^A-Za-z0-9]", "-", directory)


def registry(store_home: Path) -> dict:
    return file_registry(store_home)


def write_mail(store_home: Path, recipient: str, messages: list[dict]) -> None:
    """Queue messages by writing the on-disk mailbox format (docs/store.md) directly."""
    for sub in ("", "mailbox"):
        (store_home / sub).mkdir(mode=0o700, exist_ok=True)
    with (store_home / "mailbox" / f"{recipient}.jsonl").open("a", encoding="utf-8") as out:
        for message in messages:
            line = {
                "id": new_id(),
                "ts": "2026-11-23T10:00:00.000Z",
                "from": None,
                "fromName": None,
                "to": recipient,
                "toName": None,
                **message,
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def hook_output(result) -> str:
    """The hook's stdout as exactly one JSON object of the SessionStart shape; returns its context text."""
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.count("\n") == 1 and out.endswith("\n"), out
    payload = json.loads(out)
    assert list(payload) == ["hookSpecificOutput"]
    inner = payload["hookSpecificOutput"]
    assert set(inner) == {"hookEventName", "additionalContext"}
    assert inner["hookEventName"] == "SessionStart"
    assert isinstance(inner["additionalContext"], str)
    return inner["additionalContext"]


def assert_quiet_failure(result, store_home: Path | None = None) -> str:
    """Exit 0, nothing on stdout, and every stderr line prefixed `[session-relay/hook] `."""
    assert result.returncode == 0
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.strip(), "a problem must be reported on stderr"
    for line in err.splitlines():
        assert line.startswith("[session-relay/hook] "), line
    assert "Traceback" not in err
    return err


def test_no_session_id_does_nothing(run_relay, store_home, tmp_path):
    for stdin in (
        b"",
        b"\n",
        json.dumps({"cwd": str(tmp_path), "hook_event_name": "SessionStart"}).encode(),
        json.dumps({"session_id": "", "cwd": str(tmp_path)}).encode(),
        json.dumps({"session_id": None, "cwd": str(tmp_path)}).encode(),
    ):
        result = run_relay("hook", input=stdin)
        assert result.returncode == 0
        assert result.stdout == b""
        assert not store_home.exists(), stdin


def test_registers_session_marker_and_entry(run_relay, store_home, tmp_path):
    sid, project = new_id(), tmp_path / "my project.v2"
    project.mkdir()
    result = run_relay("hook", input=claude_hook_event(sid, str(project)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""  # no mail: nothing printed
    assert result.stderr == b""
    assert marker_file(store_home, str(project)).read_text() == f"{sid}\n{project}\n"
    data = registry(store_home)
    entry = data["agents"][sid]
    assert {k: entry[k] for k in ("id", "dir", "tool", "name")} == {
        "id": sid,
        "dir": str(project),
        "tool": "claude",
        "name": "my-project.v2",  # named from its dir at its start (relay.domain.ids.name_from_dir)
    }
    assert ISO.match(entry["lastSeen"])
    assert data["names"] == {"my-project.v2": sid}


@pytest.mark.parametrize(("args", "tool"), [((), "claude"), (("codex",), "codex"), (("claude",), "claude")])
def test_tool_from_first_argument(run_relay, store_home, tmp_path, args, tool):
    sid = new_id()
    assert run_relay("hook", *args, input=codex_hook_event(sid, str(tmp_path))).returncode == 0
    assert registry(store_home)["agents"][sid]["tool"] == tool


def test_upsert_keeps_name_and_refreshes_dir_and_tool(run_relay, store_home, tmp_path):
    sid = new_id()
    assert run_relay("register", "api", "--id", sid, "--dir", "/old/dir").returncode == 0
    assert run_relay("hook", "codex", input=codex_hook_event(sid, str(tmp_path), source="resume")).returncode == 0
    data = registry(store_home)
    entry = data["agents"][sid]
    assert (entry["name"], entry["dir"], entry["tool"]) == ("api", str(tmp_path), "codex")
    assert data["names"] == {"api": sid}


def test_dir_falls_back_to_claude_project_dir_then_process_cwd(run_relay, store_home, tmp_path):
    proj, proc = tmp_path / "from-env", tmp_path / "proc-cwd"
    proj.mkdir()
    proc.mkdir()
    a, b, c, d = new_id(), new_id(), new_id(), new_id()
    env = {"CLAUDE_PROJECT_DIR": str(proj)}
    run_relay("hook", input=json.dumps({"session_id": a}), extra_env=env, cwd=proc)
    run_relay("hook", input=json.dumps({"session_id": b, "cwd": ""}), extra_env=env, cwd=proc)
    run_relay("hook", input=json.dumps({"session_id": c}), cwd=proc)
    run_relay("hook", input=json.dumps({"session_id": d}), extra_env={"CLAUDE_PROJECT_DIR": ""}, cwd=proc)
    agents = registry(store_home)["agents"]
    assert agents[a]["dir"] == str(proj)
    assert agents[b]["dir"] == str(proj)
    assert agents[c]["dir"] == os.path.realpath(proc)
    assert agents[d]["dir"] == os.path.realpath(proc)
    assert marker_file(store_home, str(proj)).read_text() == f"{b}\n{proj}\n"  # the last one to start there


def test_mail_is_printed_in_the_exact_shape_and_taken(run_relay, store_home, tmp_path):
    me, sender = new_id(), new_id()
    run_relay("register", "alice", "--id", sender)
    run_relay("hook", input=claude_hook_event(me, str(tmp_path)))
    assert run_relay("send", me, "--", "first body").returncode == 0
    write_mail(store_home, me, [{"from": sender, "fromName": None, "body": "second: by id, no name"}])
    write_mail(store_home, me, [{"from": sender, "fromName": "alice", "body": "third"}])
    pending = json.loads(run_relay("peek", me).stdout)["messages"]
    assert len(pending) == 3

    text = plain_tags(hook_output(run_relay("hook", input=claude_hook_event(me, str(tmp_path)))))
    lines = text.split("\n")
    assert len(lines) == 8, lines
    assert re.search(r"\b3 messages\b", lines[0])
    assert "UNTRUSTED DATA" in lines[1]
    assert "instructions" in lines[1]
    assert lines[2] == "<session-relay-mail>"
    ids = [m["id"] for m in pending]
    assert lines[3] == f"- from cli ({pending[0]['ts']}, id {ids[0]}, no reply address): first body"
    assert lines[4] == f"- from {sender} (2026-11-23T10:00:00.000Z, id {ids[1]}): second: by id, no name"
    assert lines[5] == f"- from alice (2026-11-23T10:00:00.000Z, id {ids[2]}): third"
    assert lines[6] == "</session-relay-mail>"
    assert "send" in lines[7] and lines[7].strip()

    # the mail was taken: nothing waits, and the next start prints nothing
    assert json.loads(run_relay("peek", me).stdout)["count"] == 0
    again = run_relay("hook", input=claude_hook_event(me, str(tmp_path)))
    assert again.returncode == 0 and again.stdout == b""


def test_one_message_count_line(run_relay, tmp_path):
    me = new_id()
    run_relay("send", me, "--", "only one")
    text = hook_output(run_relay("hook", input=claude_hook_event(me, str(tmp_path))))
    first = text.split("\n")[0]
    assert re.search(r"\b1 message\b", first)


def test_codex_payload_shape_with_mail(run_relay, store_home, tmp_path):
    me = new_id()
    run_relay("send", me, "--", "hello codex")
    payload = codex_hook_event(me, str(tmp_path), source="resume")
    assert not payload.endswith(b"\n")
    text = hook_output(run_relay("hook", "codex", input=payload))
    assert "- from cli (" in text and "): hello codex" in text
    assert registry(store_home)["agents"][me]["tool"] == "codex"


def test_claude_payload_shape_with_mail(run_relay, store_home, tmp_path):
    me = new_id()
    run_relay("send", me, "--", "hello claude")
    payload = claude_hook_event(me, str(tmp_path))
    assert payload.endswith(b"\n")
    text = hook_output(run_relay("hook", input=payload))
    assert "): hello claude" in text


def test_mail_over_the_context_budget_stays_queued(run_relay, store_home, tmp_path):
    me = new_id()
    write_mail(store_home, me, [{"fromName": "big", "body": f"{i}:" + "x" * 20_000} for i in range(5)])
    text = hook_output(run_relay("hook", input=claude_hook_event(me, str(tmp_path))))
    shown = len(re.findall(r"^- from big ", text, re.MULTILINE))
    assert shown >= 1
    assert re.search(rf"\b{shown} messages?\b", text.split("\n")[0])
    left = json.loads(run_relay("peek", me).stdout)
    assert shown + left["count"] + left["remaining"] == 5
    assert re.search(rf"\b{5 - shown} more messages? wait", text)
    assert [m["body"].split(":")[0] for m in left["messages"]] == [str(i) for i in range(shown, shown + left["count"])]


# -- bad input never breaks the session -------------------------------------------------------


@pytest.mark.parametrize(
    "stdin",
    [b"this is not json", b"{", b"[1, 2, 3]", b'"SessionStart"', b"42", b"null", b"\xff\xfe\x00"],
    ids=["garbage", "truncated", "array", "string", "number", "null", "binary"],
)
def test_bad_stdin(run_relay, store_home, stdin):
    assert_quiet_failure(run_relay("hook", input=stdin))
    assert not store_home.exists()


@pytest.mark.parametrize("session_id", ["--config=evil", "../../etc/passwd", "not-a-uuid", 42, ["x"], {"a": 1}])
def test_non_uuid_session_id(run_relay, store_home, tmp_path, session_id):
    event = json.dumps({"session_id": session_id, "cwd": str(tmp_path), "hook_event_name": "SessionStart"})
    err = assert_quiet_failure(run_relay("hook", input=event))
    assert "session id" in err
    assert not (store_home / "agents").exists()
    assert not (store_home / "markers").exists() or not any((store_home / "markers").iterdir())


def test_unwritable_store(run_relay, tmp_path):
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a dir")
    result = run_relay(
        "hook",
        input=claude_hook_event(new_id(), str(tmp_path)),
        extra_env={"AGENT_RELAY_HOME": str(blocker / "store")},
    )
    assert_quiet_failure(result)
    assert blocker.read_text() == "not a dir"


def test_held_lock_exits_0_and_keeps_the_mail(run_relay, store_home, tmp_path):
    me = new_id()
    run_relay("send", me, "--", "wait for me")
    fd = os.open(store_home / ".lock", os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_relay("hook", input=claude_hook_event(me, str(tmp_path)), timeout=30)
    finally:
        os.close(fd)
    err = assert_quiet_failure(result)
    assert "lock busy" in err
    text = hook_output(run_relay("hook", input=claude_hook_event(me, str(tmp_path))))
    assert "): wait for me" in text


def test_unsubstituted_claude_project_dir_is_ignored(run_relay, store_home, tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    sid = new_id()
    extra = {"CLAUDE_PROJECT_DIR": "${CLAUDE_PROJECT_DIR}"}  # Codex passes variables through literally
    assert run_relay("hook", "codex", input=json.dumps({"session_id": sid}), extra_env=extra, cwd=proc).returncode == 0
    assert registry(store_home)["agents"][sid]["dir"] == os.path.realpath(proc)


def test_hook_registration_is_enough_to_wake(run_relay, store_home, tmp_path):
    project, record = tmp_path / "proj", tmp_path / "runs.jsonl"
    project.mkdir()
    fake_agent_cli(tmp_path / "bin", record, "codex")
    sid = new_id()
    assert run_relay("hook", "codex", input=codex_hook_event(sid, str(project))).returncode == 0
    result = run_relay("wake", sid, "--", "mail", extra_env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    runs = read_record(record)
    assert runs[0]["argv"][:-1] == ["exec", "resume", sid, "--json", "--"]  # then relay's nudge
    assert os.path.realpath(runs[0]["cwd"]) == os.path.realpath(project)


# -- one delivery protocol ---------------------------------------------------------------


def test_hook_cli_inbox_and_mcp_inbox_share_one_delivery_protocol(env, store_home, tmp_path, monkeypatch, capsysbinary):
    """take -> show -> confirm lives once, in relay.usecases.mail; each face only passes its own `show`."""
    import io

    from relay.faces import commands, hook
    from relay.faces import mcp_tools as tools
    from relay.faces.argv import parse
    from relay.store.files import Store
    from relay.usecases import mail

    sid = new_id()
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", sid)
    calls: list[str] = []
    real = mail.open_delivery

    def spy(store, recipient, show, select=None):
        calls.append(recipient)
        return real(store, recipient, show, select)

    monkeypatch.setattr(mail, "open_delivery", spy)
    store = Store(store_home)
    mail.send(store, sid, "for the hook", None, "cli")
    out = io.BytesIO()
    hook.handle({"session_id": sid, "cwd": str(tmp_path)}, "claude", out, store)
    assert "for the hook" in out.getvalue().decode()
    mail.send(store, sid, "for the cli", None, "cli")
    assert commands.inbox_command(store, parse("inbox", commands.SHAPES["inbox"], [sid])) == 0
    assert b"for the cli" in capsysbinary.readouterr().out
    mail.send(store, sid, "for mcp", None, "cli")
    result, confirm = tools.call(store, "inbox", {})
    assert [m["body"] for m in result["messages"]] == ["for mcp"]
    assert confirm(True) == 1
    mail.send(store, sid, "for the prompt", None, "cli")
    out = io.BytesIO()
    hook.handle({"session_id": sid, "hook_event_name": "UserPromptSubmit"}, "claude", out, store)
    assert "for the prompt" in out.getvalue().decode()
    assert calls == [sid, sid, sid, sid]
    assert store.peek(sid) == []


def test_hook_output_that_cannot_be_written_confirms_nothing(env, store_home, tmp_path):
    from relay.faces import hook
    from relay.store.files import Store
    from relay.usecases import mail

    class Broken:
        def write(self, data: bytes) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

    sid = new_id()
    store = Store(store_home)
    mail.send(store, sid, "keep me", None, "cli")
    with pytest.raises(BrokenPipeError):
        hook.handle({"session_id": sid, "cwd": str(tmp_path)}, "claude", Broken(), store)
    assert [(m["body"], m["state"]) for m in store.peek(sid)] == [("keep me", "inflight")]


# ---- hook note ----
# The bus tells the model, once, that its session was never registered because the SessionStart hook
# did not run (e.g. Codex holding an untrusted hook), and how the user fixes it; never when the session
# is registered. Spoken to over the real MCP wire: newline-delimited JSON-RPC to `relay bus`.

INIT = req(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}})


def contents(reply: dict) -> list[str]:
    content = reply["result"]["content"]
    assert all(item["type"] == "text" for item in content), content
    return [item["text"] for item in content]


def notes(replies: list) -> dict:
    """id -> the hook note that reply carries (None when it has none)."""
    found = {}
    for request_id, reply in by_id(replies).items():
        if request_id == 0:  # initialize
            continue
        texts = contents(reply)
        assert len(texts) in (1, 2), texts
        found[request_id] = texts[1] if len(texts) == 2 else None
    return found


def test_an_unregistered_codex_session_hears_once_how_to_trust_the_hook(run_relay):
    session = new_id()
    meta = {"_meta": {"sessionId": session}}
    replies, _ = run_bus(
        run_relay,
        INIT,
        req(1, "tools/call", {"name": "roster", "arguments": {}, **meta}),
        req(2, "tools/call", {"name": "roster", "arguments": {}, **meta}),
        req(3, "tools/call", {"name": "whoami", "arguments": {}, **meta}),
    )
    got = notes(replies)
    assert got[1] is not None and got[1].startswith(HOOK_NOTE)
    assert '/hooks and choose "Trust all and continue"' in got[1] and "doctor" in got[1]
    assert json.loads(contents(by_id(replies)[1])[0]) == {"agents": []}  # the result itself is unchanged
    assert got[2] is None and got[3] is None  # once per bus process


def test_an_unregistered_claude_session_is_told_to_check_the_plugin_and_restart(run_relay):
    replies, _ = run_bus(run_relay, INIT, call(1, "roster"), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()})
    note = notes(replies)[1]
    assert note is not None and note.startswith(HOOK_NOTE)
    assert "claude plugin list" in note and "restart" in note and "Trust all" not in note


def test_a_session_registered_by_its_hook_gets_no_note(run_relay):
    session = new_id()
    hook = run_relay("hook", input=json.dumps({"session_id": session, "cwd": "/tmp"}))
    assert hook.returncode == 0, hook.stderr
    replies, _ = run_bus(
        run_relay, INIT, call(1, "roster"), call(2, "whoami"), extra_env={"CLAUDE_CODE_SESSION_ID": session}
    )
    assert notes(replies) == {1: None, 2: None}


def test_the_note_rides_on_an_error_too_and_is_judged_before_a_first_register(run_relay):
    # No session id at all: inbox fails, and its error carries the note.
    replies, _ = run_bus(run_relay, INIT, call(1, "inbox"), call(2, "inbox"))
    assert by_id(replies)[1]["result"]["isError"] is True
    got = notes(replies)
    assert got[1] is not None and got[1].startswith(HOOK_NOTE) and got[2] is None
    # A first `register` names the session, but its hook still never ran: the note is still due.
    replies, _ = run_bus(
        run_relay, INIT, call(1, "register", {"name": "x"}), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()}
    )
    assert by_id(replies)[1]["result"]["isError"] is False
    assert notes(replies)[1] is not None
