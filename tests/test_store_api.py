"""relay.store.contract: the store is chosen once from AGENT_RELAY_URL, and choosing it costs a local
hook nothing (no typing, no redis-py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from relay.store.contract import open_store
store = open_store()
print(type(store).__module__, type(store).__name__, "redis" in sys.modules, "typing" in sys.modules)
"""


def _probe(env: dict[str, str], url: str | None) -> subprocess.CompletedProcess:
    merged = {k: v for k, v in env.items() if k != "AGENT_RELAY_URL"}
    if url is not None:
        merged["AGENT_RELAY_URL"] = url
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(REPO)],
        env=merged,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("url", [None, ""])
def test_without_a_url_the_file_store_is_chosen_and_nothing_heavy_is_imported(env, url):
    done = _probe(env, url)
    assert done.stdout.split() == ["relay.store.files", "Store", "False", "False"], done.stderr


def test_a_redis_url_chooses_the_redis_store(env):
    pytest.importorskip("redis")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO)],
        # redis-py as this process finds it (the env fixture's PYTHONPATH names only the checkout)
        env={**env, "AGENT_RELAY_URL": "redis://:pw@127.0.0.1:1/0", "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split()[:3] == ["relay.store.redisdb", "RedisStore", "True"], done.stderr


def test_another_scheme_is_refused_without_echoing_the_value(env):
    done = _probe(env, "http://user:s3cret@example.com/")
    assert done.returncode != 0
    assert "must start with redis:// or rediss://" in done.stderr and "s3cret" not in done.stderr
