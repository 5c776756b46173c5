"""Store timestamps read back, and how long ago a time was (`relay list`, `relay discover`)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.util.clock import ago, epoch_from_iso, iso_from_epoch


@given(st.floats(min_value=0, max_value=6e9))
def test_a_store_timestamp_reads_back_as_its_time(seconds):
    assert epoch_from_iso(iso_from_epoch(seconds)) == pytest.approx(seconds, abs=0.002)


@pytest.mark.parametrize(
    "text",
    [None, 5, "", "yesterday", "2026-12-07 03:10:00.000Z", "2026-13-07T03:10:00.000Z", "2026-12-07T03:10:00.0x0Z"],
)
def test_anything_else_reads_as_no_time(text):
    assert epoch_from_iso(text) is None


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(-3, "0s ago"), (0, "0s ago"), (59.9, "59s ago"), (60, "1m ago"), (3599, "59m ago"), (7200, "2h ago")],
)
def test_ago_uses_the_largest_whole_unit(seconds, shown):
    assert ago(seconds) == shown
    assert ago(3 * 86400 + 5) == "3d ago"
