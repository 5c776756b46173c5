"""Benchmarks of the workloads users feel, against any build of relay, on either store.

    python benchmarks/bench_relay.py            # the full workloads (the full sizes)
    python benchmarks/bench_relay.py --quick    # smaller counts, for a smoke run
    RELAY_CMD=./launcher python benchmarks/bench_relay.py
    python benchmarks/bench_relay.py --stores files,redis   # the Redis store next to the files

RELAY_CMD is a shell-style command line (default: this interpreter with `-m relay` from this
checkout). Every workload runs in its own throwaway store and transcript roots; nothing touches
the user's real store. Figures are wall-clock milliseconds per run (median / p90) or totals.

With `--stores files,redis` each workload runs once per store with their rounds interleaved (round
r runs the stores in an order rotated by r), so load on the machine hits both alike, and the Redis
line ends with its ratio to the files line. The Redis store is a throwaway `redis-server` started
here (tests/redis_server.py: 127.0.0.1, a free port, a random password, no persistence), one
database per workload; this interpreter needs redis-py (it queues mail and registers sessions
in-process to set the workloads up).
"""

import argparse
import json
import os
import platform
import shlex
import shutil
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
    """A throwaway store, HOME and transcript roots, and a runner for the program under test.

    `url` (a Redis database of the throwaway server) puts the store in Redis through
    AGENT_RELAY_URL; `<home>` then holds only what stays on this host."""

    def __init__(self, cmd: list[str], url: str | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="relay-bench-")
        root = Path(self._dir.name)
        self.root = root
        self.home = root / "store"
        self.claude = root / "claude-projects"
        self.codex = root / "codex-sessions"
        (root / "home").mkdir()
        self.cmd = cmd
        self.url = url
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        self.env.pop("AGENT_RELAY_URL", None)
        self.env.update(
            {
                "HOME": str(root / "home"),
                "AGENT_RELAY_HOME": str(self.home),
                "RELAY_CLAUDE_PROJECTS": str(self.claude),
                "RELAY_CODEX_SESSIONS": str(self.codex),
                "PYTHONPATH": str(REPO),
            }
        )
        if url:
            self.env["AGENT_RELAY_URL"] = url

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.cmd, *args], input=input, capture_output=True, env=self.env, cwd=self.root, timeout=300, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"relay {' '.join(args)[:60]} failed ({result.returncode}): {result.stderr.decode()[:300]}"
            )
        return result

    def _redis_store(self):  # type: ignore[no-untyped-def]
        """The Redis store in this process, for setting a workload up (never timed)."""
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from relay.store.redisdb import RedisStore

        return RedisStore(self.url, home=str(self.home))

    def write_registry(self, count: int) -> None:
        """`count` sessions named session-000..., written straight into the store."""
        sessions = [(new_id(), k) for k in range(count)]
        if self.url:
            store = self._redis_store()
            for sid, k in sessions:
                store.register(
                    sid,
                    directory=f"/work/project-{k}",
                    name=f"session-{k:03d}",
                    tool="codex" if k % 3 == 0 else "claude",
                )
            store.close()
            return
        self.home.mkdir(mode=0o700, exist_ok=True)
        agents, names = {}, {}
        for sid, k in sessions:
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
        """Put `count` messages in the mailbox directly: in the store's line format (files), or
        through the Redis store's enqueue (one script per message, as `relay send` runs it)."""
        lines = [
            mailbox_line(
                new_id(), iso(time.time()), recipient, f"benchmark message {k}: " + "lorem ipsum " * 20, "bench"
            )
            for k in range(count)
        ]
        if self.url:
            store = self._redis_store()
            for line in lines:
                store.enqueue(recipient, json.loads(line))
            store.close()
            return
        (self.home / "mailbox").mkdir(parents=True, mode=0o700, exist_ok=True)
        path = self.home / "mailbox" / f"{recipient}.jsonl"
        with path.open("a") as f:
            f.write("".join(lines))
        os.chmod(path, 0o600)

    def drain(self, sid: str) -> list[str]:
        """Every queued body, taken through `relay inbox` (one inbox shows at most 32 KiB)."""
        received: list[str] = []
        while True:
            inbox = json.loads(self.run("inbox", sid).stdout)
            received += [m["body"] for m in inbox["messages"]]
            if not inbox["remaining"] or not inbox["messages"]:
                return received

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
# Each one sets itself up in a sandbox, then `once()` is one timed round (ms) and `report(samples)`
# is its line, which checks what the rounds did (nothing lost) and fails loudly when they did not.


class Workload:
    rounds = 1

    def __init__(self, box: Sandbox) -> None:
        self.box = box

    def once(self) -> float:
        raise NotImplementedError

    def report(self, samples: list[float]) -> str:
        return summary(samples)


