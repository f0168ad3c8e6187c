"""The profile folder as a list: find, sort, filter and page saved profiles, and pick what to prune.

A page of the list is built from the index and the folder's file names, and
never opens a ``.prof`` file.  The records and their sort orders are kept
between listings and brought up to date by :mod:`tracker_07.profiles.catalog`,
so a page is a slice of a kept order.

The folder is the truth: index lines whose file is gone are dropped, and
``.prof`` files without an index line (a crash, a copy from elsewhere,
Werkzeug's stock file names, a lost index) get a record read from their name,
with the fields only the index knows left as ``None``.
"""
import bisect
import collections
import dataclasses
import itertools
import math
import operator
import os
import time

from . import catalog, index
from .catalog import folder_signature
from .records import INDEX_ONLY_FIELDS, WERKZEUG_NAME_RE, entry_mtime, reconcile, record_from_name
from .errors import ProfileNotFound
from .files import is_safe_name, profile_entries

#: Names that other modules and tests use from here, kept in one place since the split.
__all__ = ["INDEX_ONLY_FIELDS", "WERKZEUG_NAME_RE", "entry_mtime", "folder_signature",
           "record_from_name"]

#: Columns the list can be sorted by (index record keys).
SORT_KEYS = ("method", "path", "status", "elapsed_ms", "time", "calls", "overlapped", "queries",
             "sql_ms")
MAX_PER_PAGE = 1000
#: The most profiles ``prune`` may be told to keep, and the oldest age in days it accepts:
#: far beyond any real folder, yet small enough for exact arithmetic on times.
MAX_KEEP = 10**9
MAX_AGE_DAYS = 100_000
#: Fields that name a record's route when the index has them, before its path.
ROUTE_FIELDS = ("rule", "endpoint")
TIME, PROFILE_ID = operator.itemgetter("time"), operator.itemgetter("id")


@dataclasses.dataclass(frozen=True)
class ProfilePage:
    """One page of the list (an object, so ``page.items`` also works in Jinja)."""

    items: list
    total: int
    page: int
    pages: int
    per_page: int
    sort: str
    descending: bool


def scan_records(folder):
    """Reconcile index and folder: one record per profile file, index data where known."""
    return list(reconcile(index.indexed_records(folder), profile_entries(folder)).values())


def clear_listing_cache(index_too=False):
    """Forget the kept listing, and with ``index_too`` the parsed index (for benchmarks)."""
    catalog.forget()
    if index_too:
        index.forget_snapshots()


def catalog_records(folder):
    """Return one record per profile file in ``folder`` (shared: do not modify them).

    The records are kept between calls and brought up to date from new index
    lines, or by a scan of the folder when the index does not explain a change
    (see :mod:`tracker_07.profiles.catalog`).
    """
    kept = catalog.catalog(folder)
    if kept is None:
        return scan_records(folder)  # a missing folder is empty; a file in its place raises
    return kept.as_list()


def _matches(record, path_contains, method, status, min_ms):
    """Tell whether a record passes the list filters (None means no filter)."""
    if path_contains is not None and path_contains.lower() not in (record["path"] or "").lower():
        return False
    if method is not None and (record["method"] or "") != method.upper():
        return False
    if status is not None and record["status"] != status:
        return False
    if min_ms is not None and (record["elapsed_ms"] is None or record["elapsed_ms"] < min_ms):
        return False
    return True


def sort_records(records, sort="time", descending=True):
    """Sort records by one whitelisted column; unknown values (None) always go last."""
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; allowed: {', '.join(SORT_KEYS)}")
    if None not in map(dict.get, records, itertools.repeat("time")):
        # Every time known: sorted by time alone (its key read in C), then equal times by id.
        newest_first = _ids_in_ties(sorted(records, key=TIME, reverse=True))
        if sort == "time" and descending:
            return newest_first
    else:
        newest_first = sorted(records, key=lambda record: (-(record.get("time") or 0.0),
                                                            record["id"]))
    # Newest first (then id) as a stable tie-break, whatever the column and direction.
    known = [record for record in newest_first if record.get(sort) is not None]
    unknown = [record for record in newest_first if record.get(sort) is None]
    known.sort(key=operator.itemgetter(sort), reverse=descending)
    return known + unknown


def _ids_in_ties(newest_first):
    """Order each run of records with equal times by id (the runs are next to each other)."""
    times = list(map(TIME, newest_first))
    if len(set(times)) == len(times):
        return newest_first
    for moment, count in collections.Counter(times).items():
        if count > 1:  # its run, found by bisection in the descending times
            start = bisect.bisect_left(times, -moment, key=operator.neg)
            newest_first[start:start + count] = sorted(newest_first[start:start + count],
                                                       key=PROFILE_ID)
    return newest_first


