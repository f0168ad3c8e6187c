"""What a reader asks for: the ``Filters`` the dashboard and ``flask tracker`` both build.

Validation lives here only, so a bad status or time range gets the same message in the
browser (a 400) and in the shell (a usage error).  Times are epoch seconds (``int`` or
``float``) or ``datetime`` objects (naive ones are UTC); ``since`` is inclusive and
``until`` exclusive.
"""
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .store import METHOD_LENGTH


def now():
    """Current epoch seconds (a function so callers and tests share one clock)."""
    return time.time()


def to_epoch(value):
    """Accept epoch seconds or datetimes so callers can pass whichever they hold."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected epoch seconds or a datetime, got {value!r}")
    return float(value)


def status_range(status):
    """Turn a status filter (404, "404" or "4xx") into a half-open range of codes."""
    text = str(status).strip().lower()
    if len(text) == 3 and text[0] in "12345" and text.endswith("xx"):
        low = int(text[0]) * 100
        return low, low + 100
    if text.isdigit() and 100 <= int(text) <= 599:
        return int(text), int(text) + 1
    raise ValueError(f"status must be a code like 404 or a class like 4xx; got {status!r}.")


@dataclass(frozen=True)
class Filters:
    """Which requests to read: every field is optional, ``None`` meaning "any".

    Building one validates and normalises it (method upper-cased, status lower-cased,
    times as epoch floats), so a ``Filters`` that exists is always usable.
    """

    endpoint: str | None = None
    method: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self):
        normalised = {}
        if self.endpoint is not None and not isinstance(self.endpoint, str):
            raise ValueError(f"endpoint must be a URL rule like /user/<int:id>; "
                             f"got {self.endpoint!r}.")
        if self.method is not None:
            method = str(self.method).strip().upper()
            if not method.isalpha() or len(method) > METHOD_LENGTH:
                raise ValueError(f"method must be an HTTP method like GET; got {self.method!r}.")
            normalised["method"] = method
        if self.status is not None:
            status_range(self.status)
            normalised["status"] = str(self.status).strip().lower()
        for name in ("since", "until"):
            if getattr(self, name) is not None:
                normalised[name] = to_epoch(getattr(self, name))
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: only __post_init__ may set
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be later than since.")

    def window(self):
        """``(since, until)`` for reads that need a bounded range, such as percentiles."""
        if self.since is None or self.until is None:
            raise ValueError("since and until are both needed for this read.")
        return self.since, self.until

    def conditions(self, columns, time_column=None):
        """WHERE clauses on the raw or a rollup table (and the range, given ``time_column``)."""
        clauses = []
        if self.endpoint is not None:
            clauses.append(columns.endpoint == self.endpoint)
        if self.method is not None:
            clauses.append(columns.method == self.method)
        if self.status is not None:
            low, high = status_range(self.status)
            clauses.append(columns.status >= low)
            clauses.append(columns.status < high)
        if time_column is not None:
            if self.since is not None:
                clauses.append(time_column >= self.since)
            if self.until is not None:
                clauses.append(time_column < self.until)
        return clauses
