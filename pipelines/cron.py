"""Check a KFP cron expression before it reaches the cluster.

KFP schedules with robfig/cron in its six-field form, seconds first:
``second minute hour day-of-month month day-of-week`` (``"0 0 6 * * *"``: 06:00 every day).
A classic five-field crontab would be read shifted by one field (minutes taken as seconds,
hours as minutes…), which the server accepts silently: catch it here with a suggestion.
"""

from __future__ import annotations

import re

from xdetox.errors import ConfigError

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, lowest, highest, names accepted in place of numbers, "?" allowed)
_FIELDS = (
    ("second", 0, 59, (), False),
    ("minute", 0, 59, (), False),
    ("hour", 0, 23, (), False),
    ("day-of-month", 1, 31, (), True),
    ("month", 1, 12, _MONTHS, False),
    ("day-of-week", 0, 6, _DAYS, True),
)
_ITEM = re.compile(r"^(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")
EXAMPLE = "0 0 6 * * *"


def _value(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if names and upper in names:
        return names.index(upper) + low
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is out of range {low}-{high}")
    return value


def _check_field(text: str, low: int, high: int, names: tuple[str, ...], question: bool) -> None:
    if text == "?":
        if not question:
            raise ValueError("'?' is only allowed for day-of-month and day-of-week")
        return
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValueError(f"{item!r} is not a value, range, list or step")
        if match["step"] is not None and int(match["step"]) == 0:
            raise ValueError(f"{item!r}: step must be positive")
        if match["range"] == "*":
            continue
        bounds = [_value(part, low, high, names) for part in match["range"].split("-")]
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise ValueError(f"{item!r}: range runs backwards")


def validate_cron(expression: str) -> str:
    """Return the normalised expression (single spaces) or raise a one-line ConfigError."""
    fields = expression.split()
    where = f"--cron {expression!r}"
    if len(fields) != 6:
        hint = (
            f'; for a 5-field crontab add the seconds: "0 {" ".join(fields)}"'
            if len(fields) == 5
            else ""
        )
        raise ConfigError(
            f"{where}: KFP wants 6 fields, seconds first (second minute hour day-of-month "
            f'month day-of-week, e.g. "{EXAMPLE}" for 06:00 daily), got {len(fields)}{hint}'
        )
    for position, (text, (name, low, high, names, question)) in enumerate(
        zip(fields, _FIELDS, strict=True), start=1
    ):
        try:
            _check_field(text, low, high, names, question)
        except ValueError as exc:
            raise ConfigError(f"{where}: field {position} ({name}): {exc}") from None
    return " ".join(fields)
