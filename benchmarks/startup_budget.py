"""Start-up budget of the frozen binary, checked without a clock: CI fails when a start costs more.

    python3 benchmarks/startup_budget.py [--binary PATH] [--budget FILE]    # check (exit 1 if over)
    python3 benchmarks/startup_budget.py --record                           # write a new budget

Wall-clock ratios (bench_startup.py) need an idle machine and many rounds. This measures what does
not depend on the machine's load, for the starts that run most often: `--version`; `relay hook`
with nothing to deliver at a UserPromptSubmit and at a SessionStart of a registered session; the
hook delivering 10 messages; one MCP session (initialize, tools/list, whoami). Per start:

- instructions: user-space instructions retired by the whole start, dynamic loader included,
  counted by valgrind (`--tool=callgrind`, following the extractor's exec). More imports, more
  constants to unpack, a bigger module table to search or more work on the hot path show here; the
  least of three runs is taken. The build that froze redis-py in as compiled C is 3.4-4.0 % over the
  budget of the build that freezes it as bytecode with the loader patched (build/patch_nuitka.py).

Peak RSS and minor faults were tried and left out: the kernel maps file pages around a fault in
batches (large folios of the page cache), so both moved by 10-20 % with the page cache's state
between two runs of one binary.

The binary carries its own loader, libc and Python, so its counts do not depend on the host's
Python; `python3 -I -S -c pass` is counted too, for the ratio printed next to each line, not for the
check. The budget file holds the recorded figures; a start fails the check when a figure exceeds
its budget by more than the tolerance below. A change that is meant to cost more re-records the
budget (`--record`) in the same commit, so the cost is a visible decision, not an accident.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

from _common import MCP_FRAMES, REPO, mailbox_line

BUDGET = REPO / "benchmarks" / "startup-budget.json"
# Allowed growth over the recorded figure. Most starts vary by ~0.2 % run to run; the hook
# delivering mail varied by up to 2.5 % (single runs), so each start counts its least of RUNS runs.
TOLERANCE = 0.02
RUNS = 3
SESSION = str(uuid.UUID(int=1))


def host_triple() -> str:
    cpu = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine())
    if cpu is None or sys.platform != "linux":
        raise SystemExit(f"startup_budget: no Linux binary for {sys.platform} {platform.machine()}")
    return f"{cpu}-unknown-linux-musl"


class Start:
    """One start to measure: argv after the binary, the stdin file, and what to do before each run."""

    def __init__(self, name: str, argv: list[str], stdin: str, prepare=None) -> None:
        self.name, self.argv, self.stdin, self.prepare = name, argv, stdin, prepare


def sandbox(root: str) -> tuple[dict[str, str], list[Start]]:
    """A fixed environment (nothing inherited, so a CI machine and a laptop count the same) with
    its own HOME and store, and the starts to measure in it."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.path.join(root, "home"),
        "AGENT_RELAY_HOME": os.path.join(root, "store"),
        "RELAY_CLAUDE_PROJECTS": os.path.join(root, "claude-projects"),
        "RELAY_CODEX_SESSIONS": os.path.join(root, "codex-sessions"),
    }
    os.makedirs(env["HOME"])

    def event(name: str) -> str:
        body = {"session_id": SESSION, "cwd": root, "hook_event_name": name}
        if name == "UserPromptSubmit":
            body["prompt"] = "hello"
        path = os.path.join(root, f"{name}.json")
        with open(path, "w") as f:
            json.dump(body, f)
        return path

    mailbox = os.path.join(env["AGENT_RELAY_HOME"], "mailbox", f"{SESSION}.jsonl")
    ts = "2026-11-30T12:00:00.000Z"
    ten = "".join(mailbox_line(str(uuid.UUID(int=100 + i)), ts, SESSION, f"message {i}", "cli") for i in range(10))

    def queue_ten() -> None:
        with open(mailbox, "w") as f:
            f.write(ten)

    mcp = os.path.join(root, "mcp.jsonl")
    with open(mcp, "w") as f:
        f.write("".join(json.dumps(frame) + "\n" for frame in MCP_FRAMES))
    starts = [
        Start("--version", ["--version"], os.devnull),
        Start("hook SessionStart", ["hook"], event("SessionStart")),
        Start("hook UserPromptSubmit", ["hook"], event("UserPromptSubmit")),
        Start("hook delivering 10", ["hook"], event("UserPromptSubmit"), queue_ten),
        Start("mcp session", ["bus"], mcp),
    ]
    return env, starts


