"""Facts of this host, read-only: running processes, whether a session is live, the agent CLIs'
transcripts. Imports only relay.domain and relay.util."""