def list_profiles(  # pylint: disable=too-many-arguments  # one keyword per list option
    folder,
    *,
    sort="time",
    descending=True,
    path_contains=None,
    method=None,
    status=None,
    min_ms=None,
    page=1,
    per_page=50,
):
    """Return one sorted, filtered page of the folder's profiles without opening any of them.

    ``page`` is clamped to the existing pages; ``per_page`` must be 1..MAX_PER_PAGE.
    """
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; allowed: {', '.join(SORT_KEYS)}")
    filters = (path_contains, method, status, min_ms)
    records, shown, page = _page_records(folder, sort, descending, filters, page, per_page)
    if not catalog.all_exist(folder, shown):
        # A file removed by hand without a trace in the index: scan the folder, once.
        catalog.forget()
        records, shown, page = _page_records(folder, sort, descending, filters, page, per_page)
    pages = max(1, math.ceil(len(records) / per_page))
    return ProfilePage(
        # The database detail ("sql") is the profile page's; the list keeps its two numbers.
        items=[{key: value for key, value in record.items() if key != "sql"} for record in shown],
        total=len(records),
        page=page,
        pages=pages,
        per_page=per_page,
        sort=sort,
        descending=descending,
    )


def _page_records(folder, sort, descending, filters, page, per_page):
    """Return the sorted, filtered records, the page's records and the page number (clamped)."""
    kept = catalog.catalog(folder)
    if kept is None:
        records = sort_records(scan_records(folder), sort, descending)
    else:
        records = kept.ordered(sort, descending, sort_records)
    if filters != (None, None, None, None):
        records = [record for record in records if _matches(record, *filters)]
    page = min(max(1, page), max(1, math.ceil(len(records) / per_page)))
    start = (page - 1) * per_page
    return records, records[start : start + per_page], page


def find_record(folder, profile_id):
    """Return one profile's record (from the index if indexed) or raise ProfileNotFound."""
    profile_path(folder, profile_id)
    return index.find_indexed(folder, profile_id) or record_from_name(profile_id)


def profile_path(folder, profile_id):
    """Return the absolute path of a profile directly inside ``folder``, refusing anything else.

    The error names the id, never the folder: the dashboard shows it to its users.
    """
    if not is_safe_name(profile_id):
        raise ProfileNotFound(f"not a profile id: {profile_id!r}")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, profile_id))
    if os.path.dirname(path) != root or not os.path.isfile(path):
        raise ProfileNotFound(f"no profile {profile_id!r} in the profile folder")
    return path


def route_of(record):
    """Return the route a record is grouped under: its rule or endpoint if known, else its path."""
    for field in ROUTE_FIELDS:
        value = record.get(field)
        if isinstance(value, str) and value:
            return value
    return record["path"]


def route_profiles(folder, method, path):
    """Return the ids of every profile of one method and path (or route), oldest first."""
    return [record["id"] for record in route_records(folder, method, path)]


def route_records(folder, method, path):
    """Return the records of every profile of one method and path (or route), oldest first."""
    method = method.upper()
    records = [
        record
        for record in catalog_records(folder)
        if record["method"] == method and path in (record["path"], route_of(record))
    ]
    records.sort(key=lambda record: (record["time"] or 0.0, record["id"]))
    return records


def check_prune_limits(keep=None, older_than_days=None):
    """Refuse prune limits that are missing, negative, not finite or absurdly large."""
    if keep is None and older_than_days is None:
        raise ValueError("prune needs keep or older_than_days")
    if keep is not None and not 0 <= keep <= MAX_KEEP:
        raise ValueError(f"keep must be a whole number from 0 to {MAX_KEEP}")
    if older_than_days is not None and not 0 <= older_than_days <= MAX_AGE_DAYS:
        raise ValueError(f"older_than_days must be a number of days from 0 to {MAX_AGE_DAYS}")


def profiles_to_prune(records, *, keep=None, older_than_days=None, now=None):
    """Pick the records to remove: all but the ``keep`` newest, and all older than the age."""
    check_prune_limits(keep, older_than_days)
    newest_first = sorted(records, key=lambda r: (-(r["time"] or 0.0), r["id"]))
    doomed = set()
    if keep is not None:
        doomed.update(record["id"] for record in newest_first[keep:])
    if older_than_days is not None:
        cutoff = (time.time() if now is None else now) - older_than_days * 86400
        doomed.update(
            record["id"]
            for record in newest_first
            if record["time"] is not None and record["time"] < cutoff
        )
    return [record["id"] for record in newest_first if record["id"] in doomed]


def prune(folder, *, keep=None, older_than_days=None, now=None, dry_run=False):
    """Delete old profiles and their index lines; return the removed ids, newest first."""
    doomed = profiles_to_prune(
        catalog_records(folder), keep=keep, older_than_days=older_than_days, now=now
    )
    if dry_run:
        return doomed
    removed = []
    for profile_id in doomed:
        try:
            os.remove(os.path.join(folder, profile_id))
        except FileNotFoundError:
            continue
        removed.append(profile_id)
    index.rewrite_index(folder)
    return removed
