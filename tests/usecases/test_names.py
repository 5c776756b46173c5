"""Names follow the project (docs/discovery.md), and the name rule against a hostile neighbour.

Black-box through the program under test (RELAY_CMD): the hook as the agent CLIs run it, then
`relay send`, `peek`, `status`, `list` and `register`; each test runs on the file store and on Redis.
"""

import json
from pathlib import Path

import pytest
from conftest import new_id, queued_to, stored_registry
from test_addressing import ok, peek, procs, project, start, start_live_claude  # noqa: F401 (procs: a fixture)

pytestmark = pytest.mark.usefixtures("world")


def end(run_relay, sid: str, *tool: str) -> None:
    event = json.dumps({"session_id": sid, "hook_event_name": "SessionEnd", "reason": "exit"})
    result = run_relay("hook", *tool, input=event)
    assert result.returncode == 0 and result.stderr == b"", result.stderr


def send(run_relay, *args: str) -> str:
    """Send, returning the message id from the first line of `relay send`."""
    out = ok(run_relay("send", *args))
    return out.splitlines()[0].rsplit(" ", 1)[1]


def names(store_home: Path) -> dict[str, str]:
    return stored_registry(store_home)["names"]


def bodies_of(run_relay, who: str) -> list[str]:
    return [m["body"] for m in peek(run_relay, who)["messages"]]


def test_a_new_session_takes_the_name_of_the_ended_one_with_the_mail_sent_to_that_name(run_relay, store_home, tmp_path):
    old, new = new_id(), new_id()
    directory = project(tmp_path, "payments-api")
    start(run_relay, old, directory)
    to_name = send(run_relay, "payments-api", "--", "to the name")
    to_id = send(run_relay, "--id", old, "--", "to the id")
    to_prefix = send(run_relay, old[:8], "--", "to the id prefix")
    end(run_relay, old)
    start(run_relay, new, directory)
    assert names(store_home) == {"payments-api": new}
    agents = stored_registry(store_home)["agents"]
    assert agents[old]["name"] is None and agents[old]["dir"] == str(directory)  # keeps its id and entry
    assert agents[new]["name"] == "payments-api"
    # the new session got the mail sent to the name at its start (the hook delivered it)...
    assert bodies_of(run_relay, new) == [] and bodies_of(run_relay, old) == ["to the id", "to the id prefix"]
    status = json.loads(ok(run_relay("status", to_name, "--json")))
    assert status["to"] == new and status["state"] == "delivered"
    for kept in (to_id, to_prefix):
        assert json.loads(ok(run_relay("status", kept, "--json")))["to"] == old
    # and what is sent to the name now reaches the new session, in any case
    assert queued_to(ok(run_relay("send", "PAYMENTS-API", "--", "next"))) == "payments-api"
    assert bodies_of(run_relay, new) == ["next"]
    # the journal tells a person where the name went
    [move] = [e for e in map(json.loads, ok(run_relay("log", "--json")).splitlines()) if e["event"] == "renamed"]
    assert (move["from"], move["to"], move["toName"]) == (old, new, "payments-api")
    assert "1 queued message moved" in move["detail"]


def test_unread_mail_to_the_name_moves_when_the_holder_just_stopped(run_relay, store_home, tmp_path):
    """No SessionEnd seen (the CLI was killed): a holder with no running process is not live either.
    The hook's start output carries the moved mail, so the new session reads it at once."""
    old, new = new_id(), new_id()
    directory = project(tmp_path, "api")
    start(run_relay, old, directory)
    ok(run_relay("send", "api", "--", "hello api"))
    event = json.dumps({"session_id": new, "cwd": str(directory), "hook_event_name": "SessionStart"})
    result = run_relay("hook", input=event)
    assert result.returncode == 0 and result.stderr == b""
    assert "hello api" in result.stdout.decode()
    assert names(store_home) == {"api": new}
    assert bodies_of(run_relay, old) == []


def test_a_live_holder_keeps_its_name(run_relay, store_home, procs, tmp_path):  # noqa: F811
    config = tmp_path / "claude-config"
    old, new = new_id(), new_id()
    directory = project(tmp_path, "api")
    live_env = {"CLAUDE_CONFIG_DIR": str(config)}
    ok(run_relay("hook", input=json.dumps({"session_id": old, "cwd": str(directory)}), extra_env=live_env))
    start_live_claude(procs, config, old)
    ok(run_relay("send", "api", "--", "for the running one"))
    ok(run_relay("hook", input=json.dumps({"session_id": new, "cwd": str(directory)}), extra_env=live_env))
    assert names(store_home) == {"api": old, "api-2": new}
    assert bodies_of(run_relay, old) == ["for the running one"]


def test_the_name_stays_with_another_cli_or_another_dir(run_relay, store_home, tmp_path):
    codex_session, other_dir, same = new_id(), new_id(), new_id()
    directory = project(tmp_path, "api")
    start(run_relay, codex_session, directory, "codex")
    end(run_relay, codex_session, "codex")
    start(run_relay, same, directory)  # claude, same dir: a different CLI's session keeps the name
    start(run_relay, other_dir, project(tmp_path, "elsewhere", "api"))  # same base name, other project
    assert names(store_home) == {"api": codex_session, "api-2": same, "api-3": other_dir}


def test_a_dir_named_like_an_id_prefix_gets_a_session_prefix(run_relay, store_home, tmp_path):
    victim, attacker = "90068f62-0000-4000-8000-00000000000a", new_id()
    start(run_relay, victim, project(tmp_path, "victim"))
    start(run_relay, attacker, project(tmp_path, "90068f62"))
    assert names(store_home)["session-90068f62"] == attacker
    assert queued_to(ok(run_relay("send", "90068f62", "--", "for the victim"))) == "victim"
    assert bodies_of(run_relay, victim) == ["for the victim"] and bodies_of(run_relay, attacker) == []


@pytest.mark.parametrize("name", ["relay.", "session_relay", "Session.Relay", "SESSIONRELAY", ".", "..", "3f1b414d"])
def test_cli_register_refuses_reserved_dot_and_id_shaped_names(run_relay, store_home, name):
    result = run_relay("register", name, "--id", new_id())
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "invalid name" in err
    assert names(store_home) == {}


def test_a_name_differing_only_in_case_moves_instead_of_standing_beside(run_relay, store_home):
    a, b = new_id(), new_id()
    ok(run_relay("register", "victimproj", "--id", a))
    ok(run_relay("register", "Victimproj", "--id", b))  # a person with the CLI moves the name, as given
    assert names(store_home) == {"Victimproj": b}
    assert queued_to(ok(run_relay("send", "victimproj", "--", "hi"))) == "Victimproj"
    assert bodies_of(run_relay, b) == ["hi"]