class HookEmpty(Workload):
    def __init__(self, box: Sandbox, runs: int) -> None:
        super().__init__(box)
        self.rounds = runs
        self.event = json.dumps({"session_id": new_id(), "cwd": str(box.root), "source": "startup"}).encode()
        box.run("hook", input=self.event)  # the first start creates the store and registers

    def once(self) -> float:
        return timed(lambda: self.box.run("hook", input=self.event))


class HookQueued(HookEmpty):
    def once(self) -> float:
        sid = json.loads(self.event)["session_id"]
        self.box.queue(sid, 10)
        result: list[subprocess.CompletedProcess] = []
        took = timed(lambda: result.append(self.box.run("hook", input=self.event)))
        text = json.loads(result[0].stdout)["hookSpecificOutput"]["additionalContext"]
        if "10 messages arrived" not in text:
            raise SystemExit("hook did not deliver the 10 queued messages")
        return took


class ListMany(Workload):
    def __init__(self, box: Sandbox, runs: int) -> None:
        super().__init__(box)
        self.rounds = runs
        box.write_registry(200)
        lines = box.run("list").stdout.decode().splitlines()
        if len(lines) != 200:
            raise SystemExit(f"list printed {len(lines)} lines, expected 200")

    def once(self) -> float:
        return timed(lambda: self.box.run("list"))


