"""The faces other programs and people talk to: the CLI, the hook and its watcher, the MCP bus, the
doorbell server, the demo. They parse and print; the work is in relay.usecases."""
