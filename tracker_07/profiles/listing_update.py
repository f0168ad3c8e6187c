"""Bring a stale saved listing up to date by what changed since it was saved, not by a scan.

A profile-mode server goes on saving profiles after its listing was saved
(:mod:`.listing_cache`): it appends index lines, creates files, and its
retention removes the oldest files.  A new process then finds the saved
listing stale.  When the index was only appended to, the lines after the
saved part are parsed, the folder's names are read once (``os.listdir``: no
``stat``, no ``DirEntry``) and compared as sets with the saved records, and
only the difference is applied, with what a scan would make of it: records
of files gone are dropped, the new lines' records put in place (the last
line of an id wins), and a file without a line is read from its name.
"""
import operator
import os
import stat

from . import index
from .errors import NotAFolder
from .files import FILENAME_RE, safe_names
from .records import record_from_name

PROFILE_ID = operator.itemgetter("id")
#: Beyond this share of the records changed, the kept sort orders are built again instead.
MAX_CHANGED_SHARE = 0.05


def catch_up(folder, kept):
    """Apply to ``kept`` (loaded from a stale saved listing) what changed in the folder since.

    Returns the records dropped or replaced and the records read from a new
    file's name (for the routes), or None when the index was not only appended to.
    """
    names = folder_names(folder)
    saved_count = kept.indexed_count
    indexed = index.indexed_records(folder)  # extends kept.indexed in place if only appended
    if indexed is not kept.indexed or len(indexed) < saved_count:
        return None
    records = kept.records
    # Only names not saved need the profile-name check: every saved one passed it.
    new_names = set(safe_names(names - records.keys()))
    appended = [record for record in indexed[saved_count:]
                if record["id"] in new_names or record["id"] in records and record["id"] in names]
    latest = dict(zip(map(PROFILE_ID, appended), appended))  # the last line of an id wins
    gone = [records[name] for name in records.keys() - names]
    gone += [records[name] for name in latest.keys() & records.keys()]
    unindexed = [_record_of_new_file(folder, name) for name in new_names - latest.keys()]
    unindexed = [record for record in unindexed if record is not None]
    if len(gone) + len(latest) + len(unindexed) > MAX_CHANGED_SHARE * len(records):
        kept.orders.clear()  # sorting again is quicker than so many insertions
    for record in gone:
        kept.remove(record["id"])
    kept.add([*latest.values(), *unindexed])
    kept.indexed_count = len(indexed)
    return gone, unindexed


def folder_names(folder):
    """Return the names of everything in the folder (their type is not read)."""
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()
    except NotADirectoryError as error:
        raise NotAFolder(folder) from error


def _record_of_new_file(folder, name):
    """Read a record from the name of a file that has no index line, or None if not a file."""
    try:
        info = os.lstat(os.path.join(folder, name))
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return record_from_name(name, None if FILENAME_RE.fullmatch(name) else info.st_mtime)
