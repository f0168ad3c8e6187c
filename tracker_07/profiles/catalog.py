"""The profile folder's records, kept between listings and brought up to date cheaply.

A listing reconciles the index with the folder (``os.scandir``): index lines
whose file is gone are dropped, and profile files without an index line get
a record read from their name, with the fields only the index knows left as
``None``.  That scan costs tens of milliseconds at 50,000 files, so the kept
records are updated without it when the index tells what changed: profile
mode writes the file, then appends its index line, so when the index was only
appended to and the folder last changed no later than the index, the new
lines name the new files (each is checked with one ``lstat``).  Any other
change (a file removed or added by hand, a rewritten index, a folder changed
after its index, a change too recent to trust the clock) scans the folder
again, and so does a listing when the last scan is older than
``RESCAN_SECONDS``.  Each sort order asked for is kept too; new records are
put in place with ``bisect``.  A process that has no kept records loads
those a scan of the same, settled folder saved (:mod:`.listing_cache`),
brought up to date when lines were only appended to the index since
(:mod:`.listing_update`).
"""
import bisect
import dataclasses
import functools
import os
import stat
import threading
import time

from . import index, listing_cache, listing_update
from .errors import NotAFolder
from .files import NamesRead, is_safe_name, profile_entries
from .records import reconcile, reconcile_names

#: A folder or index changed less than this long ago may change again within the same
#: file-system timestamp tick (FAT, some network file systems), so such a listing is
#: never reused as it is.
CACHE_MIN_AGE_NS = 2_000_000_000
#: Changes made by hand that the index cannot tell (a file removed together with a new
#: profile's save) are found by a full scan at least this often while the list is used.
RESCAN_SECONDS = 30.0


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


def settled(signature):
    """Tell whether neither the folder nor its index changed very recently."""
    newest = max(signature[2], signature[3][2] if signature[3] else 0)
    return time.time_ns() - newest >= CACHE_MIN_AGE_NS


def order_key(sort, descending):
    """Return the total order of ``sort_records`` as a key (for ``bisect``): unknown values last.

    Known values by the column (reversed for descending), then newest first,
    then id; unknown values newest first, then id.
    """
    def key(record):
        value = record.get(sort)
        tie = (-(record.get("time") or 0.0), record["id"])
        if value is None:
            return (1, 0, tie)
        return (0, _Reversed(value) if descending else value, tie)
    return key


@functools.total_ordering
class _Reversed:
    """Wrap a value so that it sorts in reverse (strings cannot be negated)."""

    __slots__ = ("value",)

    def __init__(self, value):
        """Keep the value."""
        self.value = value

    def __eq__(self, other):
        """Equal when the values are equal."""
        return self.value == other.value

    def __lt__(self, other):
        """Smaller when the value is larger."""
        return other.value < self.value

    __hash__ = None


_catalogs = {}
_lock = threading.Lock()


@dataclasses.dataclass
class Catalog:
    """One folder's records as last reconciled, and the sort orders asked of them."""

    signature: tuple
    indexed: list
    indexed_count: int
    records: dict
    scanned_at: float
    orders: dict = dataclasses.field(default_factory=dict)
    listed: list = None
    #: The folder's modification time just after this process last removed a profile.
    removed_ns: int = -1
    #: The signature for which the records are exact as scanned, if they may be saved.
    scan_signature: tuple = None
    #: The route summaries saved with the records, with the records dropped or replaced and
    #: those read from new files' names since they were saved (see
    #: :func:`.listing_update.catch_up`), until the routes take them.
    saved_routes: tuple = None

    def as_list(self):
        """Return the records as a list (kept until they change)."""
        if self.listed is None:
            self.listed = list(self.records.values())
        return self.listed

    def ordered(self, sort, descending, build):
        """Return the records in one sort order, built with ``build`` the first time."""
        key = (sort, descending)
        with _lock:
            if key not in self.orders:
                self.orders[key] = build(self.as_list(), sort, descending)
            return self.orders[key]

    def remove(self, profile_id):
        """Drop one record from the records and from each kept order (caller holds the lock)."""
        record = self.records.pop(profile_id, None)
        if record is None:
            return
        self.listed = None
        for (sort, descending), ordered in self.orders.items():
            key = order_key(sort, descending)
            position = bisect.bisect_left(ordered, key(record), key=key)
            if position < len(ordered) and ordered[position] is record:
                del ordered[position]
            else:  # not where its key says (a value changed under it): rebuild on demand
                self.orders.clear()
                return

    def add(self, records):
        """Add or replace records, keeping each kept order sorted."""
        replaced = [record for record in records if record["id"] in self.records]
        for record in records:
            self.records[record["id"]] = record
        self.listed = None
        if replaced:
            self.orders.clear()
            return
        for (sort, descending), ordered in self.orders.items():
            key = order_key(sort, descending)
            for record in records:
                bisect.insort(ordered, record, key=key)


