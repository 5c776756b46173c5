"""The connection to Redis every Redis-backed part of the store shares (the mail store in
relay.store.redisdb, the doorbell streams in relay.store.redis_doorbells): the URL checked and
opened lazily with short timeouts, redis-py's errors turned into one RelayError line that never
shows the password, and the Lua scripts registered once and run by SHA."""

import os
import socket
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeout

from relay.util.errors import RelayError, StoreUnreachable

# An unreachable Redis, or one that accepts and never answers, fails a command within the 3 s of docs/redis-store.md,
# with room for the process start and redis-py's import (~0.5 s on a loaded machine).
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 2.0
# Delete a lock key only while it still holds this holder's token (the take lock, a doorbell server's).
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def host_name() -> str:
    """This machine's name in entries and taker names: RELAY_HOST, else the host name."""
    return os.environ.get("RELAY_HOST") or socket.gethostname() or "localhost"


def redact(url: str) -> str:
    """The URL with its password (and nothing else) replaced by `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    auth, at, where = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = auth.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{where}" if colon else f"{scheme}://***@{where}"


class _Guard:
    """Turns redis-py's errors into one RelayError line naming the URL without its password."""

    def __init__(self, connection: "RedisConnection") -> None:
        self._connection = connection

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, err: object, tb: object) -> None:
        if isinstance(err, (RedisConnectionError, RedisTimeout)):  # includes a server still loading
            raise StoreUnreachable(self._connection.describe(err)) from None
        if isinstance(err, RedisError) and not isinstance(err, WatchError):
            raise RelayError(self._connection.describe(err)) from None


class RedisConnection:
    """One lazily opened client of the Redis at `url`, on this host (`host`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.host = host_name()
        # redis-py's hints mix its sync and async APIs (every result is `X | Awaitable[X]`); relay
        # uses only the sync client, typed as Any.
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def describe(self, err: BaseException) -> str:
        """One line for a Redis failure: the URL with its password hidden, and why."""
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        password = self._password()
        if password:
            reason = reason.replace(password, "***")
        return f"session-relay: Redis at {redact(self.url)} failed: {reason}"

    def _password(self) -> str | None:
        from urllib.parse import unquote, urlsplit

        try:
            secret = urlsplit(self.url).password
        except ValueError:
            return None
        return unquote(secret) if secret else None

    def _check_url(self) -> None:
        """Refuse what redis-py would silently read otherwise (a db that is not a number is db 0)."""
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018 (parsing the port raises ValueError when it is not a number)
        except ValueError as err:
            raise RelayError(self.describe(err)) from None
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise RelayError(self.describe(ValueError("use redis://[user:password@]host:port[/db] or rediss://")))
        db = parts.path.removeprefix("/")
        if db and not (db.isascii() and db.isdigit()):
            raise RelayError(self.describe(ValueError(f"the database must be a number, not {db[:20]!r}")))

    def _redis(self) -> Any:
        if self._client is None:
            self._check_url()
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            try:
                client = redis.Redis.from_url(
                    self.url,
                    socket_connect_timeout=CONNECT_TIMEOUT,
                    socket_timeout=SOCKET_TIMEOUT,
                    retry=Retry(NoBackoff(), 0),
                    retry_on_timeout=False,
                    health_check_interval=0,
                    client_name=None,
                )
            except (ValueError, RedisError) as err:
                raise RelayError(self.describe(err)) from None
            self._client = client
        return self._client

    def _run(self, source: str, keys: list[str], args: list[object]) -> Any:
        """Run one Lua script: each is registered once per connection (redis-py's Script), so Redis
        gets its SHA (EVALSHA) and the source only the first time, or after a SCRIPT FLUSH."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._redis().register_script(source)
        return script(keys=keys, args=args)

    def _guard(self) -> _Guard:
        return _Guard(self)

    def ping(self) -> None:
        """Reach Redis now (authenticated, in the right database) or raise RelayError."""
        with self._guard():
            self._redis().ping()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
