"""Every numeric setting is read by one function, so each refuses a bad value the same way."""

import pytest

from relay.domain.loopguard import inherited_hops
from relay.domain.policy import DEFAULT_MAX_AUTO_WAKES, max_auto_wakes
from relay.usecases.wakeguard import DEFAULT_BUDGET, Limits
from relay.util.errors import RelayError

READERS = [
    ("RELAY_HOPS", inherited_hops, 0),
    ("RELAY_MAX_HOPS", lambda: Limits().max_hops, 6),
    ("RELAY_WAKE_BUDGET", lambda: Limits().budget, DEFAULT_BUDGET),
    ("RELAY_MAX_AUTO_WAKES", max_auto_wakes, DEFAULT_MAX_AUTO_WAKES),
]


@pytest.fixture(autouse=True)
def _home_without_config(monkeypatch, tmp_path):
    """A store home with no config.json: the environment alone decides (test_wakeguard covers the file)."""
    monkeypatch.setenv("AGENT_RELAY_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(("name", "read", "default"), READERS, ids=[r[0] for r in READERS])
def test_unset_or_empty_is_the_documented_default(monkeypatch, name, read, default):
    monkeypatch.delenv(name, raising=False)
    assert read() == default
    monkeypatch.setenv(name, "")
    assert read() == default


@pytest.mark.parametrize(("name", "read", "default"), READERS, ids=[r[0] for r in READERS])
def test_a_whole_number_is_taken(monkeypatch, name, read, default):
    monkeypatch.setenv(name, "3")
    assert read() == 3


@pytest.mark.parametrize("bad", ["-1", "2.5", "five", "1e3", "9999999999"])
@pytest.mark.parametrize(("name", "read", "default"), READERS, ids=[r[0] for r in READERS])
def test_a_bad_value_is_a_one_line_error_naming_the_setting(monkeypatch, name, read, default, bad):
    monkeypatch.setenv(name, bad)
    with pytest.raises(RelayError) as caught:
        read()
    assert str(caught.value).startswith(f"{name} must be a whole number >= 0, not {bad!r}")
    assert "\n" not in str(caught.value)