def forget():
    """Forget the kept records (the next listing scans the folder)."""
    with _lock:
        _catalogs.clear()


def kept_catalog(folder):
    """Return the folder's Catalog as the last listing left it, without a look at the folder.

    For views built right after a listing: asking ``catalog`` again within
    ``CACHE_MIN_AGE_NS`` of a change would scan the folder a second time.
    """
    with _lock:
        return _catalogs.get(os.path.realpath(folder))


def note_removed(folder, profile_ids):
    """Drop profiles this process deleted from the kept records, so no scan is needed."""
    with _lock:
        kept = _catalogs.get(os.path.realpath(folder))
        if kept is not None:
            for profile_id in profile_ids:
                kept.remove(profile_id)
            try:
                kept.removed_ns = os.stat(folder).st_mtime_ns
            except OSError:
                kept.removed_ns = -1


def all_exist(folder, records):
    """Tell whether every record's file is still in the folder (one ``lstat`` each)."""
    return all(_is_profile_file(folder, record) for record in records)


def catalog(folder):
    """Return the folder's Catalog, brought up to date, or None for a missing folder."""
    with _lock:
        signature = folder_signature(folder)
        if signature is None:
            return None
        kept = _catalogs.get(signature[0])
        if kept is not None and kept.signature == signature and settled(signature):
            return kept
        if kept is not None and _follow_appends(folder, kept, signature):
            return kept
        saved = listing_cache.load(folder, signature)
        fresh = None if saved is None else _restore(folder, signature, saved)
        if fresh is None:
            fresh = _scan(folder, signature)
        _catalogs.clear()  # one folder kept, as one app lists one folder
        _catalogs[signature[0]] = fresh
        return fresh


def _scan(folder, signature):
    """Reconcile the index with the folder's files; note whether the result may be saved."""
    names_read = NamesRead(folder)  # beside the index's parse, where it can be
    try:
        indexed = index.indexed_records(folder)
    finally:
        names = names_read.result()  # first: a file in the folder's place is NotAFolder
    records = reconcile_names(folder, indexed, names)
    scanned = Catalog(signature, indexed, len(indexed), records, time.monotonic())
    _allow_saving(folder, signature, scanned)
    return scanned


def scan_to_save(folder):
    """Scan a folder that may be changing (profile mode's own) for a listing to save; or None.

    The index is read first, then the folder: every line read was appended after its
    file was made, so before the folder is read.  The signature's folder time is
    ``listing_cache.UNSETTLED``, so a saved one is never taken as exact: a new process
    brings it up to date (:mod:`.listing_update`).  Not kept as this process's listing.
    """
    with _lock:
        try:
            folder_inode = os.stat(folder).st_ino
            indexed = list(index.indexed_records(folder))
            extent = index.parsed_extent(folder)
            index_info = os.stat(os.path.join(folder, index.INDEX_NAME))
            entries = profile_entries(folder)
        except (OSError, NotAFolder):
            return None
    if extent is None or index_info.st_ino != extent[0]:
        return None  # no index, or one replaced meanwhile
    signature = (os.path.realpath(folder), folder_inode, listing_cache.UNSETTLED,
                 (*extent, index_info.st_mtime_ns))
    return Catalog(signature, indexed, len(indexed), reconcile(indexed, entries), 0.0)