def instructions(argv: list[str], env: dict[str, str], stdin: str, valgrind: str) -> int:
    """Instructions the whole start retires (every exec'd program of it), counted by callgrind."""
    with open(stdin, "rb") as f:
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", "--trace-children=yes", *argv],
            stdin=f,
            capture_output=True,
            env=env,
            timeout=300,
            check=False,
        )
    counts = re.findall(rb"^==\d+== Collected : (\d+)$", done.stderr, re.MULTILINE)
    if done.returncode != 0 or not counts:
        tail = done.stderr.decode(errors="replace")[-400:]
        raise SystemExit(f"startup_budget: valgrind {' '.join(argv)}: exit {done.returncode}: {tail}")
    return int(counts[-1])  # the last program of the exec chain: relay itself


def measure(binary: str, valgrind: str, python: str) -> dict[str, dict[str, int]]:
    figures: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="relay-startup-budget-") as root:
        env, starts = sandbox(root)
        # Unpacks the bundle into the sandbox's cache and creates the store, registering the session.
        with open(starts[1].stdin, "rb") as f:
            subprocess.run([binary, "hook"], stdin=f, env=env, capture_output=True, timeout=120, check=True)
        for start in starts:
            counts = []
            for _ in range(RUNS):
                if start.prepare:
                    start.prepare()
                counts.append(instructions([binary, *start.argv], env, start.stdin, valgrind))
            figures[start.name] = {"instructions": min(counts)}
        figures["python3 -I -S -c pass"] = {
            "instructions": instructions([python, "-I", "-S", "-c", "pass"], env, os.devnull, valgrind)
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", help="the frozen relay (default: this machine's bin/relay-<triple>)")
    parser.add_argument("--budget", default=str(BUDGET), help="budget file (default: %(default)s)")
    parser.add_argument("--record", action="store_true", help="write the measured figures as the new budget")
    args = parser.parse_args()
    triple = host_triple()
    binary = os.path.abspath(args.binary or REPO / "bin" / f"relay-{triple}")
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"startup_budget: {binary}: not an executable file")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("startup_budget: valgrind is not installed (Debian: apt-get install valgrind)")
    from bench_startup import real_python

    python = real_python(None)
    figures = measure(binary, valgrind, python)
    base = figures["python3 -I -S -c pass"]["instructions"]

    if args.record:
        try:
            with open(args.budget) as f:
                budget = json.load(f)
        except FileNotFoundError:
            budget = {}
        budget[triple] = {name: row for name, row in figures.items() if name != "python3 -I -S -c pass"}
        with open(args.budget, "w") as f:
            json.dump(budget, f, indent=2, sort_keys=True)
            f.write("\n")
        for name, row in figures.items():
            print(f"{name:<24} {row['instructions']:>12,} instructions ({row['instructions'] / base:.2f} x python)")
        print(f"startup_budget: recorded {triple} in {args.budget}")
        return 0

    with open(args.budget) as f:
        budget = json.load(f).get(triple)
    if budget is None:
        raise SystemExit(f"startup_budget: {args.budget} has no budget for {triple}; record one with --record")
    over = []
    print(f"{'start':<24} {'measure':<13} {'measured':>12} {'budget':>12} {'change':>8}")
    for name, row in figures.items():
        if name == "python3 -I -S -c pass":
            print(f"{name:<24} {'instructions':<13} {row['instructions']:>12,}")
            continue
        for measure_name, value in row.items():
            allowed = budget[name][measure_name]
            change = value / allowed - 1
            note = f"  ({value / base:.2f} x python)" if measure_name == "instructions" else ""
            print(f"{name:<24} {measure_name:<13} {value:>12,} {allowed:>12,} {change:>+7.1%}{note}")
            if change > TOLERANCE:
                over.append(
                    f"{name}: {measure_name} {value:,} is {change:+.1%} over the budget {allowed:,} "
                    f"(tolerance {TOLERANCE:.0%})"
                )
    for line in over:
        print(f"startup_budget: over budget: {line}", file=sys.stderr)
    if over:
        print(
            "startup_budget: find what the start now loads or runs (python3 benchmarks/bench_startup.py "
            "--imports); if the cost is meant, re-record with --record in the same commit",
            file=sys.stderr,
        )
        return 1
    print(f"startup_budget: ok ({binary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
