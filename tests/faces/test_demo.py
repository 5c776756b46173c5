"""`relay demo`: the whole relay at work in a throwaway store, touching nothing of the user's."""

import json
import os
import re
from pathlib import Path

import pytest
from agent_files import fake_agent_cli, read_record, snapshot_tree

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def demo_env(tmp_path: Path):
    bin_dir, record = tmp_path / "fakebin", tmp_path / "fake-runs.jsonl"
    for name in ("claude", "codex"):
        fake_agent_cli(bin_dir, record, name)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(scratch)}, record, scratch


def home_tree(home: Path) -> dict:
    """HOME's contents, minus ~/.cache: the frozen binary unpacks its runtime there (not relay state)."""
    return snapshot_tree(home, skip=(".cache",))


def check_demo_output(out: str) -> None:
    steps = re.findall(r"^== (\d+)\. ", out, re.MULTILINE)
    assert [int(s) for s in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 6
    # the fenced mail, with the hostile close tag defused: one real open and close per delivery
    blocks = re.findall(
        r'<session-relay-mail boundary="(\w{16,})">\n(.*?)</session-relay-mail boundary="(\w+)">', out, re.DOTALL
    )
    assert len(blocks) >= 2
    assert "UNTRUSTED DATA" in out
    assert "[session-relay-mail]" in out
    for boundary, block, closing in blocks:
        assert closing == boundary and boundary not in block and "</session-relay-mail" not in block
    assert len({boundary for boundary, _, _ in blocks}) == len(blocks)  # a fresh boundary each time
    assert re.search(r"- from alice \(\d{4}-\d\d-\d\dT[\d:.]+Z, id [0-9a-f-]{36}\): .*\[session-relay-mail\]", out)
    assert re.search(r"- from bob \(", out)
    # each session starts named after its dir, then renames itself
    names = re.findall(r"^   its name in the registry: (\S+) ", out, re.MULTILINE)
    assert names[:2] == ["web-app", "api-server"] and set(names[2:]) == {"alice", "bob"}, names
    # two --dry doorbell lines, one per tool, each a {tool, cmd, args, cwd} JSON object
    planned = []
    for line in out.splitlines():
        text = line.strip()
        if text.startswith("{") and '"cmd"' in text:
            planned.append(json.loads(text))
    assert len(planned) == 2
    assert {p["tool"] for p in planned} == {"claude", "codex"}
    for plan in planned:
        assert set(plan) == {"tool", "cmd", "args", "cwd"}
        assert plan["cmd"] == plan["tool"]
        assert re.fullmatch(UUID, plan["args"][2])
        assert plan["args"][-2] == "--"
        assert "inbox" in plan["args"][-1]


def test_demo_runs_and_touches_nothing(run_relay, store_home, env, demo_env, tmp_path):
    extra, record, scratch = demo_env
    home = Path(env["HOME"])
    before_home = home_tree(home)
    result = run_relay("demo", extra_env=extra, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    check_demo_output(result.stdout.decode())
    assert not store_home.exists()
    assert not (home / ".agent-relay").exists()
    assert home_tree(home) == before_home
    assert read_record(record) == []  # no claude, no codex was run
    assert list(scratch.iterdir()) == []  # the throwaway store is gone


def test_demo_without_any_relay_home_configured(run_relay, env, demo_env):
    extra, record, scratch = demo_env
    for name in ("AGENT_RELAY_HOME", "SESSION_RELAY_HOME"):
        env.pop(name, None)  # run_relay uses this dict: the default home is $HOME/.agent-relay
    home = Path(env["HOME"])
    result = run_relay("demo", extra_env=extra, cwd=home)
    assert result.returncode == 0, result.stderr
    check_demo_output(result.stdout.decode())
    assert not (home / ".agent-relay").exists()
    assert home_tree(home) == {}
    assert read_record(record) == []
    assert list(scratch.iterdir()) == []


def test_demo_leaves_an_existing_store_alone(run_relay, store_home, demo_env):
    extra, _, _ = demo_env
    sid = "11111111-1111-4111-8111-111111111111"
    assert run_relay("register", "mine", "--id", sid).returncode == 0
    assert run_relay("send", "mine", "--", "keep").returncode == 0
    before = snapshot_tree(store_home)
    assert run_relay("demo", extra_env=extra).returncode == 0
    assert snapshot_tree(store_home) == before
