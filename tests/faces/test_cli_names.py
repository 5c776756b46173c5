"""What `send`, `ask`, `list` and `doctor` tell a person about names and recipients (docs/cli.md).

Black-box through the program under test (RELAY_CMD): the recipient's state under the first line
of `send`, `ask` saying at once that the recipient is not running, `ask --wake`, did-you-mean for a
misspelt name, lookup ignoring case, aligned `list` columns with relative times, and `doctor`
failing where the store can never be created or written.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import new_id
from test_addressing import ok, peek, procs, project, start, start_live_claude  # noqa: F401 (procs: a fixture)
from test_names import end


def test_send_says_when_the_recipient_has_ended(run_relay, tmp_path):
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "payments-api"))
    end(run_relay, sid)
    out = ok(run_relay("send", "payments-api", "--", "hi")).splitlines()
    assert len(out) == 2
    assert re.fullmatch(r"queued -> payments-api [0-9a-f-]{36}", out[0]), out
    assert out[1].startswith("payments-api has ended: it reads this when it starts or is woken (")
    assert out[1].endswith(" wake payments-api)")


def test_send_says_when_the_recipient_is_not_running(run_relay, tmp_path):
    start(run_relay, new_id(), project(tmp_path, "api"))
    out = ok(run_relay("send", "api", "--", "hi")).splitlines()
    assert len(out) == 2 and out[1].startswith("api is not running: it reads this when it starts or is woken")


def test_send_to_a_running_session_prints_one_line(run_relay, procs, tmp_path):  # noqa: F811
    config = tmp_path / "claude-config"
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "api"))
    start_live_claude(procs, config, sid)
    out = ok(run_relay("send", "api", "--", "hi", extra_env={"CLAUDE_CONFIG_DIR": str(config)}))
    assert len(out.splitlines()) == 1 and out.startswith("queued -> api ")


def test_ask_says_at_once_that_an_idle_recipient_is_not_running(run_relay, tmp_path):
    start(run_relay, new_id(), project(tmp_path, "api"))
    result = run_relay("ask", "api", "--wait", "0.3", "--", "there?")
    assert result.returncode == 4 and result.stdout == b""
    first, *_ = result.stderr.decode().splitlines()
    assert "api is not running: it reads this when it starts or is woken" in first and "--wake" in first


def test_a_misspelt_name_suggests_the_closest(run_relay, tmp_path):
    for name in ("payments-api", "payments-web", "search"):
        start(run_relay, new_id(), project(tmp_path, name))
    result = run_relay("send", "paymnts-api", "--", "hi")
    err = result.stderr.decode()
    assert result.returncode == 1 and err.count("\n") == 1
    assert "no session named 'paymnts-api' (did you mean payments-api" in err and "search" not in err
    far = run_relay("send", "zzzz", "--", "hi").stderr.decode()
    assert "did you mean" not in far


def test_names_are_found_ignoring_case(run_relay, tmp_path):
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "payments-api"))
    out = ok(run_relay("send", "PAYMENTS-API", "--", "hi")).splitlines()[0]
    assert out.startswith("queued -> payments-api ")
    assert [m["body"] for m in peek(run_relay, "Payments-Api")["messages"]] == ["hi"]


def test_list_aligns_its_columns_and_shows_how_long_ago(run_relay, store_home, tmp_path):
    short, longer = new_id(), new_id()
    start(run_relay, short, project(tmp_path, "a"))
    start(run_relay, longer, project(tmp_path, "a-much-longer-project-name"))
    end(run_relay, longer)
    lines = ok(run_relay("list")).splitlines()
    assert len(lines) == 2
    starts = [[m.start() for m in re.finditer(r"(?<=  )\S", line)] for line in lines]
    assert starts[0][:4] == starts[1][:4], lines  # TOOL, ID, DELIVER, DIR start at one column
    assert re.search(r"  \d+s ago$", lines[0]), lines
    assert re.search(r"  \d+s ago, ended \d+s ago$", lines[1]), lines


# -- ask --wake: rings after queueing, under the wake's rules ------------------------------------

_ANSWERING_CLAUDE = """#!{python}
import json, subprocess, sys
relay = {relay}
sid = sys.argv[sys.argv.index("--resume") + 1]
print("fake claude output")  # must not reach ask's stdout
mail = json.loads(subprocess.run([*relay, "inbox", sid], capture_output=True, check=True).stdout)
for m in mail["messages"]:
    if m.get("expectsReply"):
        subprocess.run([*relay, "send", m["from"], "--from", sid, "--reply-to", m["id"], "--", "pong"], check=True)
