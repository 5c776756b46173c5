"""The wake planner's rules for ringing an idle Claude session's own messaging socket after mail
was queued (relay.usecases.wake.ring_idle, docs/wake.md): at most one ring per take window, never
for a `start` recipient or past the auto-wake limit, counted as a turn relay started."""

import os

import pytest
from test_claude_socket import NUDGE, Listener, session  # noqa: F401
from test_liveness import claude_config, procs  # noqa: F401

from relay.store.files import Store
from relay.usecases import wake
from relay.usecases.conversation import send_and_ring

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="these tests read /proc (Linux)")


@pytest.fixture
def store(store_home, tmp_path):
    return Store(str(store_home))


def test_mail_for_an_idle_session_rings_its_socket_once_per_take_window(store, session, tmp_path):  # noqa: F811
    sid, _, listener, _ = session
    store.record_start(sid, str(tmp_path), "claude")
    first = send_and_ring(store, sid, "hello", None, "cli")
    assert first.rung == wake.RANG and first.recipient_state()["state"] == "live"
    assert store.auto_wakes(sid) == 1 and store.last_ring(sid) is not None
    second = send_and_ring(store, sid, "again", None, "cli")  # the turn the first ring starts takes both
    assert second.rung == "rung already"
    [line] = listener.close()
    assert b"session-relay" in line and b"hello" not in line and b"again" not in line  # the nudge, never mail


def test_no_ring_for_a_start_recipient_or_past_the_auto_wake_limit(store, session, tmp_path, monkeypatch):  # noqa: F811
    sid, _, listener, _ = session
    store.record_start(sid, str(tmp_path), "claude")
    entry = {**store.registry().agents[sid], "deliver": "start"}
    send_and_ring(store, sid, "hello", None, "cli")
    listener.lines.clear()
    store.note_ring(sid)
    assert wake.ring_idle(store, entry)[0] == "deliver mode start"
    entry["deliver"] = "turn"
    monkeypatch.setattr(wake, "SOCKET_TAKE_SECONDS", 0.0)  # the earlier ring is over
    monkeypatch.setenv("RELAY_MAX_AUTO_WAKES", "1")
    assert wake.ring_idle(store, entry)[0] == "relay started enough turns unattended"
    monkeypatch.setenv("RELAY_MAX_AUTO_WAKES", "5")
    assert wake.ring_idle(store, entry)[0] == wake.RANG
    assert len(listener.close()) == 1


def test_relay_wake_of_an_open_idle_claude_rings_its_socket_instead_of_refusing(store, session, tmp_path, monkeypatch):  # noqa: F811
    sid, _, listener, _ = session
    project = tmp_path / "project"
    project.mkdir()
    store.record_start(sid, str(project), "claude")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "claude").write_text("#!/bin/sh\nexit 99\n")  # must never run: no resume of a running session
    (bindir / "claude").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    said: list[object] = []
    target = wake.Target.registered(store.registry().agents[sid])
    assert wake.wake(store, target, ["please", "look"], said.append, force=False, dry=False) == 0
    assert said and "rang its own Claude messaging socket" in str(said[0])
    [line] = listener.close()
    assert b"please" not in line  # the words went as mail, the socket got the nudge
    assert store.has_mail(sid) and store.auto_wakes(sid) == 1
