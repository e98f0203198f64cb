from datetime import UTC, datetime, timedelta

import pytest

from pyworkflow._core._durations import parse_duration, resolve_due_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        ("2d3h4m5s", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("0s", 0),
        (" 10 m ", 600),
        (12, 12),
        (0.5, 0.5),
        (timedelta(minutes=2), 120),
    ],
)
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "10",
        "5x",
        "h1",
        "-5s",
        -1,
        float("nan"),
        True,
        None,
        timedelta(seconds=-1),
        "1h-30m",
    ],
)
def test_malformed_or_negative_names_the_input(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid duration") as info:
        parse_duration(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


def test_absolute_datetime() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert resolve_due_time(datetime(2025, 1, 2, tzinfo=UTC), now) == datetime(
        2025, 1, 2, tzinfo=UTC
    )
    assert resolve_due_time(datetime(2024, 1, 1, tzinfo=UTC), now) == now  # past: due at once
    with pytest.raises(ValueError, match="no timezone"):
        resolve_due_time(datetime(2025, 1, 2), now)