"""


def answering_claude(bin_dir: Path, relay_cmd: list[str]) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "claude"
    path.write_text(_ANSWERING_CLAUDE.format(python=sys.executable, relay=json.dumps(relay_cmd)))
    path.chmod(0o755)


def test_ask_wake_rings_the_idle_recipient_and_prints_only_its_reply(run_relay, relay_cmd, tmp_path):
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "api"))
    answering_claude(tmp_path / "bin", relay_cmd)
    path = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    result = run_relay("ask", "api", "--wake", "--wait", "30", "--", "ping?", extra_env=path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"pong\n"
    assert "fake claude output" in result.stderr.decode()


def test_ask_wake_does_not_ring_a_running_session(run_relay, relay_cmd, procs, tmp_path):  # noqa: F811
    config = tmp_path / "claude-config"
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "api"))
    start_live_claude(procs, config, sid)
    answering_claude(tmp_path / "bin", relay_cmd)
    extra = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "CLAUDE_CONFIG_DIR": str(config)}
    result = run_relay("ask", "api", "--wake", "--wait", "0.5", "--", "ping?", extra_env=extra)
    assert result.returncode == 4
    assert "is running: not waking it" in result.stderr.decode()
    assert "fake claude output" not in result.stderr.decode()


# -- doctor: a store that can never be created or written -----------------------------------------


def test_doctor_fails_when_a_file_stands_where_the_store_must_go(run_relay, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = run_relay("doctor", extra_env={"AGENT_RELAY_HOME": str(blocker / "store")})
    assert result.returncode == 1
    [line] = [x for x in result.stdout.decode().splitlines() if "store" in x and x.startswith("FAIL")]
    assert "cannot be created" in line and "is a file, not a directory" in line


def _unshare_ok() -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return done.returncode == 0


needs_mount_ns = pytest.mark.skipif(not _unshare_ok(), reason="needs root and unshare -m for a read-only mount")


def _doctor_on_read_only(relay_cmd: list[str], env: dict[str, str], tree: Path, home: Path) -> subprocess.Popen:
    script = f"mount --bind {tree} {tree} && mount -o remount,ro,bind {tree} && exec " + " ".join(
        f"'{w}'" for w in [*relay_cmd, "doctor"]
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        env={**env, "AGENT_RELAY_HOME": str(home)},
        capture_output=True,
        check=False,
        timeout=60,
    )


@needs_mount_ns
def test_doctor_fails_on_a_read_only_home(relay_cmd, env, tmp_path):
    tree = tmp_path / "ro"
    tree.mkdir()
    result = _doctor_on_read_only(relay_cmd, env, tree, tree / "store")
    assert result.returncode == 1, result.stdout
    assert re.search(r"^FAIL  the store cannot be created at .*not writable", result.stdout.decode(), re.M)


@needs_mount_ns
def test_doctor_fails_when_an_existing_store_cannot_be_written(relay_cmd, env, tmp_path):
    tree = tmp_path / "ro"
    (tree / "store").mkdir(parents=True, mode=0o700)
    result = _doctor_on_read_only(relay_cmd, env, tree, tree / "store")
    assert result.returncode == 1, result.stdout
    assert re.search(r"^FAIL  the store at .* cannot be written", result.stdout.decode(), re.M)


def test_doctor_passes_a_writable_store_and_leaves_no_probe_behind(run_relay, store_home, tmp_path):
    store_home.mkdir(mode=0o700)
    result = run_relay("doctor")
    assert "cannot be" not in result.stdout.decode()
    assert not [p.name for p in store_home.iterdir() if "probe" in p.name]  # (its lock probe leaves .lock)
