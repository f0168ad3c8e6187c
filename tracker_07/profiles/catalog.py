"""The profile folder as a catalog: list, find, load, merge and prune saved profiles.

The index (``index.jsonl``) is the fast path: a page of the list is built from
the index and one ``os.scandir`` of the folder, and never opens a ``.prof``
file.  Only index lines appended since the last listing are parsed, and an
idle folder's listing is reused until the folder or its index changes.

The folder is the truth: index lines whose file is gone are dropped, and
``.prof`` files without an index line (a crash, a copy from elsewhere,
Werkzeug's stock file names, a lost index) get a record read from their name,
with the fields only the index knows left as ``None``.
"""
import dataclasses
import functools
import json
import marshal
import math
import os
import pstats
import re
import tempfile
import time

from tracker_07.profiles import files
from tracker_07.profiles.files import (
    FILENAME_RE,
    INDEX_LOCK,
    INDEX_NAME,
    PROFILE_SUFFIX,
    parse_filename,
)

#: Columns the list can be sorted by (index record keys).
SORT_KEYS = ("method", "path", "status", "elapsed_ms", "time", "calls", "overlapped")
MAX_PER_PAGE = 1000

#: Any other profile a user may drop in the folder: one plain file name, no
#: separators, no control characters, no leading dot, ending in ``.prof``.
SAFE_NAME_RE = re.compile(r"^[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,250}\.prof$")

#: Werkzeug's stock ``{method}.{path}.{elapsed:.0f}ms.{time:.0f}.prof`` names.
WERKZEUG_NAME_RE = re.compile(
    r"^(?P<method>[A-Z]{1,16})\.(?P<slug>.+)\.(?P<elapsed>\d+)ms\.(?P<time>\d{1,12})\.prof$"
)

#: Fields only the index knows; a record read from a file name has them as None.
INDEX_ONLY_FIELDS = ("status", "calls", "primitive_calls", "total_time", "overlapped", "python")


class ProfileError(Exception):
    """Base class of the errors a saved profile can raise."""


class ProfileNotFound(ProfileError):
    """The id is not a safe profile name, or no such file is directly in the folder."""


class CorruptProfile(ProfileError):
    """The file exists but is not readable pstats data."""


@dataclasses.dataclass(frozen=True)
class ProfilePage:
    """One page of the catalog (an object, so ``page.items`` also works in Jinja)."""

    items: list
    total: int
    page: int
    pages: int
    per_page: int
    sort: str
    descending: bool


def is_safe_name(name):
    """Tell whether ``name`` may name a profile file directly inside the folder."""
    return isinstance(name, str) and bool(
        FILENAME_RE.fullmatch(name) or SAFE_NAME_RE.fullmatch(name)
    )


def record_from_name(name, mtime=None):
    """Build a catalog record for a ``.prof`` file that has no index line."""
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


def _profile_entries(folder):
    """Map the name of every regular ``.prof`` file directly in ``folder`` to its DirEntry."""
    try:
        with os.scandir(folder) as entries:
            return {
                entry.name: entry
                for entry in entries
                if entry.name.endswith(PROFILE_SUFFIX)
                and is_safe_name(entry.name)
                and entry.is_file(follow_symlinks=False)
            }
    except (FileNotFoundError, NotADirectoryError):
        return {}


def entry_mtime(entry):
    """Return a DirEntry's modification time, or None if it vanished meanwhile."""
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return None


def parse_index_lines(lines):
    """Turn index lines into normalised records, skipping damaged lines."""
    return [normalise_record(record) for record in files.parse_index_lines(lines)]


#: How many leading bytes of the index must be unchanged for it to count as appended to.
INDEX_HEAD_BYTES = 4096


@dataclasses.dataclass
class IndexSnapshot:
    """What was read of an index file: enough to read only what is appended later."""

    inode: int
    offset: int
    head: bytes
    records: list


_index_snapshots = {}