class McpSession(Workload):
    def __init__(self, box: Sandbox, runs: int) -> None:
        super().__init__(box)
        self.rounds = runs
        sid = new_id()
        box.run("register", "bench", "--id", sid)
        self.env = {**box.env, "CLAUDE_CODE_SESSION_ID": sid}

    def once(self) -> float:
        return timed(self._session)

    def _session(self) -> None:
        proc = subprocess.Popen(
            [*self.box.cmd, "bus"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        assert proc.stdin and proc.stdout
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


class SequentialSends(Workload):
    """One round = one `relay send`; the report adds the total and what did not arrive."""

    def __init__(self, box: Sandbox, count: int) -> None:
        super().__init__(box)
        self.rounds = count
        self.sid = new_id()
        self.sent = 0
        box.run("register", "target", "--id", self.sid)

    def once(self) -> float:
        body = f"sequential {self.sent}"
        self.sent += 1
        return timed(lambda: self.box.run("send", "--id", self.sid, "--", body))

    def report(self, samples: list[float]) -> str:
        got = set(self.box.drain(self.sid))
        lost = sum(1 for k in range(self.sent) if f"sequential {k}" not in got)
        return f"{summary(samples)}   total {sum(samples) / 1000:6.2f} s ({self.sent} sends, {lost} lost)"


class ParallelSends(Workload):
    """One round: `writers` threads each run `each` sends one after another, all at once."""

    def __init__(self, box: Sandbox, writers: int, each: int) -> None:
        super().__init__(box)
        self.writers, self.each = writers, each
        self.sid = new_id()
        self.failures: list[str] = []
        box.run("register", "target", "--id", self.sid)

    def _writer(self, w: int) -> None:
        for k in range(self.each):
            result = subprocess.run(
                [*self.box.cmd, "send", "--id", self.sid, "--", f"parallel {w}-{k}"],
                capture_output=True,
                env=self.box.env,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                self.failures.append(result.stderr.decode().strip())

    def once(self) -> float:
        def all_writers() -> None:
            with ThreadPoolExecutor(max_workers=self.writers) as pool:
                list(pool.map(self._writer, range(self.writers)))

        return timed(all_writers)

    def report(self, samples: list[float]) -> str:
        received = self.box.drain(self.sid)
        bodies = set(received)
        lost = sum(1 for w in range(self.writers) for k in range(self.each) if f"parallel {w}-{k}" not in bodies)
        first = f"; first failure: {self.failures[0][:120]}" if self.failures else ""
        return (
            f"total {sum(samples) / 1000:7.2f} s   ({self.writers} writers x {self.each} = {self.writers * self.each}"
            f" sends, {len(self.failures)} failed, {lost} lost, {len(received) - len(bodies)} duplicated{first})"
        )


class Discover(Workload):
    def __init__(self, box: Sandbox, files: int, live: int, runs: int) -> None:
        super().__init__(box)
        self.rounds = runs
        self.files = files
        self.made = _make_transcripts(box, files, live)
        rows = json.loads(box.run("discover", "--json", "--limit", "1000").stdout)
        if len(rows) != self.made:
            raise SystemExit(f"discover found {len(rows)} live sessions, expected {self.made}")

    def once(self) -> float:
        return timed(lambda: self.box.run("discover", "--json"))

    def report(self, samples: list[float]) -> str:
        return summary(samples) + f"   ({self.files} files x 1 MiB, {self.made} live)"


def _make_transcripts(box: Sandbox, files: int, live: int) -> int:
    """`files` transcripts of 1 MiB (10% Codex), `live` of them recent with real content; the old
    ones are sparse and dated 3 days back, so discovery must not open them. Returns the live count."""
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
    return made


# -- running them -----------------------------------------------------------------------------------


class Worlds:
    """The stores to compare: "files", and "redis" on a throwaway redis-server (one database per
    workload, so each starts empty)."""

    def __init__(self, names: list[str], scratch: str) -> None:
        self.names = names
        self.server = None
        self._db = 0
        if "redis" in names:
            sys.path.insert(0, str(REPO / "tests"))
            from redis_server import RedisServer

            self.server = RedisServer(Path(scratch) / "redis")

    def url(self, world: str) -> str | None:
        if world == "files" or self.server is None:
            return None
        self._db = self._db % 15 + 1  # 16 databases; each workload gets the next one, emptied
        with self.server.client(self._db) as client:
            client.flushdb()
        return self.server.url_for(self._db)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def baseline() -> float:
    """One `python3 -I -S -c pass` (ms): the targets in docs/benchmarks.md are ratios to it, from the same rounds."""
    python = shutil.which("python3") or sys.executable
    return timed(lambda: subprocess.run([python, "-I", "-S", "-c", "pass"], check=True))


def run_workload(cmd: list[str], worlds: Worlds, make: Callable[[Sandbox], Workload]) -> dict[str, str]:
    """Set the workload up in each world, run its rounds interleaved (with one baseline per round),
    and return each world's line, with its ratio to the baseline and, for Redis, to the files."""
    boxes = {world: Sandbox(cmd, worlds.url(world)) for world in worlds.names}
    try:
        loads = {world: make(box) for world, box in boxes.items()}
        samples: dict[str, list[float]] = {world: [] for world in worlds.names}
        base: list[float] = []
        rounds = max(load.rounds for load in loads.values())
        for r in range(rounds):
            order = worlds.names[r % len(worlds.names) :] + worlds.names[: r % len(worlds.names)]
            if rounds > 1:
                base.append(baseline())
            for world in order:
                samples[world].append(loads[world].once())
        lines = {world: loads[world].report(samples[world]) for world in worlds.names}
        # one round (the parallel sends) is a total: compare totals, and no baseline
        figure = {world: statistics.median(s) if rounds > 1 else sum(s) for world, s in samples.items()}
        for world in worlds.names:
            if base:
                lines[world] += f"   [{figure[world] / statistics.median(base):4.2f} x python]"
            if world != "files" and "files" in figure:
                lines[world] += f"   [{figure[world] / figure['files']:4.2f} x files]"
        return lines
    finally:
        for box in boxes.values():
            box.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--only", help="comma-separated workload names to run")
    parser.add_argument("--stores", default="files", help="files, redis or files,redis (default: files)")
    parser.add_argument("--sends", type=int, help="sequential sends per store (default 1000, 100 with --quick)")
    options = parser.parse_args()
    cmd = relay_command()
    q = options.quick
    sends = options.sends or (100 if q else 1000)
    stores = [s for s in options.stores.split(",") if s]
    if not stores or any(s not in ("files", "redis") for s in stores):
        parser.error("--stores takes files, redis or files,redis")
    workloads: list[tuple[str, str, Callable[[Sandbox], Workload]]] = [
        ("hook-empty", "hook, empty inbox", lambda box: HookEmpty(box, 10 if q else 30)),
        ("hook-10", "hook, 10 queued messages", lambda box: HookQueued(box, 5 if q else 20)),
        ("list-200", "list over 200 sessions", lambda box: ListMany(box, 5 if q else 20)),
        ("mcp", "MCP session (initialize + tools/list + whoami)", lambda box: McpSession(box, 5 if q else 15)),
        ("seq-send", "sequential sends (per send)", lambda box: SequentialSends(box, sends)),
        ("par-send", "parallel sends", lambda box: ParallelSends(box, 8, 20 if q else 100)),
        ("discover", "discover", lambda box: Discover(box, 200 if q else 2000, 20, 3 if q else 10)),
    ]
    chosen = set(options.only.split(",")) if options.only else None
    if chosen and chosen - {key for key, _, _ in workloads}:
        parser.error(f"unknown workload(s): {', '.join(sorted(chosen - {key for key, _, _ in workloads}))}")
    print(f"relay benchmarks: RELAY_CMD={shlex.join(cmd)}{'  (--quick)' if q else ''}  stores: {', '.join(stores)}")
    print(f"host: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="relay-bench-worlds-") as scratch:
        worlds = Worlds(stores, scratch)
        try:
            for key, label, make in workloads:
                if chosen and key not in chosen:
                    continue
                lines = run_workload(cmd, worlds, make)
                if len(stores) == 1:
                    print(f"  {label:<48} {lines[stores[0]]}", flush=True)
                else:
                    print(f"  {label}", flush=True)
                    for world in stores:
                        print(f"    {world:<6} {lines[world]}", flush=True)
        finally:
            worlds.close()
    print(f"done in {time.perf_counter() - began:.0f} s (load now {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
