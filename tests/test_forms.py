"""Form value parsing: dates as people and platforms send them."""

from datetime import date, datetime, timezone

import pytest

from flows.forms import _parse_date, _parse_datetime

UTC = timezone.utc


@pytest.mark.parametrize("text,expected", [
    ("2026-11-04 10:15", datetime(2026, 11, 4, 10, 15, tzinfo=UTC)),   # ISO: never read day-first
    ("2026-11-04T10:15", datetime(2026, 11, 4, 10, 15, tzinfo=UTC)),
    ("2026-03-02T09:00:00+00:00", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
    ("04/11/2026 10:15", datetime(2026, 11, 4, 10, 15, tzinfo=UTC)),   # UK day-first
    ("4 Nov 2026 10:15", datetime(2026, 11, 4, 10, 15, tzinfo=UTC)),
    ("1796466900", datetime(2026, 12, 5, 10, 35, tzinfo=UTC)),          # Slack's datetimepicker: unix time
])
def test_datetimes(text, expected):
    assert _parse_datetime(text, UTC) == expected


@pytest.mark.parametrize("text,expected", [
    ("2026-12-08", date(2026, 12, 8)), ("08/12/2026", date(2026, 12, 8)), ("8 December 2026", date(2026, 12, 8)),
])
def test_dates(text, expected):
    assert _parse_date(text) == expected
