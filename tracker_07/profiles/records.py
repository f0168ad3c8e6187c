"""One list record per profile file: from its index line, or read from its name when it has none.

The folder is the truth: index lines whose file is gone are dropped, and
profile files without an index line get a record read from their name, with
the fields only the index knows left as ``None``.
"""
import functools
import operator
import os
import re

from . import index
from .files import FILENAME_RE, parse_filename

#: Werkzeug's stock ``{method}.{path}.{elapsed:.0f}ms.{time:.0f}.prof`` names.
WERKZEUG_NAME_RE = re.compile(
    r"^(?P<method>[A-Z]{1,16})\.(?P<slug>.+)\.(?P<elapsed>\d+)ms\.(?P<time>\d{1,12})\.prof$"
)

#: Fields only the index knows; a record read from a file name has them as None.
INDEX_ONLY_FIELDS = ("status", "calls", "primitive_calls", "total_time", "overlapped", "python",
                     "queries", "sql_ms", "interval_ms", "samples", "view")


def record_from_name(name, mtime=None):
    """Build a list record for a profile file that has no index line."""
    record = parse_filename(name) or _parse_werkzeug_name(name)
    if record is None:
        record = {"id": name, "method": None, "path": None, "elapsed_ms": None, "time": mtime}
    record.update(dict.fromkeys(INDEX_ONLY_FIELDS), indexed=False,
                  engine=index.engine_of_name(name))
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


def named_mtime(folder, name):
    """Return the modification time of the file ``name`` in ``folder`` (not followed if a
    link), or None if it vanished meanwhile."""
    try:
        return os.lstat(os.path.join(folder, name)).st_mtime
    except OSError:
        return None


def reconcile(indexed, entries):
    """Map each profile file's name to its record: index data where known (last line wins)."""
    return _reconciled(indexed, entries.keys(), lambda name: entry_mtime(entries[name]))


def reconcile_names(folder, indexed, names):
    """As :func:`reconcile`, from the set of the files' names (``files.profile_names``)."""
    return _reconciled(indexed, names, functools.partial(named_mtime, folder))


def _reconciled(indexed, names, mtime_of):
    """Map each of ``names`` to its last index record, or one read from its name (and
    ``mtime_of(name)`` if its name tells no time)."""
    # dict(zip(...)) keeps the last line of an id; both run in C, unlike a comprehension.
    records = dict(zip(map(operator.itemgetter("id"), indexed), indexed))
    for name in records.keys() - names:
        del records[name]
    for name in names - records.keys():
        mtime = None if FILENAME_RE.fullmatch(name) else mtime_of(name)
        records[name] = record_from_name(name, mtime)
    return records
