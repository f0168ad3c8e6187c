"""The profile folder as a list: find, sort, filter and page saved profiles, and pick what to prune.

A page of the list is built from the index and one ``os.scandir`` of the
folder, and never opens a ``.prof`` file.  Only index lines appended since the
last listing are parsed, and an idle folder's listing is reused until the
folder or its index changes.

The folder is the truth: index lines whose file is gone are dropped, and
``.prof`` files without an index line (a crash, a copy from elsewhere,
Werkzeug's stock file names, a lost index) get a record read from their name,
with the fields only the index knows left as ``None``.
"""
import dataclasses
import math
import os
import re
import time

from . import index
from .errors import ProfileNotFound
from .files import FILENAME_RE, is_safe_name, parse_filename, profile_entries

#: Columns the list can be sorted by (index record keys).
SORT_KEYS = ("method", "path", "status", "elapsed_ms", "time", "calls", "overlapped", "queries",
             "sql_ms")
MAX_PER_PAGE = 1000
#: The most profiles ``prune`` may be told to keep, and the oldest age in days it accepts:
#: far beyond any real folder, yet small enough for exact arithmetic on times.
MAX_KEEP = 10**9
MAX_AGE_DAYS = 100_000

#: Werkzeug's stock ``{method}.{path}.{elapsed:.0f}ms.{time:.0f}.prof`` names.
WERKZEUG_NAME_RE = re.compile(
    r"^(?P<method>[A-Z]{1,16})\.(?P<slug>.+)\.(?P<elapsed>\d+)ms\.(?P<time>\d{1,12})\.prof$"
)

#: Fields only the index knows; a record read from a file name has them as None.
INDEX_ONLY_FIELDS = ("status", "calls", "primitive_calls", "total_time", "overlapped", "python",
                     "queries", "sql_ms")


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


def record_from_name(name, mtime=None):
    """Build a list record for a ``.prof`` file that has no index line."""
    record = parse_filename(name) or _parse_werkzeug_name(name)
    if record is None:
        record = {"id": name, "method": None, "path": None, "elapsed_ms": None, "time": mtime}
    record.update(dict.fromkeys(INDEX_ONLY_FIELDS), indexed=False)
    return record


def _parse_werkzeug_name(name):
    """Read method, path, elapsed ms and time from Werkzeug's stock file name, or None."""
    match = WERKZEUG_NAME_RE.match(name)
    if match is None:
        return None
    slug = match["slug"]
    return {
        "id": name,
        "method": match["method"],
        "path": "/" if slug == "root" else "/" + slug.replace(".", "/"),
        "elapsed_ms": float(match["elapsed"]),
        "time": float(match["time"]),
    }


def entry_mtime(entry):
    """Return a DirEntry's modification time, or None if it vanished meanwhile."""
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return None


def scan_records(folder):
    """Reconcile index and folder: one record per profile file, index data where known."""
    entries = profile_entries(folder)
    records = {}
    for record in index.indexed_records(folder):
        if record["id"] in entries:
            records[record["id"]] = record
    for name, entry in entries.items():
        if name not in records:
            mtime = None if FILENAME_RE.fullmatch(name) else entry_mtime(entry)
            records[name] = record_from_name(name, mtime)
    return list(records.values())


#: A folder or index changed less than this long ago may change again within the same
#: file-system timestamp tick (FAT, some network file systems), so such a listing is
#: never reused.
CACHE_MIN_AGE_NS = 2_000_000_000
_last_listing = {}


def folder_signature(folder):
    """Return what changes whenever a profile file or an index line is added or removed."""
    try:
        folder_stat = os.stat(folder)
    except OSError:
        return None
    try:
        index_stat = os.stat(os.path.join(folder, index.INDEX_NAME))
        index_key = (index_stat.st_ino, index_stat.st_size, index_stat.st_mtime_ns)
    except OSError:
        index_key = None
    return (os.path.realpath(folder), folder_stat.st_ino, folder_stat.st_mtime_ns, index_key)


def _settled(signature):
    """Tell whether neither the folder nor its index changed very recently."""
    newest = max(signature[2], signature[3][2] if signature[3] else 0)
    return time.time_ns() - newest >= CACHE_MIN_AGE_NS


def clear_listing_cache(index_too=False):
    """Forget the reused listing, and with ``index_too`` the parsed index (for benchmarks)."""
    _last_listing.clear()
    if index_too:
        index.forget_snapshots()


def catalog_records(folder):
    """Return one record per profile file in ``folder`` (shared: do not modify them).

    The last folder's records are reused while neither the folder nor its index
    has changed, so paging through an idle folder of 10,000 profiles does no I/O
    beyond two ``stat`` calls; after a change only new index lines are parsed.
    """
    signature = folder_signature(folder)
    cached = _last_listing.get("entry")
    if signature is not None and cached is not None and cached[0] == signature:
        return cached[1]
    records = scan_records(folder)
    if signature is not None and _settled(signature):
        _last_listing["entry"] = (signature, records)
    return records


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
    known = [record for record in records if record.get(sort) is not None]
    unknown = [record for record in records if record.get(sort) is None]
    # Newest first (then id) as a stable tie-break, whatever the direction.
    known.sort(key=lambda record: (-(record.get("time") or 0.0), record["id"]))
    known.sort(key=lambda record: record[sort], reverse=descending)
    unknown.sort(key=lambda record: (-(record.get("time") or 0.0), record["id"]))
    return known + unknown


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
    records = [
        record
        for record in catalog_records(folder)
        if _matches(record, path_contains, method, status, min_ms)
    ]
    records = sort_records(records, sort, descending)
    pages = max(1, math.ceil(len(records) / per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    return ProfilePage(
        # The database detail ("sql") is the profile page's; the list keeps its two numbers.
        items=[{key: value for key, value in record.items() if key != "sql"}
               for record in records[start : start + per_page]],
        total=len(records),
        page=page,
        pages=pages,
        per_page=per_page,
        sort=sort,
        descending=descending,
    )


def find_record(folder, profile_id):
    """Return one profile's record (from the index if indexed) or raise ProfileNotFound."""
    profile_path(folder, profile_id)
    for record in reversed(index.indexed_records(folder)):
        if record["id"] == profile_id:
            return dict(record)
    return record_from_name(profile_id)


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


def route_profiles(folder, method, path):
    """Return the ids of every profile of one route (same method and path), oldest first."""
    records = [
        record
        for record in catalog_records(folder)
        if record["method"] == method.upper() and record["path"] == path
    ]
    records.sort(key=lambda record: (record["time"] or 0.0, record["id"]))
    return [record["id"] for record in records]


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
