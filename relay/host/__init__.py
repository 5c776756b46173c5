"""Facts of this host, read-only: running processes and safe, bounded reading of the files the
agent CLIs write. What one CLI's files mean is its adapter's (relay.agents). Imports only
relay.domain and relay.util."""
