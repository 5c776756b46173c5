"""Benchmarks of the workloads users feel, against any build of relay.

    python benchmarks/bench_relay.py            # the full workloads (issue 2 / issue 5 sizes)
    python benchmarks/bench_relay.py --quick    # smaller counts, for a smoke run
    RELAY_CMD=./launcher python benchmarks/bench_relay.py

RELAY_CMD is a shell-style command line (default: this interpreter with `-m relay` from this
checkout). Every workload runs in its own throwaway store and transcript roots; nothing touches
the user's real store. Figures are wall-clock milliseconds per run (median / p90) or totals.
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import MCP_FRAMES, REPO, SCRUBBED, mailbox_line

MIB = 1 << 20


def relay_command() -> list[str]:
    configured = os.environ.get("RELAY_CMD")
    if configured:
        words = shlex.split(configured)
        if words and not os.path.isabs(words[0]) and os.sep in words[0]:
            words[0] = str(REPO / words[0])
        return words
    return [sys.executable, "-m", "relay"]


def new_id() -> str:
    return str(uuid.uuid4())


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".000Z"


class Sandbox:
    """A throwaway store, HOME and transcript roots, and a runner for the program under test."""

    def __init__(self, cmd: list[str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="relay-bench-")
        root = Path(self._dir.name)
        self.root = root
        self.home = root / "store"
        self.claude = root / "claude-projects"
        self.codex = root / "codex-sessions"
        (root / "home").mkdir()
        self.cmd = cmd
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        self.env.update(
            {
                "HOME": str(root / "home"),
                "AGENT_RELAY_HOME": str(self.home),
                "RELAY_CLAUDE_PROJECTS": str(self.claude),
                "RELAY_CODEX_SESSIONS": str(self.codex),
                "PYTHONPATH": str(REPO),
            }
        )

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.cmd, *args], input=input, capture_output=True, env=self.env, cwd=self.root, timeout=300, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"relay {' '.join(args)[:60]} failed ({result.returncode}): {result.stderr.decode()[:300]}"
            )
        return result

    def write_registry(self, count: int) -> None:
        self.home.mkdir(mode=0o700, exist_ok=True)
        agents, names = {}, {}
        for k in range(count):
            sid = new_id()
            agents[sid] = {
                "id": sid,
                "dir": f"/work/project-{k}",
                "name": f"session-{k:03d}",
                "tool": "codex" if k % 3 == 0 else "claude",
                "lastSeen": iso(time.time() - k),
            }
            names[f"session-{k:03d}"] = sid
        path = self.home / "registry.json"
        path.write_text(json.dumps({"agents": agents, "names": names}, indent=2))
        os.chmod(path, 0o600)

    def queue(self, recipient: str, count: int) -> None:
        """Put `count` messages in the mailbox directly, in the store's line format."""
        (self.home / "mailbox").mkdir(parents=True, mode=0o700, exist_ok=True)
        lines = [
            mailbox_line(
                new_id(), iso(time.time()), recipient, f"benchmark message {k}: " + "lorem ipsum " * 20, "bench"
            )
            for k in range(count)
        ]
        path = self.home / "mailbox" / f"{recipient}.jsonl"
        with path.open("a") as f:
            f.write("".join(lines))
        os.chmod(path, 0o600)

    def close(self) -> None:
        self._dir.cleanup()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):7.1f} ms   p90 {p90:7.1f} ms   (n={len(ordered)})"


# -- workloads --------------------------------------------------------------------------------------


def bench_hook_empty(cmd: list[str], runs: int) -> str:
    box = Sandbox(cmd)
    try:
        sid = new_id()
        event = json.dumps({"session_id": sid, "cwd": str(box.root), "source": "startup"}).encode()
        box.run("hook", input=event)  # the first start creates the store
        samples = [timed(lambda: box.run("hook", input=event)) for _ in range(runs)]
        return summary(samples)
    finally:
        box.close()


def bench_hook_queued(cmd: list[str], runs: int) -> str:
    box = Sandbox(cmd)
    try:
        sid = new_id()
        event = json.dumps({"session_id": sid, "cwd": str(box.root), "source": "startup"}).encode()
        box.run("hook", input=event)
        samples = []
        for _ in range(runs):
            box.queue(sid, 10)
            result = None

            def once() -> None:
                nonlocal result
                result = box.run("hook", input=event)

            samples.append(timed(once))
            text = json.loads(result.stdout)["hookSpecificOutput"]["additionalContext"]
            if "10 messages arrived" not in text:
                raise SystemExit("hook did not deliver the 10 queued messages")
        return summary(samples)
    finally:
        box.close()


def bench_list(cmd: list[str], runs: int) -> str:
    box = Sandbox(cmd)
    try:
        box.write_registry(200)
        lines = box.run("list").stdout.decode().splitlines()
        if len(lines) != 200:
            raise SystemExit(f"list printed {len(lines)} lines, expected 200")
        return summary([timed(lambda: box.run("list")) for _ in range(runs)])
    finally:
        box.close()


