"""The reconciled list kept on disk, so a new process lists a settled folder without a scan.

A first listing of 50,000 profiles scans the folder, reconciles it with the
index, sorts the records and groups them by route: well over 100 ms before
the page is built.  After such a scan of a folder that had not changed for
``catalog.CACHE_MIN_AGE_NS`` (so that any later change gives the folder or
its index a newer modification time), ``.tracker-cache/listing.parsed``
keeps what it found: the index records, the records by file name, the sort
orders built and each route's sorted times and summary, all in one
``marshal`` body (a record shared by them is written once).  A process with
no kept listing loads it instead of scanning, when the folder and its index
are still exactly as they were: the same inodes, modification times and
index size, and the index's first and last bytes unchanged.  Those are in a
small header, so a stale cache costs a read of a few kilobytes; the body is
checked against its length and CRC-32 before it is unmarshalled, so a
damaged cache is never shown: the folder is scanned and the cache written
again.  It is written like the index cache (:mod:`.index_cache`): a second
later, in a background thread, atomically, and only while the listing kept
in memory is still the one scanned and the folder unchanged.

A saved listing that is stale only because the index was appended to (its
first bytes and the last bytes of the saved part are still in place, the
same inode, the same folder) is loaded too, marked ``exact=False``:
:mod:`.listing_update` applies what changed since, instead of a scan.  Profile mode's
retention saves one of its busy folder that way (:func:`save_unsettled`): never exact.
"""
import dataclasses
import marshal
import os
import struct
import zlib

from . import index, index_cache

CACHE_NAME = "listing.parsed"
MAGIC = b"TRKLIST\x00"
#: Bumped whenever the saved form changes, so an older cache is not used.
VERSION = 1
#: A listing of fewer records than this is cheap enough to build again.
MIN_RECORDS = 2000
_HEADER_LENGTH = struct.Struct("<I")
#: A header is a few kilobytes (two edges of the index); anything longer is damage.
MAX_HEADER_BYTES = 3 * index.INDEX_HEAD_BYTES
#: The folder time of a listing saved while the folder may change (no folder has it), so it
#: is never taken as exact.
UNSETTLED = -1


@dataclasses.dataclass
class SavedListing:
    """What a scan found, as saved: enough to go on as if this process had scanned."""

    snapshot: index.IndexSnapshot  # the index as read (None when there is no index)
    records: dict
    orders: dict
    routes: tuple
    #: False when the folder changed since: the index was only appended to (see :func:`load`).
    exact: bool = True


def load(folder, signature):
    """Return the listing saved for this ``catalog.folder_signature``, or None.

    Also one saved before lines were appended to the same index (``exact`` False):
    its snapshot is the index as it was then.
    """
    read = _read_body(folder, signature)
    if read is None:
        return None
    saved_key, head, body = read
    try:
        payload = marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return None
    if tuple(map(type, payload)) != (list, dict, dict, tuple):
        return None
    indexed, records, orders, routes = payload
    snapshot = None
    if saved_key[2] is not None:
        snapshot = index.IndexSnapshot(saved_key[2][0], saved_key[2][1], head, indexed)
    return SavedListing(snapshot, records, orders, routes, exact=saved_key == _key(signature))


def _read_body(folder, signature):
    """Return the saved signature key, the index's first bytes and the saved body, if they fit
    the signature (or only lines were appended to its index since), else None."""
    try:
        with open(_cache_path(folder), "rb") as cache:
            header = _read_header(cache)
            if header is None:
                return None
            saved_key, head, tail, length, checksum = header
            if saved_key != _key(signature) and not _appended_since(saved_key, signature):
                return None
            if _index_edges(folder, (None, *saved_key), appended=True) != (head, tail):
                return None
            body = cache.read(length + 1)
    except OSError:
        return None
    if len(body) != length or zlib.crc32(body) != checksum:
        return None
    return saved_key, head, body


