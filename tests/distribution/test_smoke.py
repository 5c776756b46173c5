"""The program starts and answers --version and --help through RELAY_CMD."""

from relay import __version__


def test_version(run_relay):
    result = run_relay("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"relay {__version__}"


def test_help_lists_every_command(run_relay):
    result = run_relay("--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    for command in ("discover", "list", "register", "send", "inbox", "peek", "wake", "hook", "bus", "demo"):
        assert f"  {command} " in out
