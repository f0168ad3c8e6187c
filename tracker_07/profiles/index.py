"""The folder's index, ``index.jsonl``: one JSON line per saved profile, and its one lock.

The middleware appends a line per profile (method, full path, status, elapsed
time, call counts, overlap) so the profiles list never has to open a ``.prof``
file.  Readers parse only the lines appended since their last read; a prune
rewrites the file atomically, keeping damaged lines and dropping lines whose
file is gone.  ``INDEX_LOCK`` keeps this process's appends and rewrites apart.
(One module of some 370 lines: reading records in bulk, checking them one by one and
rewriting the file all follow the one table of fields and their types.)
"""
import collections
import itertools
import json
import operator
import os
import tempfile
import threading

from . import index_cache
from .files import FILENAME_RE, SAMPLED_SUFFIX, is_sampled, profile_entries
from .index_lines import IndexLines, parse_values
from .unprofiled import unprofiled_counts

try:
    from ._listing import key_orders
except ImportError:  # not compiled (no C compiler at install): grouped in Python
    key_orders = None

IndexSnapshot = index_cache.IndexSnapshot
# Requests served unprofiled are counted beside the index; snapshots are kept by index_cache.
__all__ = ["unprofiled_counts", "IndexSnapshot"]

INDEX_NAME = "index.jsonl"
MAX_INDEXED_PATH_LENGTH = 2000
#: How many leading bytes of the index must be unchanged for it to count as appended to.
INDEX_HEAD_BYTES = 4096
#: The index is parsed and normalised this many bytes (about 1,000 lines) at a time.
PART_BYTES = 1 << 18
#: Held while this process appends to or rewrites an index, so no line is lost between them.
INDEX_LOCK = threading.Lock()

#: The type each sortable or filtered field must have; anything else becomes None.
FIELD_TYPES = {
    "method": str,
    "path": str,
    "status": int,
    "elapsed_ms": (int, float),
    "time": (int, float),
    "calls": int,
    "overlapped": int,
    "queries": int,
    "sql_ms": (int, float),
    "engine": str,
    "interval_ms": (int, float),
    "samples": int,
}


def append_index(folder, record):
    """Append one profile's record to the folder's index as a single JSON line."""
    record = dict(record, path=record["path"][:MAX_INDEXED_PATH_LENGTH])
    line = json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
    with INDEX_LOCK, open(os.path.join(folder, INDEX_NAME), "a", encoding="ascii") as index:
        index.write(line)


def parse_index_lines(lines):
    """Turn index lines (a list, or an IndexLines) into records: dicts with a string id.

    Damaged lines are skipped; see :mod:`.index_lines` for how they are parsed.
    """
    values = parse_values(lines)
    try:  # in C, as all are whenever nothing is damaged (dict.get of a non-dict: TypeError)
        if set(map(type, map(dict.get, values, _IDS))) <= {str}:
            return values
    except TypeError:
        pass
    return [value for value in values
            if isinstance(value, dict) and isinstance(value.get("id"), str)]


#: ``dict.get``'s key for every record, for ``map``.
_IDS = itertools.repeat("id")


def read_index(folder):
    """Return the records of Tracker's own profiles in ``folder``'s index, in file order."""
    try:
        with open(os.path.join(folder, INDEX_NAME), encoding="ascii", errors="replace") as index:
            lines = index.readlines()
    except FileNotFoundError:
        return []
    return [record for record in parse_index_lines(lines) if FILENAME_RE.match(record["id"])]


#: The exact types each field may keep as it is (what json.loads gives, or null), for a
#: quick check first.
EXACT_FIELD_TYPES = tuple(
    (field, frozenset((*(kind if isinstance(kind, tuple) else (kind,)), type(None))))
    for field, kind in FIELD_TYPES.items()
)
FIELD_NAMES = tuple(FIELD_TYPES)
#: ``record.get``'s default for every field: a type of its own marks a missing field.
_ALWAYS_MISSING = itertools.repeat(type("Missing", (), {})())
#: Key orders beyond which records are normalised one by one (a damaged index).
MAX_KEY_ORDERS = 64
_ID = operator.itemgetter("id")
_IS_SAMPLED_NAME = operator.methodcaller("endswith", SAMPLED_SUFFIX)
#: Each shape of record seen (the types of its FIELD_NAMES) -> the fields it must blank.
_shape_blanks = {}
#: Shapes kept at most (a damaged index could hold a great many).
MAX_SHAPES = 1000


