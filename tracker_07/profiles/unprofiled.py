"""Requests served unprofiled, counted per method and path in the profile folder.

Profile mode appends one line per such request to a side file beside the index
(``unprofiled.jsonl``), so any process (the dashboard, ``flask profiles list``)
can show the counts, and listing profiles never parses these lines.  A long side
file is compacted into one counted line per route.
"""
import json
import os
import tempfile
import threading

MAX_PATH_LENGTH = 2000
#: Held while this process appends to or compacts the side file.
_LOCK = threading.Lock()
#: The folder's side file of requests served unprofiled: one JSON line each (``method``,
#: ``path``, ``time``, ``reason``), or one line per route with a ``count`` once compacted.
#: Kept apart from the index so that listing profiles never parses them.
UNPROFILED_NAME = "unprofiled.jsonl"
#: Compact the side file into one line per route once it has this many lines.
UNPROFILED_COMPACT_LINES = 10_000
_unprofiled_cache = {}


def note_unprofiled(folder, method, path, reason, when):
    """Count one request served unprofiled, where every process reading the folder sees it."""
    line = json.dumps({"method": method, "path": path[:MAX_PATH_LENGTH],
                       "time": round(when, 3), "reason": reason},
                      ensure_ascii=True, separators=(",", ":")) + "\n"
    with _LOCK, open(os.path.join(folder, UNPROFILED_NAME), "a", encoding="ascii") as side:
        side.write(line)


def unprofiled_counts(folder):
    """Return how many requests were served unprofiled, per ``(method, path)``.

    The answer is kept until the side file changes (its inode, size or time).
    """
    path = os.path.join(folder, UNPROFILED_NAME)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return {}
    key = (path, info.st_ino, info.st_size, info.st_mtime_ns)
    counts = _unprofiled_cache.get(key)
    if counts is None:
        with open(path, encoding="ascii", errors="replace") as side:
            counts = _count_lines(side.read().splitlines())
        _unprofiled_cache.clear()
        _unprofiled_cache[key] = counts
    return dict(counts)


def _count_lines(lines):
    """Add up the side file's lines per route (a line counts 1 unless it has a ``count``)."""
    counts = {}
    for value in _parse_lines(lines):
        if not isinstance(value, dict):
            continue
        method, path, count = value.get("method"), value.get("path"), value.get("count", 1)
        is_count = type(count) is int  # pylint: disable=unidiomatic-typecheck  # bool is no count
        if isinstance(method, str) and isinstance(path, str) and is_count:
            counts[method, path] = counts.get((method, path), 0) + count
    return counts


def _parse_lines(lines):
    """Parse JSON lines in one go, or one by one (skipping damaged lines) when that fails."""
    try:
        return json.loads("[" + ",".join(lines) + "]") if lines else []
    except ValueError:
        values = []
        for line in lines:
            try:
                values.append(json.loads(line))
            except ValueError:
                continue
        return values


def compact_unprofiled(folder, min_lines=UNPROFILED_COMPACT_LINES):
    """Rewrite a long side file as one counted line per route; never lose a line.

    Like :func:`rewrite_index`, the file is replaced only if no other process
    appended to it meanwhile (else it is left for the next compaction).
    """
    path = os.path.join(folder, UNPROFILED_NAME)
    with _LOCK:
        try:
            with open(path, "rb") as side:
                content = side.read()
        except FileNotFoundError:
            return False
        lines = content.decode("ascii", "replace").splitlines()
        if len(lines) < min_lines:
            return False
        counted = "".join(
            json.dumps({"method": method, "path": route, "count": count},
                       ensure_ascii=True, separators=(",", ":")) + "\n"
            for (method, route), count in _count_lines(lines).items())
        handle, temp_path = tempfile.mkstemp(dir=folder, prefix=".unprofiled.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="ascii") as temp:
            temp.write(counted)
        if os.path.getsize(path) != len(content):
            os.remove(temp_path)
            return False
        os.replace(temp_path, path)
        return True