def _appended_since(saved_key, signature):
    """Tell whether the signature may be the saved one's folder with index lines appended since:
    the same folder and index file, no shorter (its bytes are checked by the caller)."""
    if not (isinstance(saved_key, tuple) and len(saved_key) == 3):
        return False
    saved_index, index_now = saved_key[2], signature[3]
    return (saved_key[0] == signature[1] and index_now is not None
            and isinstance(saved_index, tuple) and tuple(map(type, saved_index)) == (int,) * 3
            and saved_index[0] == index_now[0] and saved_index[1] <= index_now[1])


def _read_header(cache):
    """Read the header (key, index edges, body length, CRC) or None if it is not ours."""
    start = cache.read(len(MAGIC) + _HEADER_LENGTH.size)
    if len(start) != len(MAGIC) + _HEADER_LENGTH.size or not start.startswith(MAGIC):
        return None
    (length,) = _HEADER_LENGTH.unpack_from(start, len(MAGIC))
    if length > MAX_HEADER_BYTES:
        return None
    try:
        header = marshal.loads(cache.read(length))
    except (EOFError, ValueError, TypeError):
        return None
    if not (isinstance(header, tuple) and len(header) == 3
            and header[:2] == (VERSION, index_cache.VERSION)):
        return None
    fields = header[2]
    if tuple(map(type, fields)) != (tuple, bytes, bytes, int, int):
        return None
    return fields


def _key(signature):
    """The part of a folder signature that a saved listing must match (not the folder's path,
    which may be reached by another name)."""
    return signature[1:]


def _index_edges(folder, signature, appended=False):
    """Return the first and last bytes of the signature's index (of its first ``size`` bytes,
    if it is still that file; with ``appended``, lines may have been added since), else None."""
    if signature[3] is None:
        return (b"", b"")
    inode, size, mtime_ns = signature[3]
    try:
        with open(os.path.join(folder, index.INDEX_NAME), "rb") as index_file:
            info = os.fstat(index_file.fileno())
            same = (info.st_ino, info.st_size, info.st_mtime_ns) == (inode, size, mtime_ns)
            if not (same or appended and info.st_ino == inode and info.st_size > size):
                return None
            head = index_file.read(min(size, index.INDEX_HEAD_BYTES))
            tail_start = max(0, size - index.INDEX_HEAD_BYTES)
            index_file.seek(tail_start)
            return (head, index_file.read(size - tail_start))
    except OSError:
        return None


def encode(indexed, records, orders, routes):
    """Marshal what a scan found (call it while nothing can change them)."""
    return marshal.dumps((indexed, records, orders, routes))


def save_later(folder, capture):
    """Save a listing a little later, in a background thread, if it is still current then.

    ``capture()`` returns the folder signature and the :func:`encode`\\ d listing,
    or None when the listing changed since its scan (nothing is written then).
    """
    index_cache.write_later(_save, folder, capture)


def _save(folder, capture):
    """Write the captured listing with its header, atomically; skip it if it is stale."""
    if not index_cache.make_cache_dir(folder):
        return
    captured = capture()  # after the folder is made: that changed the folder, so nothing is saved
    if captured is None:
        return
    _write(folder, *captured)


def save_unsettled(folder, kept, orders, routes_state):
    """Save now what :func:`.catalog.scan_to_save` found (with its sort orders and routes).

    Its index may have grown since it was read; only the part read is saved.
    Return whether it was written.
    """
    if not index_cache.make_cache_dir(folder):
        return False
    body = encode(kept.indexed, kept.records, orders, routes_state)
    return _write(folder, kept.signature, body, appended=True)


def _write(folder, signature, body, appended=False):
    """Write a listing with its header, atomically, if its index is still as the signature
    says (with ``appended``, or grown since); return whether it was written."""
    edges = _index_edges(folder, signature, appended)
    if edges is None:
        return False
    header = marshal.dumps(
        (VERSION, index_cache.VERSION, (_key(signature), *edges, len(body), zlib.crc32(body))))
    return index_cache.write_atomically(
        folder, CACHE_NAME, (MAGIC, _HEADER_LENGTH.pack(len(header)), header, body))


def _cache_path(folder):
    """Where the folder's saved listing is."""
    return os.path.join(folder, index_cache.CACHE_DIR, CACHE_NAME)