def _allow_saving(folder, signature, kept):
    """Let ``kept`` be saved if it is exact for ``signature``: nothing changed for a while
    before it was read (a later change gives a newer time), the index was read to the size
    the signature saw, and it is big enough to be worth it."""
    index_read = (not kept.indexed if signature[3] is None
                  else index.parsed_extent(folder) == signature[3][:2])
    if index_read and settled(signature) and len(kept.records) >= listing_cache.MIN_RECORDS:
        kept.scan_signature = signature


def _restore(folder, signature, saved):
    """Go on from a saved listing as if this process had scanned; None if it cannot.

    A stale one (lines appended to the index since) is brought up to date by
    :mod:`.listing_update`, and may be saved again, as a scan would be.
    """
    indexed = []
    if saved.snapshot is not None:
        index.adopt_snapshot(folder, saved.snapshot)
        indexed = saved.snapshot.records
    restored = Catalog(signature, indexed, len(indexed), saved.records, time.monotonic(),
                       orders=saved.orders, saved_routes=(saved.routes, (), ()))
    if not saved.exact:
        changed = listing_update.catch_up(folder, restored)
        if changed is None:
            return None
        restored.saved_routes = (saved.routes, *changed)
        _allow_saving(folder, signature, restored)
    return restored


def saved_form(folder, kept, routes_state):
    """Return the signature and kept's records marshalled, if they are still exactly as scanned.

    ``routes_state()`` adds the routes' part, built from these records.  Under the
    lock, so no record or order changes while it is marshalled.
    """
    with _lock:  # a profile saved or removed since the scan changed the folder's signature
        if not (_catalogs.get(kept.signature[0]) is kept and kept.scan_signature is not None
                and kept.scan_signature == folder_signature(folder)):
            return None
        return kept.signature, listing_cache.encode(
            kept.indexed[:kept.indexed_count], kept.records, kept.orders, routes_state())


def _follow_appends(folder, kept, signature):
    """Update ``kept`` from new index lines alone, if they explain every change; else False."""
    if not _only_appended(kept, signature):
        return False
    indexed = index.indexed_records(folder)
    if indexed is not kept.indexed or len(indexed) < kept.indexed_count:
        return False
    new = [record for record in indexed[kept.indexed_count:] if _is_profile_file(folder, record)]
    kept.add(new)
    kept.indexed_count = len(indexed)
    kept.signature = signature
    return True


def _only_appended(kept, signature):
    """Tell whether the index grew in place and the folder changed no later than it.

    Removals by this process (``note_removed``) are known, so a folder changed
    by them (and by nothing later) is explained too.
    """
    old_index, new_index = kept.signature[3], signature[3]
    if time.monotonic() - kept.scanned_at > RESCAN_SECONDS or kept.signature == signature:
        return False  # due for a scan, or unchanged yet too recent to trust the clock
    if old_index is None or new_index is None or signature[1] != kept.signature[1]:
        return False
    if new_index[0] != old_index[0] or new_index[1] < old_index[1]:
        return False  # rewritten or cut: read again
    if new_index[1] == old_index[1]:  # no save: only this process's own removals explain it
        return new_index == old_index and signature[2] == kept.removed_ns
    return signature[2] <= max(new_index[2], kept.removed_ns)


def _is_profile_file(folder, record):
    """Tell whether an index line's file is a regular profile file in the folder (one lstat)."""
    name = record["id"]
    if not is_safe_name(name):
        return False
    try:
        return stat.S_ISREG(os.lstat(os.path.join(folder, name)).st_mode)
    except OSError:
        return False
