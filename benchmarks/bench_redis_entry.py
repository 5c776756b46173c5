"""The hook on the Redis store with a huge planted mailbox entry, against the same hook with none.

    python benchmarks/bench_redis_entry.py                 # 60 MB planted, 5 rounds
    python benchmarks/bench_redis_entry.py --mb 60 --rounds 9
    RELAY_CMD=./launcher python benchmarks/bench_redis_entry.py

A peer holding the URL can XADD any entry to a session's stream (docs/redis-store.md, "Entries too
large to read"). Each round, interleaved: `python3 -I -S -c pass` (the floor any process pays), the
session-start hook with one queued message, and the same hook after a bare client planted an entry
of `--mb` MB (a well-formed message with a huge body) between two messages (planting is not timed;
the hook sets it aside, so each round plants again). Figures are wall-clock ms (median / p90) and
each hook's ratio to the floor, and how many planted entries were set aside; every round checks
that the hook delivered mail. Needs redis-py and redis-server here.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO
from bench_relay import Sandbox, new_id, relay_command, summary, timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=60, help="size of the planted entry in MB (default 60)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each (default 5)")
    options = parser.parse_args()
    sys.path[:0] = [str(REPO / "tests"), str(REPO)]
    import redis_server

    from relay.store import redis_keys

    server = redis_server.RedisServer(Path(tempfile.mkdtemp(prefix="relay-bench-redis-")))
    box = Sandbox(relay_command(), server.url)
    box.env["RELAY_MAILBOX_MAX"] = str(8 << 20)
    sid = new_id()
    event = json.dumps({"session_id": sid, "cwd": str(box.root), "source": "startup"}).encode()
    box.run("hook", input=event)  # registers the session
    # A well-formed message with a huge body: what a store that reads it whole would also parse and show.
    body = "x" * (options.mb * 1_000_000)
    planted = json.dumps({"id": new_id(), "from": new_id(), "fromName": "peer", "to": sid, "body": body})
    floor: list[float] = []
    empty: list[float] = []
    big: list[float] = []

    def hook() -> None:
        text = json.loads(box.run("hook", input=event).stdout)["hookSpecificOutput"]["additionalContext"]
        if "arrived from other sessions" not in text:
            raise SystemExit("the hook delivered no mail")

    try:
        with server.client() as client:
            for _ in range(options.rounds):
                floor.append(timed(lambda: subprocess.run(["python3", "-I", "-S", "-c", "pass"], check=True)))
                box.queue(sid, 1)
                empty.append(timed(hook))
                box.queue(sid, 1)
                client.xadd(redis_keys.mbox(sid), {"m": planted})
                box.queue(sid, 1)
                big.append(timed(hook))
                time.sleep(0.2)
            aside = client.llen(redis_keys.quarantine(sid))
    finally:
        box.close()
        server.stop()
    base = sorted(floor)[len(floor) // 2]
    print(f"python3 -I -S -c pass        {summary(floor)}")
    print(f"hook, 1 message              {summary(empty)}   {sorted(empty)[len(empty) // 2] / base:5.1f} x floor")
    print(f"hook, 2 + {options.mb} MB planted    {summary(big)}   {sorted(big)[len(big) // 2] / base:5.1f} x floor")
    print(f"entries set aside unread: {aside} of {options.rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