def indexed_records(folder):
    """Return the folder's index records, parsing only the lines appended since the last call.

    The middleware only ever appends whole lines; a rewrite (prune) replaces
    the file, and any other change alters its first bytes, so either one
    makes the whole index be read again.  A line still being written (no
    newline yet) is left for the next call.
    """
    path = os.path.join(folder, INDEX_NAME)
    try:
        with open(path, "rb") as index:
            info = os.fstat(index.fileno())
            head = index.read(INDEX_HEAD_BYTES)
            snapshot = _index_snapshots.get(path)
            if not _is_appended_to(snapshot, info, head) or not _ends_line(index, snapshot):
                snapshot = IndexSnapshot(info.st_ino, 0, b"", [])
            index.seek(snapshot.offset)
            chunk = index.read()
    except FileNotFoundError:
        _index_snapshots.pop(path, None)
        return []
    complete = chunk[: chunk.rfind(b"\n") + 1]
    lines = complete.decode("ascii", "replace").splitlines()
    offset = snapshot.offset + len(complete)
    snapshot = IndexSnapshot(
        info.st_ino, offset, head[:offset], snapshot.records + parse_index_lines(lines)
    )
    _index_snapshots.clear()
    _index_snapshots[path] = snapshot
    return snapshot.records


def _is_appended_to(snapshot, info, head):
    """Tell whether the index is the snapshot's file with only lines added after it."""
    return (
        snapshot is not None
        and snapshot.inode == info.st_ino
        and snapshot.offset <= info.st_size
        and head[: len(snapshot.head)] == snapshot.head
    )


def _ends_line(index, snapshot):
    """Tell whether the snapshot's offset is still just after a newline of the open index."""
    if snapshot.offset == 0:
        return True
    index.seek(snapshot.offset - 1)
    return index.read(1) == b"\n"


def scan_records(folder):
    """Reconcile index and folder: one record per profile file, index data where known."""
    entries = _profile_entries(folder)
    records = {}
    for record in indexed_records(folder):
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
        index_stat = os.stat(os.path.join(folder, INDEX_NAME))
        index = (index_stat.st_ino, index_stat.st_size, index_stat.st_mtime_ns)
    except OSError:
        index = None
    return (os.path.realpath(folder), folder_stat.st_ino, folder_stat.st_mtime_ns, index)


def _settled(signature):
    """Tell whether neither the folder nor its index changed very recently."""
    newest = max(signature[2], signature[3][2] if signature[3] else 0)
    return time.time_ns() - newest >= CACHE_MIN_AGE_NS


def clear_listing_cache(index_too=False):
    """Forget the reused listing, and with ``index_too`` the parsed index (for benchmarks)."""
    _last_listing.clear()
    if index_too:
        _index_snapshots.clear()


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


#: The type each sortable or filtered field must have; anything else becomes None.
FIELD_TYPES = {
    "method": str,
    "path": str,
    "status": int,
    "elapsed_ms": (int, float),
    "time": (int, float),
    "calls": int,
    "overlapped": int,
}


def normalise_record(record):
    """Copy an index record, blanking fields of the wrong type so sorting never fails."""
    record = dict(record, indexed=True)
    for field, kind in FIELD_TYPES.items():
        value = record.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            record[field] = None
    return record


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
        items=[dict(record) for record in records[start : start + per_page]],
        total=len(records),
        page=page,
        pages=pages,
        per_page=per_page,
        sort=sort,
        descending=descending,
    )


def find_record(folder, profile_id):
    """Return one profile's catalog record (from the index if indexed) or raise ProfileNotFound."""
    profile_path(folder, profile_id)
    for record in reversed(indexed_records(folder)):
        if record["id"] == profile_id:
            return dict(record)
    return record_from_name(profile_id)


def profile_path(folder, profile_id):
    """Return the absolute path of a profile directly inside ``folder``, refusing anything else."""
    if not is_safe_name(profile_id):
        raise ProfileNotFound(f"not a profile id: {profile_id!r}")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, profile_id))
    if os.path.dirname(path) != root or not os.path.isfile(path):
        raise ProfileNotFound(f"no profile {profile_id!r} in {folder}")
    return path


def load_stats(path, stream=None):
    """Load a ``.prof`` file as ``pstats.Stats``; any kind of bad data raises CorruptProfile.

    ``stream`` is where the Stats object prints its reports (default stdout).
    """
    name = os.path.basename(path)
    try:
        with open(path, "rb") as file:
            data = marshal.load(file)
    except FileNotFoundError as error:
        raise ProfileNotFound(f"{name}: no such file") from error
    except (EOFError, ValueError, TypeError, OSError) as error:
        raise CorruptProfile(f"{name}: not pstats data ({_reason(error)})") from error
    problem = stats_problem(data)
    if problem:
        raise CorruptProfile(f"{name}: not pstats data ({problem})")
    stats = pstats.Stats(stream=stream)
    stats.stats = data
    stats.files = [path]
    stats.get_top_level_stats()
    return stats


STATS_CACHE_SIZE = 8


