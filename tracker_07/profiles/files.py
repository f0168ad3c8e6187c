"""Name, write and find profile files so that no profile overwrites another.

cProfile profiles are ``.prof`` files, sampled ones ``.speedscope.json`` files
(:mod:`tracker_07.profiles.sampled`); both share the names and rules below.

Werkzeug's default name, ``{method}.{path}.{elapsed:.0f}ms.{time:.0f}.prof``,
collides when two requests to one path finish in the same second with the same
elapsed milliseconds, and it copies the request path into the file name, where
``..``, NUL bytes or a few hundred characters raise ``OSError``.  Tracker keeps
the readable parts, reduces the path to a safe slug, adds the process id and a
per-process counter, and creates every file with ``O_EXCL`` so an existing file
is never replaced.  A name from a user's own ``filename_format`` is reduced to
one plain name in the folder and numbered (``-2``, ``-3``) when it is taken.
What the folder's index says about each file is kept by
:mod:`tracker_07.profiles.index`.
"""
import functools
import itertools
import marshal
import operator
import os
import re
import stat
import threading

from .errors import NotAFolder

try:
    from . import _listing
except ImportError:  # not compiled (no C compiler at install): the folder read in Python
    _listing = None

PROFILE_SUFFIX = ".prof"
SAMPLED_SUFFIX = ".speedscope.json"
MAX_SLUG_LENGTH = 80
#: Room left for ``-NNN`` and the extension within the usual 255-byte limit of a name.
MAX_FORMATTED_NAME_BYTES = 200
MAX_EXTENSION_BYTES = 16

#: ``GET.user.42.12ms.1732000000123.4242-7.prof``: method, path slug, elapsed
#: milliseconds, start time in epoch milliseconds, process id and counter (sampled
#: profiles end in ``.speedscope.json`` instead).
FILENAME_RE = re.compile(
    r"^(?P<method>[A-Z]{1,16})\.(?P<slug>[A-Za-z0-9_.-]{1,%d})\.(?P<elapsed>\d+)ms"
    r"\.(?P<time_ms>\d{1,16})\.(?P<pid>\d+)-(?P<seq>\d+)(?:\.prof|\.speedscope\.json)$"
    % MAX_SLUG_LENGTH
)

#: Any other profile a user may drop in the folder: one plain file name, no
#: separators, no control characters, no leading dot, ending in ``.prof`` or
#: ``.speedscope.json``.
SAFE_NAME_RE = re.compile(
    r"^[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,250}(?:\.prof|\.speedscope\.json)$")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SEPARATORS = re.compile(r"[/\\\x00-\x1f\x7f]+")
_counter = itertools.count(1)


def path_slug(path):
    """Reduce a request path to a short, safe part of a file name (``/a/b`` -> ``a.b``)."""
    parts = [_UNSAFE.sub("_", part).strip("_") for part in path.split("/")]
    slug = ".".join(part for part in parts if part)[:MAX_SLUG_LENGTH].strip(".")
    return slug or "root"


