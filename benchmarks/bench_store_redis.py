"""The store on Redis next to the file store, in one interleaved run (issue 13's "Measure").

    python benchmarks/bench_store_redis.py [--runs N]

Store level, each run a fresh Python process (as a hook or a `relay send` is), until the faces
are wired through relay.store_api.open_store (then bench_relay.py measures the real commands):
- empty: "is there mail?" for a session with none (the hook's path on every event);
- send: one enqueue;
- take10: take and ack 10 waiting messages;
- parallel: 8 processes x 100 sends at once (total seconds, and that none was lost);
with `python3 -S -c pass` as the baseline. Starts its own throwaway redis-server (tests/redis_server.py).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from redis_server import RedisServer  # noqa: E402

# argv: kind, home, url ("" for files), recipient, count
PROBE = """
import sys
kind, home, url, me, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
if url:
    from relay.redis_store import RedisStore
    store = RedisStore(url, home=home)
else:
    from relay.store import Store
    store = Store(home)
if kind == "empty":
    assert not store.has_mail(me)
elif kind == "send":
    from relay.clock import now_iso
    from relay.ids import new_uuid4
    for n in range(count):
        store.enqueue(me, {"id": new_uuid4(), "ts": now_iso(), "from": None, "fromName": None, "to": me,
                           "toName": None, "body": "benchmark message " + str(n)})
elif kind == "take":
    with store.take(me) as delivery:
        assert len(delivery.messages) == count, len(delivery.messages)
        delivery.ack()
elif kind == "count":
    assert len(store.peek(me)) == count, len(store.peek(me))
"""


def run(kind: str, home: str, url: str, me: str, count: int = 1) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROBE, kind, home, url, me, str(count)], env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        server = RedisServer(Path(scratch) / "redis")
        try:
            worlds = {"files": "", "redis": server.url}
            figures: dict[str, list[float]] = {}
            for _ in range(args.runs):  # interleaved: both stores share the same noise
                started = time.perf_counter()
                subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
                figures.setdefault("baseline python3 -S -c pass", []).append(time.perf_counter() - started)
                for world, url in worlds.items():
                    home = tempfile.mkdtemp(dir=scratch)
                    me = str(uuid.uuid4())
                    figures.setdefault(f"{world} empty", []).append(run("empty", home, url, me))
                    figures.setdefault(f"{world} send", []).append(run("send", home, url, me))
                    run("send", home, url, me, 9)
                    figures.setdefault(f"{world} take10", []).append(run("take", home, url, me, 10))
            base = statistics.median(figures["baseline python3 -S -c pass"])
            for name, values in figures.items():
                median = statistics.median(values)
                print(f"{name:32} median {median * 1000:7.1f} ms  ({median / base:4.1f} x baseline)")
            for world, url in worlds.items():
                home = tempfile.mkdtemp(dir=scratch)
                me = str(uuid.uuid4())
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
                started = time.perf_counter()
                senders = [
                    subprocess.Popen([sys.executable, "-c", PROBE, "send", home, url, me, "100"], env=env)
                    for _ in range(8)
                ]
                failed = sum(1 for s in senders if s.wait())  # a refused send is reported, not lost
                elapsed = time.perf_counter() - started
                if not failed:
                    run("count", home, url, me, 800)  # fails loudly when one was lost
                verdict = "800 of 800 queued" if not failed else f"{failed} sender(s) failed (see above)"
                print(f"{world} parallel 8x100 sends       {elapsed:7.2f} s, {verdict}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