def cached_stats(path):
    """Load a profile once for the several pages that show it (treat the result as read-only).

    Saved profiles never change, but the key includes the file's size and
    modification time so a replaced file is read again.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError as error:
        raise ProfileNotFound(f"{os.path.basename(path)}: no such file") from error
    return _cached_stats(path, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=STATS_CACHE_SIZE)
def _cached_stats(path, size, mtime_ns):
    """Load ``path``; size and mtime only make the cache key."""
    del size, mtime_ns
    return load_stats(path)


def _reason(error):
    """Describe an exception in one short line."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def stats_problem(data):
    """Describe why ``data`` is not a pstats dict, or return None if its shape is right."""
    if not isinstance(data, dict):
        return f"expected a dict, found {type(data).__name__}"
    for func, value in data.items():
        if not _is_func(func):
            return f"bad function key {func!r:.60}"
        if not (isinstance(value, tuple) and len(value) == 5 and _are_numbers(value[:4])):
            return f"bad entry for {func!r:.60}"
        if not isinstance(value[4], dict):
            return f"bad callers of {func!r:.60}"
        for caller, edge in value[4].items():
            if not _is_func(caller) or not _is_edge(edge):
                return f"bad caller entry of {func!r:.60}"
    return None


def _is_func(func):
    """Tell whether ``func`` is a pstats ``(filename, lineno, funcname)`` key."""
    return (
        isinstance(func, tuple)
        and len(func) == 3
        and isinstance(func[0], str)
        and isinstance(func[1], int)
        and isinstance(func[2], str)
    )


def _is_edge(edge):
    """Tell whether a callers value is cProfile's 4-tuple or the profile module's count."""
    if isinstance(edge, tuple):
        return len(edge) == 4 and _are_numbers(edge)
    return _are_numbers((edge,))


def _are_numbers(values):
    """Tell whether all values are ints or floats (bools excluded), as marshal gives them."""
    return all(type(value) in (int, float) for value in values)


def merge(paths):
    """Load several ``.prof`` files and add them into one ``pstats.Stats``."""
    paths = list(paths)
    if not paths:
        raise ValueError("merge needs at least one profile")
    merged = load_stats(paths[0])
    for path in paths[1:]:
        merged.add(load_stats(path))
    return merged


def route_profiles(folder, method, path):
    """Return the ids of every profile of one route (same method and path), oldest first."""
    records = [
        record
        for record in catalog_records(folder)
        if record["method"] == method.upper() and record["path"] == path
    ]
    records.sort(key=lambda record: (record["time"] or 0.0, record["id"]))
    return [record["id"] for record in records]


def profiles_to_prune(records, *, keep=None, older_than_days=None, now=None):
    """Pick the records to remove: all but the ``keep`` newest, and all older than the age."""
    if keep is None and older_than_days is None:
        raise ValueError("prune needs keep or older_than_days")
    if keep is not None and keep < 0:
        raise ValueError("keep must be 0 or more")
    if older_than_days is not None and older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
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
    rewrite_index(folder)
    return removed


def rewrite_index(folder, attempts=5):
    """Atomically rewrite the index keeping only lines whose file still exists.

    Damaged lines are kept as they are.  If another process appends to the
    index while it is rewritten, the rewrite starts over so no line is lost
    (a last, tiny window between the check and ``os.replace`` remains).
    """
    index_path = os.path.join(folder, INDEX_NAME)
    with INDEX_LOCK:  # this process's own appends wait; other processes are checked below
        _rewrite_index(folder, index_path, attempts)


def _rewrite_index(folder, index_path, attempts):
    """Rewrite ``index_path`` unless it keeps growing under another process's appends."""
    for _ in range(attempts):
        try:
            with open(index_path, "rb") as index:
                content = index.read()
        except FileNotFoundError:
            return
        present = _profile_entries(folder)
        kept = [line for line in content.splitlines(True) if _keep_index_line(line, present)]
        handle, temp_path = tempfile.mkstemp(dir=folder, prefix=".index.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as temp:
                temp.writelines(kept)
            if os.path.getsize(index_path) == len(content):
                os.replace(temp_path, index_path)
                return
        except OSError:
            os.remove(temp_path)
            raise
        os.remove(temp_path)
    raise OSError(f"{index_path} kept changing; index not rewritten")


def _keep_index_line(line, present):
    """Keep an index line unless it names a profile file that is gone (damaged lines stay)."""
    try:
        record = json.loads(line)
    except ValueError:
        return bool(line.strip())
    if not isinstance(record, dict):
        return True
    profile_id = record.get("id")
    return isinstance(profile_id, str) and profile_id in present