def normalise_record(record):
    """Copy an index record, blanking fields of the wrong type so sorting never fails."""
    return _normalise_in_place(dict(record))


def _normalise_in_place(record):
    """Mark a freshly parsed record as indexed and blank its wrongly typed fields (no copy).

    The types of a record's fields (its shape) are looked up in C; each shape is
    judged once by the rules below, so a folder of like records costs one tuple
    and one dict lookup per record.  A record without an engine (written before
    there were two) gets its file's engine.
    """
    record["indexed"] = True
    shape = tuple(map(type, map(record.get, FIELD_NAMES, _ALWAYS_MISSING)))
    blank = _shape_blanks.get(shape)
    if blank is None:
        blank = _fields_to_blank(shape)
        if len(_shape_blanks) < MAX_SHAPES:
            _shape_blanks[shape] = blank
    if blank:
        record.update(blank)
    if record["engine"] is None:  # inline: once per record of a folder indexed before engines
        record["engine"] = ENGINES[record["id"].endswith(SAMPLED_SUFFIX)]
    return record


def normalise_parsed(records, may_name_sampled=True):
    """Normalise freshly parsed records in place (each as :func:`_normalise_in_place` would)
    and return them; in bulk, in C, for records that share their keys and need the same.
    ``may_name_sampled`` is False when the lines they came from cannot name a sampled file
    (:meth:`.IndexLines.may_spell`), so no id needs a look.

    Records are grouped by their keys in order (one group, for an index written by one
    version), with the types of the values at each position, in one C pass where it is
    compiled (``_listing.key_orders``), so a group whose fields are each of an accepted type
    in every record (or missing from all) gets what it lacks with one ``dict.update`` per
    record, in C.  A group with a wrongly typed field, or an engine to read from its file's
    name (sampled, or null), is normalised record by record.
    """
    groups = (key_orders or _key_orders)(records, MAX_KEY_ORDERS)
    if groups is None:  # a damaged index: no groups worth the name
        return [_normalise_in_place(record) for record in records]
    for keys, (group, value_types) in groups.items():
        fill = _group_fill(keys, group, value_types, may_name_sampled)
        if fill is None:
            for record in group:
                _normalise_in_place(record)
        else:
            collections.deque(map(dict.update, group, itertools.repeat(fill)), maxlen=0)
    return records


def _key_orders(records, most):
    """``_listing.key_orders`` in Python: the records grouped by their keys in order, each
    group with the set of its values' types at each position; None past ``most`` orders."""
    orders = list(map(tuple, records))  # each record's keys, in order
    distinct = set(orders)
    if len(distinct) > most:
        return None
    if len(distinct) == 1:
        groups = {orders[0]: records}
    else:
        groups = collections.defaultdict(list)
        collections.deque(map(list.append, map(groups.__getitem__, orders), records), maxlen=0)
    return {keys: (group, _value_types(len(keys), group)) for keys, group in groups.items()}


def _value_types(width, group):
    """The set of the types of the values at each position of records of ``width`` keys."""
    types = list(map(type, itertools.chain.from_iterable(map(dict.values, group))))
    return [set(types[position::width]) for position in range(width)]


def _group_fill(keys, group, value_types, may_name_sampled=True):
    """What each record of a group with these ``keys`` (in order) lacks, with ``indexed``;
    None if some need more (a field of a wrong type, an engine read from a name)."""
    positions = {key: position for position, key in enumerate(keys)}
    fill = {"indexed": True}
    for field, kinds in EXACT_FIELD_TYPES:
        position = positions.get(field)
        if position is None:
            fill[field] = None
            continue
        seen = value_types[position]
        if not seen <= kinds or (field == "engine" and type(None) in seen):
            return None
    if "engine" in fill:
        if may_name_sampled and any(map(_IS_SAMPLED_NAME, map(_ID, group))):
            return None
        fill["engine"] = ENGINES[False]
    return fill


def _fields_to_blank(shape):
    """Map the fields of one shape that must become None (missing, or of the wrong type) to None."""
    return dict.fromkeys(field for (field, kinds), kind in zip(EXACT_FIELD_TYPES, shape)
                 if kind not in kinds and not (kind is not bool
                                               and issubclass(kind, FIELD_TYPES[field])))


