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


@dataclasses.dataclass
class SavedListing:
    """What a scan found, as saved: enough to go on as if this process had scanned."""

    snapshot: index.IndexSnapshot  # the index as read (None when there is no index)
    records: dict
    orders: dict
    routes: tuple


def load(folder, signature):
    """Return the listing saved for exactly this ``catalog.folder_signature``, or None."""
    read = _read_body(folder, signature)
    if read is None:
        return None
    head, body = read
    try:
        payload = marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return None
    if tuple(map(type, payload)) != (list, dict, dict, tuple):
        return None
    indexed, records, orders, routes = payload
    snapshot = None
    if signature[3] is not None:
        snapshot = index.IndexSnapshot(signature[3][0], signature[3][1], head, indexed)
    return SavedListing(snapshot, records, orders, routes)


def _read_body(folder, signature):
    """Return the index's first bytes and the saved body, if both fit the signature, else None."""
    try:
        with open(_cache_path(folder), "rb") as cache:
            header = _read_header(cache)
            if header is None or header[0] != _key(signature):
                return None
            _key_saved, head, tail, length, checksum = header
            if _index_edges(folder, signature) != (head, tail):
                return None
            body = cache.read(length + 1)
    except OSError:
        return None
    if len(body) != length or zlib.crc32(body) != checksum:
        return None
    return head, body


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


def _index_edges(folder, signature):
    """Return the index's first and last bytes if it is still the signature's file, else None."""
    if signature[3] is None:
        return (b"", b"")
    inode, size, mtime_ns = signature[3]
    try:
        with open(os.path.join(folder, index.INDEX_NAME), "rb") as index_file:
            info = os.fstat(index_file.fileno())
            if (info.st_ino, info.st_size, info.st_mtime_ns) != (inode, size, mtime_ns):
                return None
            head = index_file.read(index.INDEX_HEAD_BYTES)
            index_file.seek(max(0, size - index.INDEX_HEAD_BYTES))
            return (head, index_file.read(index.INDEX_HEAD_BYTES))
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
    signature, body = captured
    edges = _index_edges(folder, signature)
    if edges is None:
        return
    header = marshal.dumps(
        (VERSION, index_cache.VERSION, (_key(signature), *edges, len(body), zlib.crc32(body))))
    index_cache.write_atomically(
        folder, CACHE_NAME, (MAGIC, _HEADER_LENGTH.pack(len(header)), header, body))


def _cache_path(folder):
    """Where the folder's saved listing is."""
    return os.path.join(folder, index_cache.CACHE_DIR, CACHE_NAME)