def bench_mcp(cmd: list[str], runs: int) -> str:
    box = Sandbox(cmd)
    try:
        sid = new_id()
        box.run("register", "bench", "--id", sid)
        env = {**box.env, "CLAUDE_CODE_SESSION_ID": sid}

        def session() -> None:
            proc = subprocess.Popen(
                [*cmd, "bus"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
            )
            answers = 0
            for frame in MCP_FRAMES:  # one at a time, waiting for each answer like a client does
                proc.stdin.write(json.dumps(frame).encode() + b"\n")
                proc.stdin.flush()
                if "id" in frame:
                    reply = json.loads(proc.stdout.readline())
                    if reply.get("id") != frame["id"] or "result" not in reply:
                        raise SystemExit(f"bad MCP reply {reply}")
                    answers += 1
            proc.stdin.close()
            proc.wait(timeout=30)
            if answers != 3:
                raise SystemExit("MCP session incomplete")

        return summary([timed(session) for _ in range(runs)])
    finally:
        box.close()


def _count_lines(box: Sandbox, sid: str) -> int:
    path = box.home / "mailbox" / f"{sid}.jsonl"
    return sum(1 for line in path.read_bytes().split(b"\n") if line.strip()) if path.exists() else 0


def bench_sequential_sends(cmd: list[str], count: int) -> str:
    box = Sandbox(cmd)
    try:
        sid = new_id()
        box.run("register", "target", "--id", sid)
        start = time.perf_counter()
        for k in range(count):
            box.run("send", "--id", sid, "--", f"sequential {k}")
        total = time.perf_counter() - start
        got = _count_lines(box, sid)
        return f"total {total:7.2f} s   {total / count * 1000:6.1f} ms/send   ({count} sends, {count - got} lost)"
    finally:
        box.close()


def bench_parallel_sends(cmd: list[str], writers: int, each: int) -> str:
    box = Sandbox(cmd)
    try:
        sid = new_id()
        box.run("register", "target", "--id", sid)
        failures = []

        def writer(w: int) -> None:
            for k in range(each):
                result = subprocess.run(
                    [*cmd, "send", "--id", sid, "--", f"parallel {w}-{k}"],
                    capture_output=True,
                    env=box.env,
                    timeout=300,
                    check=False,
                )
                if result.returncode != 0:
                    failures.append(result.stderr.decode().strip())

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=writers) as pool:
            list(pool.map(writer, range(writers)))
        total = time.perf_counter() - start
        sent = writers * each
        received: list[str] = []
        while True:  # one inbox shows at most 32 KiB: take until nothing remains
            inbox = json.loads(box.run("inbox", sid).stdout)
            received += [m["body"] for m in inbox["messages"]]
            if not inbox["remaining"] or not inbox["messages"]:
                break
        bodies = set(received)
        lost = sum(1 for w in range(writers) for k in range(each) if f"parallel {w}-{k}" not in bodies)
        return (
            f"total {total:7.2f} s   ({writers} writers x {each} = {sent} sends, {len(failures)} failed, "
            f"{lost} lost, {len(received) - len(bodies)} duplicated)"
        )
    finally:
        box.close()


def bench_discover(cmd: list[str], files: int, live: int, runs: int) -> str:
    box = Sandbox(cmd)
    try:
        old = time.time() - 3 * 86400
        codex_files = files // 10
        made = 0
        for k in range(files):
            sid = new_id()
            is_live = k % (files // live) == 0 and made < live
            cwd = f"/work/project-{k % 40}"
            if k < codex_files:
                day = box.codex / "2026" / "11" / f"{1 + k % 28:02d}"
                day.mkdir(parents=True, exist_ok=True)
                path = day / f"rollout-2026-11-01T00-00-00-{sid}.jsonl"
                first = {"type": "session_meta", "payload": {"id": sid, "cwd": cwd, "originator": "codex_cli_rs"}}
            else:
                folder = box.claude / cwd.replace("/", "-")
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{sid}.jsonl"
                first = {"type": "user", "sessionId": sid, "cwd": cwd, "message": {"role": "user", "content": "hi"}}
            head = (json.dumps(first) + "\n").encode()
            with path.open("wb") as f:
                f.write(head)
                if is_live:  # live files get real content all the way: discovery may read them
                    filler = (json.dumps({"type": "assistant", "cwd": cwd, "text": "x" * 900}) + "\n").encode()
                    while f.tell() < MIB:
                        f.write(filler)
                    f.truncate(MIB)
                else:  # old files are 1 MiB too, sparse: discovery must not open them at all
                    f.truncate(MIB)
            if is_live:
                made += 1
            else:
                os.utime(path, (old, old))
        rows = json.loads(box.run("discover", "--json", "--limit", "1000").stdout)
        if len(rows) != made:
            raise SystemExit(f"discover found {len(rows)} live sessions, expected {made}")
        samples = [timed(lambda: box.run("discover", "--json")) for _ in range(runs)]
        return summary(samples) + f"   ({files} files x 1 MiB, {made} live)"
    finally:
        box.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--only", help="comma-separated workload names to run")
    options = parser.parse_args()
    cmd = relay_command()
    q = options.quick
    workloads: list[tuple[str, str, Callable[[], str]]] = [
        ("hook-empty", "hook, empty inbox", lambda: bench_hook_empty(cmd, 10 if q else 30)),
        ("hook-10", "hook, 10 queued messages", lambda: bench_hook_queued(cmd, 5 if q else 20)),
        ("list-200", "list over 200 sessions", lambda: bench_list(cmd, 5 if q else 20)),
        ("mcp", "MCP session (initialize + tools/list + whoami)", lambda: bench_mcp(cmd, 5 if q else 15)),
        ("seq-send", "sequential sends", lambda: bench_sequential_sends(cmd, 100 if q else 1000)),
        ("par-send", "parallel sends", lambda: bench_parallel_sends(cmd, 8, 20 if q else 100)),
        ("discover", "discover", lambda: bench_discover(cmd, 200 if q else 2000, 20, 3 if q else 10)),
    ]
    chosen = set(options.only.split(",")) if options.only else None
    print(f"relay benchmarks: RELAY_CMD={shlex.join(cmd)}{'  (--quick)' if q else ''}")
    print(f"host: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    began = time.perf_counter()
    for key, label, run in workloads:
        if chosen and key not in chosen:
            continue
        print(f"  {label:<48} {run()}", flush=True)
    print(f"done in {time.perf_counter() - began:.0f} s (load now {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