#: A profile's engine by whether its file is sampled: ``ENGINES[name.endswith(SAMPLED_SUFFIX)]``.
ENGINES = ("cprofile", "sampling")


def engine_of_name(name):
    """Name the engine of a profile file by its name: ``sampling`` or ``cprofile``."""
    return ENGINES[is_sampled(name)]


_index_snapshots = {}


def forget_snapshots():
    """Make the next read parse the whole index again (for tests and benchmarks)."""
    _index_snapshots.clear()


def indexed_records(folder):
    """Return the folder's normalised index records, parsing only lines appended since last time.

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
            snapshot = _index_snapshots.get(path) or index_cache.load(folder, index, info)
            if not _is_appended_to(snapshot, info, head) or not _ends_line(index, snapshot):
                snapshot = IndexSnapshot(info.st_ino, 0, b"", [])
            index.seek(snapshot.offset)
            chunk = index.read()
    except FileNotFoundError:
        _index_snapshots.pop(path, None)
        return []
    complete = chunk if chunk.endswith(b"\n") else chunk[: chunk.rfind(b"\n") + 1]
    lines = IndexLines(complete)
    offset = snapshot.offset + len(complete)
    records = _parse_normalised(lines)
    # Extended in place: the same list object tells a reader that lines were only appended.
    snapshot.records.extend(records)
    snapshot = IndexSnapshot(info.st_ino, offset, head[:offset], snapshot.records)
    _index_snapshots.clear()
    _index_snapshots[path] = snapshot
    if len(records) >= index_cache.MIN_LINES or len(lines) >= index_cache.MIN_LINES:
        index_cache.save_later(folder, snapshot, complete[-index_cache.TAIL_BYTES:])
    return snapshot.records


def _parse_normalised(lines):
    """Parse and normalise ``lines`` (an IndexLines) a part at a time.

    Each part's records are checked while they are still in the processor's
    cache, just made: parsing all 50,000 lines of a big index first and then
    checking them took 94-102 ms against 65-69 ms.  Every line is parsed alone
    in effect (a damaged one spoils only its part's quick parse), so the
    records are those of the whole.
    """
    if len(lines.data) <= PART_BYTES:  # the lines appended since the last read, as a rule
        return normalise_parsed(parse_index_lines(lines), lines.may_spell(SAMPLED_SUFFIX))
    records = []
    for part in lines.parts(PART_BYTES):
        records += normalise_parsed(parse_index_lines(part), part.may_spell(SAMPLED_SUFFIX))
    return records


def parsed_extent(folder):
    """Return the inode and the bytes parsed of the folder's index as last read, or None."""
    snapshot = _index_snapshots.get(os.path.join(folder, INDEX_NAME))
    return None if snapshot is None else (snapshot.inode, snapshot.offset)


def adopt_snapshot(folder, snapshot):
    """Take records read elsewhere (the saved listing) as this process's read of the index.

    The next :func:`indexed_records` extends ``snapshot.records`` in place with
    the lines appended after ``snapshot.offset``.
    """
    _index_snapshots.clear()
    _index_snapshots[os.path.join(folder, INDEX_NAME)] = snapshot


def find_indexed(folder, profile_id):
    """Return the last index record of one profile, or None, parsing only its line if it can.

    A process that has read the index answers from memory.  Otherwise the raw
    file is searched for the id as ``append_index`` writes it; when it occurs
    exactly once, in a complete line, only that line is parsed (a profile page
    opened first must not parse 50,000 lines).  Anything else reads the index.
    """
    path = os.path.join(folder, INDEX_NAME)
    if path not in _index_snapshots:
        try:
            with open(path, "rb") as index:
                content = index.read()
        except FileNotFoundError:
            return None
        quoted = json.dumps(profile_id, ensure_ascii=True).encode("ascii")
        if quoted not in content:
            return None
        at = content.find(b'"id":' + quoted)
        end = content.find(b"\n", at)
        if at >= 0 and end >= 0 and content.count(quoted) == 1:
            start = content.rfind(b"\n", 0, at) + 1
            found = parse_index_lines([content[start:end].decode("ascii", "replace")])
            if found and found[0]["id"] == profile_id:
                return _normalise_in_place(found[0])
    for record in reversed(indexed_records(folder)):
        if record["id"] == profile_id:
            return dict(record)
    return None


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
        present = profile_entries(folder)
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
