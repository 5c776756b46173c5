"""The idle-mail watcher (`relay hook watch`): its CPU while it waits, and how soon mail wakes it.

    python3 benchmarks/bench_watch.py [--idle 60] [--trials 10]
    RELAY_CMD=./launcher python3 benchmarks/bench_watch.py

The watcher runs as Claude Code runs an asyncRewake hook (tests/fake_claude_host.py: `sh -c` in a
new session under a process Claude-named by its argv[0]) in a throwaway store. Idle: the watcher's
own user+system CPU time from /proc over `--idle` seconds, as a share of one core (docs/benchmarks.md: < 0.1 %).
Latency: per trial, a fresh watcher, then `relay send`; the time from the send's start until the
watcher has exited 2 with the mail (docs/benchmarks.md: mail seen within 1 s; the watcher then waits a 0.5 s
grace so a prompt being typed gets the mail instead).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from _common import REPO
from bench_relay import relay_command
from bench_startup import sandbox_env

HOST = REPO / "tests" / "fake_claude_host.py"


def start_watcher(root: str, env: dict[str, str], relay: list[str], sid: str) -> tuple[subprocess.Popen, str]:
    results = os.path.join(root, f"results-{time.monotonic_ns()}.jsonl")
    spec = os.path.join(root, f"spec-{time.monotonic_ns()}.json")
    command = " ".join(subprocess.list2cmdline([w]) if " " in w else w for w in relay) + " hook watch"
    event = {"session_id": sid, "hook_event_name": "Stop", "cwd": root}
    with open(spec, "w") as f:
        json.dump({"command": command, "event": event, "results": results}, f)
    host = subprocess.Popen(["claude", str(HOST), spec], executable=sys.executable, env=env)
    return host, results


def watcher_pid(env: dict[str, str], sid: str, timeout: float = 15.0) -> int:
    store = env["AGENT_RELAY_HOME"]
    path = os.path.join(store, "watchers", f"{sid}.pid")
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text.isdigit() and os.path.exists(f"/proc/{text}"):
                return int(text)
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit("the watcher never took its slot")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_result(results: str, timeout: float = 15.0) -> dict:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if os.path.exists(results):
            with open(results) as f:
                text = f.read()
            if text.strip():
                return json.loads(text.splitlines()[0])
        time.sleep(0.005)
    raise SystemExit("the watcher did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measurement (default 60)")
    parser.add_argument("--trials", type=int, default=10, help="send-to-wake trials (default 10)")
    args = parser.parse_args()
    relay = relay_command()
    with tempfile.TemporaryDirectory(prefix="relay-bench-watch-") as root:
        env = sandbox_env(root)
        env["PYTHONPATH"] = str(REPO)
        load = os.getloadavg()
        print(
            f"relay: {' '.join(relay)}; {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        sid = str(uuid.uuid4())
        subprocess.run(
            [*relay, "hook"], input=json.dumps({"session_id": sid, "cwd": root}).encode(), env=env, check=True
        )
        host, results = start_watcher(root, env, relay, sid)
        pid = watcher_pid(env, sid)
        time.sleep(1.0)
        before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle)
        used, spent = cpu_seconds(pid) - before, time.monotonic() - started
        print(
            f"idle watcher: {used * 1000:.0f} ms CPU over {spent:.1f} s = {used / spent:.4%} of a core (target < 0.1 %)"
        )
        host.kill()
        host.wait()
        latencies = []
        for _ in range(args.trials):
            host, results = start_watcher(root, env, relay, sid)
            watcher_pid(env, sid)
            time.sleep(0.3 + 0.5 * (len(latencies) % 5) / 5)  # send at varying phases of the poll
            sent = time.monotonic()
            subprocess.run([*relay, "send", sid, "--", "ping"], env=env, check=True, capture_output=True)
            result = wait_result(results)
            if result["rc"] != 2 or "ping" not in result["stderr"]:
                raise SystemExit(f"unexpected watcher result: {result}")
            latencies.append(time.monotonic() - sent)
            host.wait(10)
        print(
            f"send -> watcher woke with the mail, {len(latencies)} trials: "
            f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
            "(poll 0.5 s + grace 0.5 s + the send itself)"
        )


if __name__ == "__main__":
    main()