def profile_filename(method, path, elapsed_ms, start_time, suffix=PROFILE_SUFFIX):
    """Build a new, unique, human-readable file name for one profiled request."""
    method = _UNSAFE.sub("", method.upper())[:16] or "UNKNOWN"
    return (
        f"{method}.{path_slug(path)}.{elapsed_ms:.0f}ms."
        f"{int(start_time * 1000)}.{os.getpid()}-{next(_counter)}{suffix}"
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


def is_sampled(name):
    """Tell whether a profile file holds a sampled profile (by its name)."""
    return name.endswith(SAMPLED_SUFFIX)


def is_safe_name(name):
    """Tell whether ``name`` may name a profile file directly inside the folder."""
    return isinstance(name, str) and bool(
        FILENAME_RE.fullmatch(name) or SAFE_NAME_RE.fullmatch(name)
    )


def profile_entries(folder):
    """Map the name of every regular profile file directly in ``folder`` to its DirEntry.

    A missing folder has no profiles yet; a file in the folder's place raises NotAFolder.
    The names are sifted with ``map`` over all entries, in C (50,000 entries in a big folder).
    """
    try:
        with os.scandir(folder) as scanned:
            entries = list(scanned)
    except FileNotFoundError:
        return {}
    except NotADirectoryError as error:
        raise NotAFolder(folder) from error
    return dict(zip(*_sift(entries)))


def profile_names(folder):
    """Return the set of names ``profile_entries`` maps (the same files, the same errors).

    Read by the compiled reader where there is one (``_listing.c``: 22 ms against 53 ms
    for 50,000 names, and it lets go of the GIL throughout, see :class:`NamesRead`); else
    through a descriptor of the folder where the system allows it: its entries then hold
    only their names, not their paths too (24 ms against 30 ms for 50,000 entries), and a
    type the listing does not give is read relative to that descriptor, while it is open.
    """
    if _listing is not None:
        return _compiled_names(folder)
    if os.scandir not in os.supports_fd:  # pragma: no cover  # Windows
        return set(profile_entries(folder))
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        return set()
    except NotADirectoryError as error:
        raise NotAFolder(folder) from error
    try:
        with os.scandir(descriptor) as scanned:
            return set(_sift(list(scanned))[0])
    finally:
        os.close(descriptor)


def _compiled_names(folder):
    """``profile_names`` by ``_listing.profile_names``: the names it is sure of, and those it
    leaves to Python (a type the system did not give, a name the pattern must judge)."""
    try:
        regular, unsure = map(_split_names, _listing.profile_names(folder))
    except FileNotFoundError:
        return set()
    except NotADirectoryError as error:
        raise NotAFolder(folder) from error
    names = set(regular)
    if unsure:
        names.update(name for name in _safe_among(unsure) if _is_regular_file(folder, name))
    return names


def _split_names(joined):
    """The names in ``joined`` (each followed by a NUL), decoded as ``os.listdir`` does."""
    return os.fsdecode(joined).split("\0")[:-1]


def _is_regular_file(folder, name):
    """Whether ``name`` in ``folder`` is a regular file, not a link (one ``lstat``)."""
    try:
        return stat.S_ISREG(os.lstat(os.path.join(folder, name)).st_mode)
    except OSError:
        return False


class NamesRead:
    """``profile_names(folder)``, read in a thread of its own when the compiled reader is
    there: it lets go of the GIL for the whole read, so the caller parses the index meanwhile
    (on another core, 20-40 ms sooner for 50,000 profiles).  Read at once otherwise: the
    reader in Python takes the GIL back for every entry, and sharing it would slow both."""

    def __init__(self, folder):
        self.names = self.error = self.thread = None
        if _listing is not None:
            thread = threading.Thread(target=self._read, args=(folder,),
                                      name="tracker-profile-names", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no thread to be had (a process at its limit): read now
                pass
            else:
                self.thread = thread
                return
        self._read(folder)

    def _read(self, folder):
        try:
            self.names = profile_names(folder)
        except BaseException as error:  # pylint: disable=broad-exception-caught  # result() raises it
            self.error = error

    def result(self):
        """The names, once read; or the error reading them raised (NotAFolder, OSError)."""
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error
        return self.names


def _sift(entries):
    """Return the names of the regular profile files among ``entries`` and their entries."""
    names = list(map(_NAME, entries))
    suffixed = list(map(_HAS_PROFILE_SUFFIX, names))
    suffixed_names = list(itertools.compress(names, suffixed))
    candidates = _safe_among(suffixed_names)
    if candidates is suffixed_names:  # all safe: the entries line up with the names
        chosen = list(itertools.compress(entries, suffixed))
    else:
        chosen = list(map(dict(zip(names, entries)).__getitem__, candidates))
    # Neither a link nor anything but a regular file; the type is known without a system call.
    regular = list(map(_IS_REGULAR, chosen))
    if not all(regular):
        candidates = list(itertools.compress(candidates, regular))
        chosen = list(itertools.compress(chosen, regular))
    return candidates, chosen


#: SAFE_NAME_RE between the ``/`` that join a folder's names (no name holds a ``/``).
_JOINED_SAFE_NAMES = re.compile(
    r"(?:^|(?<=/))([^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,250}"
    r"(?:\.prof|\.speedscope\.json))(?=/|\Z)"
)


def safe_names(names):
    """Return the names ``is_safe_name`` accepts, checked by one pass over them all."""
    return _safe_among(list(filter(_HAS_PROFILE_SUFFIX, names)))


def _safe_among(candidates):
    """``candidates`` themselves (names with a profile suffix) when all are safe, else a
    new list of the safe ones."""
    if _all_safe(candidates):
        return candidates
    return _JOINED_SAFE_NAMES.findall("/".join(candidates))


def _all_safe(candidates):
    """Tell whether every name (each with a profile suffix) is safe, checked all at once.

    Every name ``FILENAME_RE`` accepts is also a SAFE_NAME_RE name (both
    allow no separators or control characters, and no file name is longer
    than 255 bytes), so the general pattern alone decides.
    """
    if not candidates:
        return False
    joined = "/".join(candidates)
    if joined.isascii():  # bytes are searched quicker than text
        joined = joined.encode("ascii")
        unsafe = len(joined.translate(None, _UNSAFE_BYTES)) != len(joined)
        separators, hidden = joined.count(b"/"), joined.startswith(b".") or b"/." in joined
    else:
        unsafe = _UNSAFE_CHARACTER.search(joined) is not None
        separators, hidden = joined.count("/"), joined.startswith(".") or "/." in joined
    # No leading dot, separator, control character or long name: all safe.
    return not (unsafe or hidden or separators != len(candidates) - 1
                or max(map(len, candidates)) > MAX_FAST_LENGTH)


_HAS_PROFILE_SUFFIX = operator.methodcaller("endswith", (PROFILE_SUFFIX, SAMPLED_SUFFIX))
_NAME = operator.attrgetter("name")
_IS_REGULAR = functools.partial(os.DirEntry.is_file, follow_symlinks=False)
_UNSAFE_CHARACTER = re.compile(r"[\\\x00-\x1f\x7f]")
_UNSAFE_BYTES = bytes(range(0x20)) + b"\x7f\\"
#: The longest name SAFE_NAME_RE accepts with either suffix (a first character, 250, ``.prof``).
MAX_FAST_LENGTH = 1 + 250 + len(PROFILE_SUFFIX)
