"""The store: its contract, the file and Redis implementations, durable file I/O, the lock and the
layout of `<home>`. Imports only relay.host, relay.domain and relay.util."""
