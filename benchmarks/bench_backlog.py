"""What a planted backlog costs a prompt hook: `relay hook` at UserPromptSubmit over a huge mailbox,
against the same hook over an empty one and `python3 -I -S -c pass`, measured side by side.

    python3 benchmarks/bench_backlog.py [LABEL=]RELAY ... [--sources LABEL=DIR ...] [--backlog-mib 1024] [--rounds 7]

RELAY is a relay binary or the launcher (a path); `--sources LABEL=DIR` runs `python3 -m relay` from
the checkout DIR instead (for code not frozen yet, or another branch's). Each relay gets its own
throwaway store holding a mailbox of `--backlog-mib` MiB of valid mail, written directly in the
store's format as only a hand or an older relay can leave it (past RELAY_MAILBOX_MAX), and an empty
store. Each round runs every command once, in an order rotated by one place every round, so that
whatever else the machine does hits all of them alike; a hook takes about 32 KiB of the backlog
per run, so the backlog stays (nearly) the same size throughout. Printed per command: the median and
p90 wall time, the ratio of the median to python3's, and the median bytes read (`rchar` of
/proc/<pid>/io, children included) and written (`wchar`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

from _common import REPO, SCRUBBED, mailbox_line

SESSION = str(uuid.UUID(int=7))


class Command:
    """One program line to time, with its stdin file, environment and samples."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], stdin: str = os.devnull) -> None:
        self.label, self.argv, self.env, self.stdin = label, argv, env, stdin
        self.ms: list[float] = []
        self.rchar: list[int] = []
        self.wchar: list[int] = []

    def run(self) -> None:
        """posix_spawn, then wait without reaping (to read its I/O counts), then reap."""
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, self.stdin, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ]
        start = time.perf_counter()
        pid = os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=actions)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        self.ms.append((time.perf_counter() - start) * 1000)
        with open(f"/proc/{pid}/io") as f:
            io = dict(line.split(": ") for line in f.read().splitlines())
        self.rchar.append(int(io["rchar"]))
        self.wchar.append(int(io["wchar"]))
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{self.label}: exit status {os.waitstatus_to_exitcode(status)}")


def sandbox_env(root: str, pythonpath: str | None = None) -> dict[str, str]:
    """This environment without relay's own variables, with HOME and the store inside `root`."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("PYTHON")}
    os.makedirs(os.path.join(root, "home"), exist_ok=True)
    env.update(HOME=os.path.join(root, "home"), AGENT_RELAY_HOME=os.path.join(root, "store"))
    env.update(RELAY_CLAUDE_PROJECTS=os.path.join(root, "cp"), RELAY_CODEX_SESSIONS=os.path.join(root, "cs"))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def plant_backlog(store: str, mib: int) -> int:
    """A mailbox of `mib` MiB of valid mail for SESSION, written in the store's format; its size."""
    os.makedirs(os.path.join(store, "mailbox"), mode=0o700, exist_ok=True)
    os.chmod(store, 0o700)
    path = os.path.join(store, "mailbox", f"{SESSION}.jsonl")
    body = "y" * 300
    block = "".join(
        mailbox_line(str(uuid.uuid4()), "2026-11-30T10:00:00.000Z", SESSION, f"m{n}-{body}", "flood")
        for n in range(2000)
    ).encode()
    with open(path, "wb") as out:
        while out.tell() < mib << 20:
            out.write(block)
    os.chmod(path, 0o600)
    return os.path.getsize(path)


def event_file(root: str) -> str:
    path = os.path.join(root, "prompt.json")
    with open(path, "w") as f:
        json.dump({"session_id": SESSION, "cwd": root, "hook_event_name": "UserPromptSubmit", "prompt": "hi"}, f)
    return path


def relay_commands(label: str, argv: list[str], root: str, mib: int, pythonpath: str | None) -> list[Command]:
    """The hook over a planted backlog and over an empty store, each with a store of its own."""
    made = []
    for case in ("backlog", "empty"):
        where = os.path.join(root, label, case)
        env = sandbox_env(where, pythonpath)
        if case == "backlog":
            size = plant_backlog(env["AGENT_RELAY_HOME"], mib)
            print(f"{label}: planted {size / (1 << 20):.0f} MiB", file=sys.stderr)
        made.append(Command(f"{label} hook, {case}", [*argv, "hook"], env, event_file(where)))
    return made


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("relays", nargs="*", help="[LABEL=]PATH of a relay binary or launcher")
    parser.add_argument("--sources", action="append", default=[], help="LABEL=DIR: python3 -m relay from DIR")
    parser.add_argument("--backlog-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not args.relays and not args.sources:
        args.sources = [f"sources={REPO}"]
    root = tempfile.mkdtemp(prefix="relay-backlog-")
    commands = [Command("python3 -I -S -c pass", [sys.executable, "-I", "-S", "-c", "pass"], dict(os.environ))]
    for spec in args.relays:
        label, _, path = spec.rpartition("=")
        path = os.path.abspath(path)
        commands += relay_commands(label or os.path.basename(path), [path], root, args.backlog_mib, None)
    for spec in args.sources:
        label, _, directory = spec.rpartition("=")
        argv = [sys.executable, "-m", "relay"]
        commands += relay_commands(label or "sources", argv, root, args.backlog_mib, os.path.abspath(directory))
    for command in commands:  # a warm-up run each, outside the figures
        command.run()
        command.ms.clear(), command.rchar.clear(), command.wchar.clear()
    for n in range(args.rounds):
        for command in commands[n % len(commands) :] + commands[: n % len(commands)]:
            command.run()
    base = statistics.median(commands[0].ms)
    print(f"{'command':36} {'median ms':>10} {'p90 ms':>9} {'x python':>9} {'read':>11} {'written':>11}")
    for c in commands:
        median = statistics.median(c.ms)
        read, written = statistics.median(c.rchar), statistics.median(c.wchar)
        print(
            f"{c.label:36} {median:10.1f} {p90(c.ms):9.1f} {median / base:9.1f} "
            f"{read / 1024:9.0f}Ki {written / 1024:9.0f}Ki"
        )
    print(f"({args.rounds} rounds, backlog {args.backlog_mib} MiB; stores under {root}: remove it when done)")


if __name__ == "__main__":
    main()
