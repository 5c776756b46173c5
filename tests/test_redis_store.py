"""The store on Redis (SPEC §16), against a real redis-server (tests/redis_server.py)."""

import socket
import subprocess

import pytest
import redis_server as redis_server_mod


def _ping(server: redis_server_mod.RedisServer, password: str | None = None) -> bytes:
    """A raw RESP AUTH + PING, so this check does not depend on the client library."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        if password is not None:
            conn.sendall(f"AUTH {password}\r\n".encode())
            conn.recv(100)
        conn.sendall(b"PING\r\n")
        return conn.recv(100)


def test_the_test_server_listens_on_loopback_and_wants_its_password(redis_server, redis_url):
    assert redis_url.startswith("redis://:") and redis_url.endswith(f"@127.0.0.1:{redis_server.port}/0")
    assert _ping(redis_server, redis_server.password) == b"+PONG\r\n"
    assert _ping(redis_server).startswith(b"-NOAUTH")
    assert _ping(redis_server, "wrong").startswith((b"-WRONGPASS", b"-NOAUTH"))


def test_each_test_starts_with_an_empty_redis(redis_server, redis_url):
    with redis_server.client() as client:
        assert client.dbsize() == 0
        client.set("left-by-this-test", b"1")


def test_each_test_starts_with_an_empty_redis_again(redis_server, redis_url):
    with redis_server.client() as client:
        assert client.dbsize() == 0


def test_the_tls_server_speaks_only_tls_with_its_throwaway_ca(redis_tls_server, rediss_url):
    assert rediss_url.startswith("rediss://")
    with redis_tls_server.client() as client:
        assert client.ping() is True
    # Plain text to the TLS port gets no PONG.
    with pytest.raises((OSError, AssertionError)):
        assert _ping(redis_tls_server, redis_tls_server.password) == b"+PONG\r\n"
    assert redis_tls_server.ca is not None
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(redis_tls_server.ca), str(redis_tls_server.directory / "server.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
