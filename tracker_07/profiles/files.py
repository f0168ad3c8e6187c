"""Name, write and index `.prof` files so that no profile overwrites another.

Werkzeug's default name, ``{method}.{path}.{elapsed:.0f}ms.{time:.0f}.prof``,
collides when two requests to one path finish in the same second with the same
elapsed milliseconds, and it copies the request path into the file name, where
``..``, NUL bytes or a few hundred characters raise ``OSError``.  Tracker keeps
the readable parts, reduces the path to a safe slug, adds the process id and a
per-process counter, and creates every file with ``O_EXCL`` so an existing file
is never replaced.  A name from a user's own ``filename_format`` is reduced to
one plain name in the folder and numbered (``-2``, ``-3``) when it is taken.
Beside the files, ``index.jsonl`` keeps one JSON line per profile (method,
full path, status, elapsed time, call counts, overlap) so the profiles list
never has to open every file.
"""
import itertools
import json
import marshal
import os
import re
import threading

INDEX_NAME = "index.jsonl"
PROFILE_SUFFIX = ".prof"
MAX_SLUG_LENGTH = 80
MAX_INDEXED_PATH_LENGTH = 2000
#: Room left for ``-NNN`` and the extension within the usual 255-byte limit of a name.
MAX_FORMATTED_NAME_BYTES = 200
MAX_EXTENSION_BYTES = 16

#: ``GET.user.42.12ms.1732000000123.4242-7.prof``: method, path slug, elapsed
#: milliseconds, start time in epoch milliseconds, process id and counter.
FILENAME_RE = re.compile(
    r"^(?P<method>[A-Z]{1,16})\.(?P<slug>[A-Za-z0-9_.-]{1,%d})\.(?P<elapsed>\d+)ms"
    r"\.(?P<time_ms>\d{1,16})\.(?P<pid>\d+)-(?P<seq>\d+)\.prof$" % MAX_SLUG_LENGTH
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SEPARATORS = re.compile(r"[/\\\x00-\x1f\x7f]+")
_counter = itertools.count(1)
#: Held while this process appends to or rewrites an index, so no line is lost between them.
INDEX_LOCK = threading.Lock()


def path_slug(path):
    """Reduce a request path to a short, safe part of a file name (``/a/b`` -> ``a.b``)."""
    parts = [_UNSAFE.sub("_", part).strip("_") for part in path.split("/")]
    slug = ".".join(part for part in parts if part)[:MAX_SLUG_LENGTH].strip(".")
    return slug or "root"


def profile_filename(method, path, elapsed_ms, start_time):
    """Build a new, unique, human-readable file name for one profiled request."""
    method = _UNSAFE.sub("", method.upper())[:16] or "UNKNOWN"
    return (
        f"{method}.{path_slug(path)}.{elapsed_ms:.0f}ms."
        f"{int(start_time * 1000)}.{os.getpid()}-{next(_counter)}{PROFILE_SUFFIX}"
    )


def parse_filename(name):
    """Read method, path slug, elapsed ms and start time back from a file name, or None."""
    match = FILENAME_RE.match(name)
    if match is None:
        return None
    return {
        "id": name,
        "method": match["method"],
        "path": "/" + match["slug"].replace(".", "/") if match["slug"] != "root" else "/",
        "elapsed_ms": float(match["elapsed"]),
        "time": int(match["time_ms"]) / 1000.0,
    }


def safe_name(name):
    """Make a name from a user's ``filename_format`` one plain, short name inside the folder.

    Path separators and control characters become ``_``, leading dots go (no
    ``.``, ``..`` or hidden files), and a long name is shortened before its
    extension so that the file system accepts it.
    """
    name = _SEPARATORS.sub("_", name).lstrip(".")
    stem, extension = os.path.splitext(name)
    if len(extension.encode()) > MAX_EXTENSION_BYTES:
        stem, extension = name, ""
    stem = stem.encode()[:MAX_FORMATTED_NAME_BYTES].decode(errors="ignore")
    return (stem or "profile") + extension


def numbered(name):
    """Yield ``name``, then ``name`` with ``-2``, ``-3``, ... before its extension."""
    yield name
    stem, extension = os.path.splitext(name)
    for number in itertools.count(2):
        yield f"{stem}-{number}{extension}"


def reserve(folder, names):
    """Create an empty file under the first of ``names`` that does not exist yet; return it.

    ``O_EXCL`` makes the check and the creation one step, so two writers never
    get the same name and an existing file is never replaced.  A missing
    folder is created.
    """
    os.makedirs(folder, exist_ok=True)
    for name in names:
        try:
            with open(os.path.join(folder, name), "xb"):
                return name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free profile name in {folder}")


def write_stats(folder, name_for, stats):
    """Write marshalled pstats data to a new file in ``folder`` and return its name.

    ``name_for()`` is called until it yields a name that does not exist yet, so
    an existing profile is never overwritten.  A missing folder is created.
    """
    name = reserve(folder, iter(name_for, None))
    with open(os.path.join(folder, name), "wb") as file:
        marshal.dump(stats, file)
    return name


def append_index(folder, record):
    """Append one profile's record to the folder's index as a single JSON line."""
    record = dict(record, path=record["path"][:MAX_INDEXED_PATH_LENGTH])
    line = json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
    with INDEX_LOCK, open(os.path.join(folder, INDEX_NAME), "a", encoding="ascii") as index:
        index.write(line)


def parse_index_lines(lines):
    """Turn index lines into records (dicts with a string id), skipping damaged lines.

    All lines are parsed with one ``json.loads`` (about twice as fast as line
    by line); only if that fails are they parsed one by one.
    """
    lines = [line for line in lines if line.strip()]
    try:
        values = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        values = []
        for line in lines:
            try:
                values.append(json.loads(line))
            except ValueError:
                continue
    return [value for value in values
            if isinstance(value, dict) and isinstance(value.get("id"), str)]


def read_index(folder):
    """Return the records of Tracker's own profiles in ``folder``'s index, in file order."""
    try:
        with open(os.path.join(folder, INDEX_NAME), encoding="ascii", errors="replace") as index:
            lines = index.readlines()
    except FileNotFoundError:
        return []
    return [record for record in parse_index_lines(lines) if FILENAME_RE.match(record["id"])]
