"""Many processes at once (black-box, through RELAY_CMD): nothing lost, nothing torn, nothing doubled."""

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import fence_parts, file_registry, new_id

SENDERS = 16
SENDS_EACH = 25


def _run(relay_cmd, env, cwd, *args, input=None):
    return subprocess.run(
        [*relay_cmd, *args], capture_output=True, env=env, cwd=cwd, input=input, timeout=120, check=False
    )


def _mailbox_lines(store_home: Path, sid: str) -> list[dict]:
    path = store_home / "mailbox" / f"{sid}.jsonl"
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def test_16_senders_x_25_plus_concurrent_registers(relay_cmd, env, store_home, tmp_path, run_relay):
    recipient = new_id()
    assert run_relay("register", "target", "--id", recipient).returncode == 0
    register_ids = {f"name-{k}": new_id() for k in range(24)}

    def sender(p: int) -> list[subprocess.CompletedProcess]:
        return [
            _run(relay_cmd, env, tmp_path, "send", "--id", recipient, "--", f"msg-{p}-{i}") for i in range(SENDS_EACH)
        ]

    def registrar(chunk: list[str]) -> list[subprocess.CompletedProcess]:
        return [_run(relay_cmd, env, tmp_path, "register", name, "--id", register_ids[name]) for name in chunk]

    names = sorted(register_ids)
    with ThreadPoolExecutor(max_workers=SENDERS + 4) as pool:
        sends = [pool.submit(sender, p) for p in range(SENDERS)]
        regs = [pool.submit(registrar, names[k::4]) for k in range(4)]
        results = [r for f in sends + regs for r in f.result()]
    failed = [(r.args[-1], r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failed == []

    # The mailbox file: every line parses, every message exactly once.
    lines = _mailbox_lines(store_home, recipient)
    expected = sorted(f"msg-{p}-{i}" for p in range(SENDERS) for i in range(SENDS_EACH))
    assert sorted(m["body"] for m in lines) == expected
    assert len({m["id"] for m in lines}) == len(lines)
    # Each sender's own messages keep their order.
    for p in range(SENDERS):
        mine = [int(m["body"].rsplit("-", 1)[1]) for m in lines if m["body"].startswith(f"msg-{p}-")]
        assert mine == list(range(SENDS_EACH))

    # Every registration present, registry parses.
    registry = file_registry(store_home)
    assert registry["names"] == {"target": recipient, **register_ids}
    assert set(registry["agents"]) == {recipient, *register_ids.values()}

    # And through the program: inbox delivers them all once, then nothing.
    # (in batches of at most 32 KiB, each saying how many remain)
    got = drain(run_relay, "target")
    assert len(got) == len(expected)
    assert sorted(m["body"] for m in got) == expected
    again = json.loads(run_relay("inbox", "target").stdout)
    assert again["count"] == 0
    assert not list(store_home.glob("quarantine/*"))


def drain(run_relay, who: str) -> list[dict]:
    """Every message, taking batch after batch while the inbox says more remain."""
    messages: list[dict] = []
    while True:
        result = run_relay("inbox", who)
        assert result.returncode == 0, result.stderr
        got = json.loads(result.stdout)
        messages += got["messages"]
        assert len(got["messages"]) == got["count"]
        if not got["remaining"]:
            return messages
        assert got["count"], "inbox made no progress"


HOOK_LINE = re.compile(r"^- from (?P<sender>.+?) \((?P<ts>[^)]*)\)(?P<re> \(redelivered\))?: (?P<body>.*)$")


def hook_bodies(stdout: bytes) -> list[str]:
    """The bodies inside the fence of a hook's output."""
    if not stdout.strip():
        return []
    text = json.loads(stdout)["hookSpecificOutput"]["additionalContext"]
    inside = "\n".join(fence_parts(text)[2])
    return [HOOK_LINE.match(line)["body"] for line in inside.split("\n") if line]


def test_concurrent_takers_and_senders_lose_and_double_nothing(relay_cmd, env, store_home, tmp_path, run_relay):
    recipient = new_id()
    assert run_relay("register", "target", "--id", recipient).returncode == 0
    senders, each = 6, 15
    event = json.dumps({"session_id": recipient, "cwd": str(tmp_path), "source": "resume"}).encode()
    done = {"senders": 0}

    def sender(p: int) -> list[subprocess.CompletedProcess]:
        out = [_run(relay_cmd, env, tmp_path, "send", "target", "--", f"cc-{p}-{i}") for i in range(each)]
        done["senders"] += 1
        return out

    def taker(kind: str) -> list[tuple[str, subprocess.CompletedProcess]]:
        out = []
        while done["senders"] < senders:
            if kind == "hook":
                out.append((kind, _run(relay_cmd, env, tmp_path, "hook", input=event)))
            else:
                out.append((kind, _run(relay_cmd, env, tmp_path, "inbox", recipient)))
        return out

    with ThreadPoolExecutor(max_workers=senders + 3) as pool:
        takers = [pool.submit(taker, kind) for kind in ("inbox", "inbox", "hook")]
        sends = [pool.submit(sender, p) for p in range(senders)]
        send_results = [r for f in sends for r in f.result()]
        take_results = [r for f in takers for r in f.result()]
    assert [r.stderr for r in send_results if r.returncode != 0] == []
    assert [r.stderr for _, r in take_results if r.returncode != 0 or r.stderr] == []

    delivered: list[str] = []
    ids: list[str] = []
    for kind, result in take_results:
        if kind == "hook":
            delivered += hook_bodies(result.stdout)
        else:
            got = json.loads(result.stdout)
            assert all(not m.get("redelivered") for m in got["messages"])
            delivered += [m["body"] for m in got["messages"]]
            ids += [m["id"] for m in got["messages"]]
    final = drain(run_relay, recipient)
    delivered += [m["body"] for m in final]
    assert all(not m.get("redelivered") for m in final)

    expected = sorted(f"cc-{p}-{i}" for p in range(senders) for i in range(each))
    lost = sorted(set(expected) - set(delivered))
    doubled = sorted(b for b in set(delivered) if delivered.count(b) > 1)
    takes = [(kind, r.returncode, r.stdout[:300], r.stderr[:300]) for kind, r in take_results]
    assert (lost, doubled) == ([], []), f"lost {lost}, doubled {doubled}; takes: {takes}"
    assert sorted(delivered) == expected
    assert len(ids) == len(set(ids))
    assert len(take_results) >= 3


# A busy loop that stops itself: the test stops it sooner, but a killed test leaves nothing spinning.
CPU_HOG = "import time\nend = time.monotonic() + 240\nwhile time.monotonic() < end:\n    pass\n"


def test_64_senders_on_a_loaded_machine_all_get_the_lock(relay_cmd, env, store_home, tmp_path, run_relay):
    """docs/store.md: the store lock is a blocking kernel lock bounded by the 3 s deadline, so waiters
    are woken when it is free rather than polling past their turn: 64 concurrent senders while two CPU
    hogs run (more runnable processes than a small machine has cores) all get it, none fails with
    `lock busy`, and each message is stored exactly once."""
    senders, each = 64, 4
    recipient = new_id()
    assert run_relay("register", "target", "--id", recipient).returncode == 0
    hogs = [subprocess.Popen([sys.executable, "-c", CPU_HOG]) for _ in range(2)]
    try:

        def sender(p: int) -> list[subprocess.CompletedProcess]:
            return [
                _run(relay_cmd, env, tmp_path, "send", "--id", recipient, "--", f"fair-{p}-{i}") for i in range(each)
            ]

        with ThreadPoolExecutor(max_workers=senders) as pool:
            results = [r for f in [pool.submit(sender, p) for p in range(senders)] for r in f.result(timeout=600)]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=10)
    failed = [(r.args[-1], r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failed == []
    lines = _mailbox_lines(store_home, recipient)
    assert sorted(m["body"] for m in lines) == sorted(f"fair-{p}-{i}" for p in range(senders) for i in range(each))
    assert len({m["id"] for m in lines}) == len(lines) == senders * each
