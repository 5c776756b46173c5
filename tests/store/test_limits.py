"""Limits and hostile conditions: body size, bad bytes, the hook's context budget, corrupt
registry and mailbox lines, a read-only store and a full file system."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import fence_parts, file_registry, new_id

from relay.store.files import Store
from relay.usecases.mail import MAX_BODY_BYTES, check_body
from relay.util.errors import RelayError

BUDGET = 32 * 1024


def one_line(stderr: bytes) -> str:
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def pending(store_home: Path, sid: str) -> bytes | None:
    path = store_home / "mailbox" / f"{sid}.jsonl"
    return path.read_bytes() if path.exists() else None


def inbox(run_relay, sid: str) -> dict:
    result = run_relay("inbox", sid)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def hook_event(sid: str, cwd: Path) -> str:
    return json.dumps({"session_id": sid, "cwd": str(cwd), "source": "startup", "hook_event_name": "SessionStart"})


# -- message size ---------------------------------------------------------------------------------


def test_limit_is_24_kib():
    assert MAX_BODY_BYTES == 24 * 1024  # documented; the binary tests below rely on the number


@pytest.mark.parametrize("unit", ["x", "é"])
def test_oversized_body_refused_exact_limit_accepted(run_relay, store_home, unit):
    sid = new_id()
    size = len(unit.encode())
    over = unit * (MAX_BODY_BYTES // size + 1)
    result = run_relay("send", "--id", sid, "--", over)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "too long" in line and str(MAX_BODY_BYTES) in line
    assert result.stdout == b""
    assert pending(store_home, sid) is None

    exact = unit * (MAX_BODY_BYTES // size)
    assert len(exact.encode()) == MAX_BODY_BYTES
    ok = run_relay("send", "--id", sid, "--", exact)
    assert ok.returncode == 0, ok.stderr
    assert [m["body"] for m in inbox(run_relay, sid)["messages"]] == [exact]


def test_words_joined_count_toward_the_limit(run_relay, store_home):
    sid = new_id()
    half = "y" * (MAX_BODY_BYTES // 2)
    result = run_relay("send", "--id", sid, "--", half, half)  # joined with a space: one byte over
    assert result.returncode == 1
    assert pending(store_home, sid) is None


@pytest.mark.parametrize("raw", [b"\xff", b"ok \xc3", b"\xed\xa0\x80 surrogate", b"caf\xe9"])
def test_invalid_utf8_argument_refused_cleanly(relay_cmd, env, store_home, tmp_path, raw):
    sid = new_id()
    argv = [os.fsencode(a) for a in relay_cmd] + [b"send", b"--id", sid.encode(), b"--", raw]
    result = subprocess.run(argv, capture_output=True, env=env, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 1
    assert "UTF-8" in one_line(result.stderr)
    assert b"Traceback" not in result.stderr
    assert pending(store_home, sid) is None


def test_nul_byte_refused(env, store_home):
    # A NUL cannot travel in an argv; it can in a JSON string (the MCP send tool) or the core API.
    with pytest.raises(RelayError, match="NUL"):
        check_body("before\x00after")
    from relay.usecases.mail import send

    sid = new_id()
    with pytest.raises(RelayError, match="NUL"):
        send(Store(store_home), sid, "a\x00b", None, "cli")
    assert pending(store_home, sid) is None


def _bus(relay_cmd, env, tmp_path, raw: bytes) -> dict:
    result = subprocess.run(
        [*relay_cmd, "bus"],
        input=raw,
        capture_output=True,
        env={**env, "CLAUDE_CODE_SESSION_ID": new_id()},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {a.get("id"): a for a in map(json.loads, result.stdout.decode().splitlines())}


INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
)


def test_nul_via_mcp_send_is_a_tool_error(relay_cmd, env, store_home, tmp_path):
    sid = new_id()
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "send", "arguments": {"to": sid, "body": "a\u0000b"}},
    }
    answers = _bus(relay_cmd, env, tmp_path, INIT + json.dumps(call).encode() + b"\n")
    assert answers[2]["result"]["isError"] is True
    assert "NUL" in answers[2]["result"]["content"][0]["text"]
    assert pending(store_home, sid) is None


def test_mcp_request_with_a_lone_surrogate_still_gets_one_answer(relay_cmd, env, store_home, tmp_path):
    """A request with an id whose text holds a lone surrogate escape (legal JSON) must be answered,
    not dropped: an MCP client waits for every id it sent. Bug B-T2 / MCP-4 in notes/bugs.md."""
    sid = new_id()
    frame = b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send","arguments":{"to":"'
    frame += sid.encode() + b'","body":"lone \\ud800 surrogate"}}}\n'
    answers = _bus(relay_cmd, env, tmp_path, INIT + frame + b'{"jsonrpc":"2.0","id":4,"method":"ping"}\n')
    assert answers[4]["result"] == {}
    assert 3 in answers, "request id 3 got no answer"
    assert answers[3].get("error") or answers[3]["result"]["isError"] is True
    assert pending(store_home, sid) is None


def test_mcp_line_with_invalid_utf8_is_skipped_and_the_bus_goes_on(relay_cmd, env, store_home, tmp_path):
    """Invalid UTF-8 is not JSON (docs/mcp.md: logged and skipped); the bus survives and stdout stays JSON-RPC."""
    sid = new_id()
    frame = b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send","arguments":{"to":"'
    frame += sid.encode() + b'","body":"raw \xff byte"}}}\n'
    answers = _bus(relay_cmd, env, tmp_path, INIT + frame + b'{"jsonrpc":"2.0","id":4,"method":"ping"}\n')
    assert answers[4]["result"] == {}
    assert 3 not in answers or answers[3].get("error") or answers[3]["result"]["isError"] is True
    assert pending(store_home, sid) is None


# -- the hook's context budget ----------------------------------------------------------------------

HOOK_LINE = re.compile(r"^- from (?P<sender>.+?) \((?P<ts>[^)]*)\)(?P<re> \(redelivered\))?: (?P<body>.*)$")


def hook_text(stdout: bytes) -> str:
    return json.loads(stdout)["hookSpecificOutput"]["additionalContext"]


def fenced_lines(text: str) -> list[str]:
    inside = "\n".join(fence_parts(text)[2])
    return [line for line in inside.split("\n") if line]


@pytest.mark.parametrize(("count", "size"), [(10, 20_000), (10, 5_000)])
def test_hook_shows_what_fits_in_32_kib_and_keeps_the_rest(run_relay, store_home, tmp_path, count, size):
    sid = new_id()
    bodies = [f"b{i:02d}-" + "z" * (size - 4) for i in range(count)]
    for body in bodies:
        assert run_relay("send", "--id", sid, "--", body).returncode == 0
    seen: list[str] = []
    rounds = 0
    while len(seen) < count:
        rounds += 1
        assert rounds <= count, "the hook stopped making progress"
        result = run_relay("hook", input=hook_event(sid, tmp_path))
        assert result.returncode == 0, result.stderr
        text = hook_text(result.stdout)
        lines = fenced_lines(text)
        assert lines, "the hook must show at least one message"
        assert sum(len(line.encode()) + 1 for line in lines) <= BUDGET
        shown = [HOOK_LINE.match(line)["body"] for line in lines]
        seen += shown
        left = count - len(seen)
        if left:
            # the next message would not have fit
            next_line_bytes = len(lines[-1].encode()) - len(shown[-1]) + len(bodies[len(seen)])
            assert sum(len(line.encode()) + 1 for line in lines) + next_line_bytes + 1 > BUDGET
            noun = "message waits" if left == 1 else "messages wait"
            assert f"{left} more {noun}" in text
            assert f"inbox {sid}" in text  # and how to read them
            peeked = json.loads(run_relay("peek", sid).stdout)
            assert peeked["count"] + peeked["remaining"] == left
        else:
            assert "more message" not in text
    assert seen == bodies  # in order, each once
    assert run_relay("hook", input=hook_event(sid, tmp_path)).stdout == b""
    if size == 20_000:
        assert rounds == count  # one 20 KB message per start


# -- corrupt registry ---------------------------------------------------------------------------------

QUARANTINED_REGISTRY = re.compile(r"^registry\.json\.corrupt-\d{8}T\d{6}Z-\d+$")


@pytest.mark.parametrize(
    "garbage", [b'{"agents": {"x": ', b"[1, 2, 3]\n", b'{"agents": [], "names": {}}', b"\xff\xfe\x00"]
)
def test_corrupt_registry_is_kept_aside_reported_once_and_relay_keeps_working(run_relay, store_home, tmp_path, garbage):
    old = new_id()
    assert run_relay("register", "old", "--id", old).returncode == 0
    (store_home / "registry.json").write_bytes(garbage)

    first = run_relay("list")
    assert first.returncode == 0, first.stderr
    report = one_line(first.stderr)
    assert "registry.json" in report and "quarantine" in report
    kept = list((store_home / "quarantine").iterdir())
    assert len(kept) == 1 and QUARANTINED_REGISTRY.match(kept[0].name), kept
    assert kept[0].read_bytes() == garbage
    assert oct(kept[0].stat().st_mode & 0o777) == "0o600"

    # reported once: later commands are quiet and work
    sid = new_id()
    for args in (("list",), ("register", "fresh", "--id", sid), ("send", "fresh", "--", "hi"), ("list", "--json")):
        result = run_relay(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr == b"", (args, result.stderr)
    # the sessions registered before (migrated from an earlier registry.json) stay
    assert [e["id"] for e in json.loads(run_relay("list", "--json").stdout)] == [sid, old]
    assert [m["body"] for m in inbox(run_relay, sid)["messages"]] == ["hi"]
    # never overwritten
    assert kept[0].read_bytes() == garbage
    assert list((store_home / "quarantine").iterdir()) == kept


def test_corrupt_registry_second_time_gets_its_own_file(run_relay, store_home):
    for n, garbage in enumerate((b"{one", b"{two")):
        assert run_relay("register", f"s{n}", "--id", new_id()).returncode == 0
        (store_home / "registry.json").write_bytes(garbage)
        assert run_relay("send", "--id", new_id(), "--", "x").returncode == 0
    kept = sorted(p.read_bytes() for p in (store_home / "quarantine").iterdir())
    assert kept == [b"{one", b"{two"]


def test_hook_with_corrupt_registry_still_registers_and_delivers(run_relay, store_home, tmp_path):
    sid = new_id()
    assert run_relay("send", "--id", sid, "--", "waiting").returncode == 0
    (store_home / "registry.json").write_bytes(b"not json at all")
    result = run_relay("hook", input=hook_event(sid, tmp_path))
    assert result.returncode == 0
    assert one_line(result.stderr).startswith("[session-relay/hook] ")
    assert "waiting" in hook_text(result.stdout)
    assert sid in file_registry(store_home)["agents"]
    kept = list((store_home / "quarantine").iterdir())
    assert [p.read_bytes() for p in kept] == [b"not json at all"]


# -- garbage and half-written mailbox lines --------------------------------------------------------------


def test_garbage_and_torn_lines_are_quarantined_and_the_rest_delivered(run_relay, store_home):
    sid = new_id()
    assert run_relay("send", "--id", sid, "--", "m1").returncode == 0
    mailbox = store_home / "mailbox" / f"{sid}.jsonl"
    with mailbox.open("ab") as f:
        f.write(b"this is garbage\n")
    assert run_relay("send", "--id", sid, "--", "m2").returncode == 0
    with mailbox.open("ab") as f:
        f.write(b"[1, 2]\n\xff\xfe binary\n")
    assert run_relay("send", "--id", sid, "--", "m3").returncode == 0
    torn = b'{"id": "0a1b2c3d-0000-4000-8000-000000000000", "ts": "2026-01-01T00:00:00.000Z", "bo'
    with mailbox.open("ab") as f:
        f.write(torn)  # a writer died mid-line: no trailing newline
    assert run_relay("send", "--id", sid, "--", "m4").returncode == 0

    # the new line did not fuse with the torn one
    lines = mailbox.read_bytes().split(b"\n")
    assert torn in lines
    assert json.loads(lines[lines.index(torn) + 1])["body"] == "m4"

    result = run_relay("inbox", sid)
    assert result.returncode == 0
    assert [m["body"] for m in json.loads(result.stdout)["messages"]] == ["m1", "m2", "m3", "m4"]
    report = one_line(result.stderr)
    assert "4 unreadable line(s)" in report
    kept = b"".join(p.read_bytes() for p in (store_home / "quarantine").iterdir())
    assert kept.split(b"\n")[:-1] == [b"this is garbage", b"[1, 2]", b"\xff\xfe binary", torn]
    assert inbox(run_relay, sid)["count"] == 0


def test_hook_quarantines_bad_lines_and_delivers_the_good(run_relay, store_home, tmp_path):
    sid = new_id()
    mailbox_dir = store_home / "mailbox"
    assert run_relay("send", "--id", sid, "--", "good one").returncode == 0
    with (mailbox_dir / f"{sid}.jsonl").open("ab") as f:
        f.write(b'{"half": ')
    result = run_relay("hook", input=hook_event(sid, tmp_path))
    assert result.returncode == 0
    assert [HOOK_LINE.match(line)["body"] for line in fenced_lines(hook_text(result.stdout))] == ["good one"]
    assert one_line(result.stderr).startswith("[session-relay/hook] ")
    assert b'{"half": ' in b"".join(p.read_bytes() for p in (store_home / "quarantine").iterdir())


# -- read-only store and full file system (root only, private mount namespace) -------------------------

INNER = textwrap.dedent(
    """
    import json, os, subprocess, sys
    plan = json.loads(sys.argv[1])
    def sh(*args):
        subprocess.run(args, check=True, capture_output=True)
    for mount in plan["mounts"]:
        sh(*mount)
    out = []
    for step in plan["steps"]:
        if step[0] == "fill":
            n = 0
            try:
                with open(step[1], "wb") as f:
                    while True:
                        f.write(b"\\0" * 4096)
                        f.flush()
                        os.fsync(f.fileno())
                        n += 1
            except OSError:
                pass
            out.append({"filled": n})
        elif step[0] == "unlink":
            os.unlink(step[1])
            out.append({})
        elif step[0] == "snapshot":
            files = {}
            for root, _dirs, names in os.walk(plan["home"]):
                for name in names:
                    path = os.path.join(root, name)
                    if path != plan.get("filler") and name != ".lock":  # the lock file counts hand-overs
                        with open(path, "rb") as f:
                            files[os.path.relpath(path, plan["home"])] = f.read().hex()
            out.append({"files": files})
        else:
            args, stdin = step
            r = subprocess.run(
                plan["cmd"] + args, input=stdin.encode(), capture_output=True, env=plan["env"], timeout=60
            )
            text = {k: getattr(r, k).decode("utf-8", "replace") for k in ("stdout", "stderr")}
            out.append({"rc": r.returncode, **text})
    print(json.dumps(out))
    """
)


def in_namespace(tmp_path: Path, plan: dict) -> list[dict]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only or a tiny file system (chmod does not stop root)")
    if not shutil.which("unshare") or not shutil.which("mount"):
        pytest.skip("needs unshare(1) and mount(8) for a private mount namespace")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    script = tmp_path / "inner.py"
    script.write_text(INNER)
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, str(script), json.dumps(plan)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 and b"mount" in result.stderr:
        pytest.skip(f"mount failed in the namespace: {result.stderr.decode().strip()[-300:]}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_read_only_store_send_fails_cleanly_hook_exits_0(relay_cmd, env, run_relay, store_home, tmp_path):
    sid = new_id()
    assert run_relay("register", "ro", "--id", sid, "--dir", str(tmp_path)).returncode == 0
    assert run_relay("send", "ro", "--", "before").returncode == 0
    home = str(store_home)
    before = {
        str(p.relative_to(store_home)): p.read_bytes()
        for p in store_home.rglob("*")
        if p.is_file() and p.name != ".lock"
    }
    plan = {
        "home": home,
        "cmd": relay_cmd,
        "env": env,
        "mounts": [["mount", "--bind", home, home], ["mount", "-o", "remount,bind,ro", home]],
        "steps": [
            [["send", "ro", "--", "during"], ""],
            [["send", "--id", new_id(), "--", "new box"], ""],
            [["register", "other", "--id", new_id()], ""],
            [["hook"], hook_event(sid, tmp_path)],
            [["list"], ""],
        ],
    }
    send, send_new, register, hook, listed = in_namespace(tmp_path, plan)
    for result in (send, send_new, register):
        assert result["rc"] == 1, result
        assert len(result["stderr"].strip().splitlines()) == 1, result
        assert "Traceback" not in result["stderr"]
        assert "read-only" in result["stderr"].lower() or "cannot" in result["stderr"].lower(), result
    assert hook["rc"] == 0, hook
    assert all(line.startswith("[session-relay/hook] ") for line in hook["stderr"].splitlines()), hook
    assert listed["rc"] == 0, listed
    after = {
        str(p.relative_to(store_home)): p.read_bytes()
        for p in store_home.rglob("*")
        if p.is_file() and p.name != ".lock"
    }
    assert after == before
    assert [m["body"] for m in inbox(run_relay, sid)["messages"]] == ["before"]


def test_full_file_system_send_fails_with_no_space_and_writes_nothing(relay_cmd, env, run_relay, store_home, tmp_path):
    store_home.mkdir(mode=0o700)
    sid = new_id()
    home = str(store_home)
    filler = str(store_home / "filler")
    big = "w" * 20_000
    plan = {
        "home": home,
        "filler": filler,
        "cmd": relay_cmd,
        "env": env,
        "mounts": [["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", home]],
        "steps": [
            [["register", "full", "--id", sid, "--dir", str(tmp_path)], ""],  # 0
            [["send", "full", "--", "small one"], ""],  # 1
            ["fill", filler],  # 2
            ["snapshot"],  # 3
            [["send", "full", "--", big], ""],  # 4
            [["send", "--id", new_id(), "--", big], ""],  # 5
            [["register", "another-name-that-grows-the-registry", "--id", new_id()], ""],  # 6
            [["hook"], hook_event(sid, tmp_path)],  # 7
            ["snapshot"],  # 8
            ["unlink", filler],  # 9
            [["send", "full", "--", "after space freed"], ""],  # 10
            [["inbox", sid], ""],  # 11
        ],
    }
    out = in_namespace(tmp_path, plan)
    assert out[0]["rc"] == 0 and out[1]["rc"] == 0, out[:2]
    assert out[2]["filled"] > 0
    for result in (out[4], out[5]):
        assert result["rc"] == 1, result
        line = result["stderr"].strip()
        assert len(line.splitlines()) == 1, result
        assert "no space" in line.lower(), result
    assert out[6]["rc"] == 1 and "no space" in out[6]["stderr"].lower(), out[6]
    assert out[7]["rc"] == 0, out[7]
    assert all(line.startswith("[session-relay/hook] ") for line in out[7]["stderr"].splitlines()), out[7]
    before, after = out[3]["files"], out[8]["files"]
    # nothing half-written: every file that existed is byte for byte as it was (the hook could not
    # write its marker, so it took no mail)
    assert {k: after.get(k) for k in before} == before
    new_files = {k: v for k, v in after.items() if k not in before}
    assert all(v == "" for v in new_files.values()), new_files  # no partial content anywhere
    assert out[10]["rc"] == 0, out[10]
    got = json.loads(out[11]["stdout"])["messages"]
    bodies = [m["body"] for m in got]
    assert bodies[-1] == "after space freed"
    assert big not in bodies
    assert bodies.count("small one") == 1
    # and no empty leftover either (bug B-T3: the failed send to a new mailbox left an empty file)
    assert new_files == {}, f"files left behind by failed writes: {sorted(new_files)}"
