"""Real ``.prof`` files of small, known call graphs for the saved-profiles tests.

The workload: ``workload`` calls ``a`` and ``countdown``; ``a`` calls ``b``
twice and ``c`` once; ``c`` calls ``d``; ``b`` and ``d`` both call ``shared``
(two callers); ``countdown`` recurses.  ``work`` sets how long ``shared`` spins.
"""
import contextlib
import cProfile
import marshal
import os
import pstats
import shutil
import tempfile
import time
import unittest
from unittest import mock

from tracker_07.profiles import files
from tracker_07.profiles.files import profile_filename
from tracker_07.profiles.index import INDEX_NAME, append_index


@contextlib.contextmanager
def counting_scans():
    """Count the folder's full reads, by ``os.scandir`` or by the compiled reader, as
    ``scans.call_count`` of the mock yielded."""
    scans = mock.Mock()
    compiled = files._listing  # pylint: disable=protected-access  # the reader counted
    with mock.patch.object(files.os, "scandir", side_effect=_counted(scans, os.scandir)), \
            contextlib.ExitStack() as stack:
        if compiled is not None:
            stack.enter_context(mock.patch.object(
                compiled, "profile_names", _counted(scans, compiled.profile_names)))
        yield scans


def _counted(scans, read):
    """``read``, counted in ``scans`` as it is called."""
    def counted(*args, **kwargs):
        scans()
        return read(*args, **kwargs)
    return counted


def shared(work):
    """Spin in plain Python (no calls) so the time is this function's own."""
    total = 0
    for number in range(work):
        total += number
    return total


def b(work):
    """Reach ``shared`` from one side."""
    return shared(work)


def d(work):
    """Reach ``shared`` from the other side."""
    return shared(work)


def c(work):
    """Call ``d`` so that ``c`` -> ``d`` is a single-caller chain."""
    return d(work)


def a(work):
    """Call ``b`` twice and ``c`` once."""
    return b(work) + b(work) + c(work)


def countdown(depth):
    """Recurse ``depth`` times."""
    return countdown(depth - 1) + 1 if depth else 0


def workload(work=2000):
    """Run the whole known call graph once."""
    return a(work) + countdown(5)


def profile_stats(function, *args):
    """Run ``function`` under cProfile and return the profiler with its stats created."""
    profiler = cProfile.Profile()
    profiler.runcall(function, *args)
    profiler.create_stats()
    return profiler


def real_stats(work=2000):
    """Profile the fixture workload and return it as ``pstats.Stats``."""
    return pstats.Stats(profile_stats(workload, work))


def write_profile(
    folder,
    *,
    work=2000,
    method="GET",
    path="/work",
    status=200,
    start=None,
    indexed=True,
):
    """Profile ``workload(work)`` into ``folder`` like the middleware does; return the id."""
    start = time.time() if start is None else start
    profiler = profile_stats(workload, work)
    elapsed = sum(entry[3] for func, entry in profiler.stats.items() if func[2] == "workload")
    name = profile_filename(method, path, elapsed * 1000, start)
    profiler.dump_stats(os.path.join(folder, name))
    if indexed:
        record = index_record(name, profiler.stats, method, path, status, start)
        append_index(folder, dict(record, elapsed_ms=elapsed * 1000))
    return name


def index_record(name, stats, method, path, status, start):
    """Build the index line the middleware writes for one profile."""
    return {
        "id": name,
        "method": method,
        "path": path,
        "status": status,
        "elapsed_ms": sum(entry[2] for entry in stats.values()) * 1000,
        "time": start,
        "calls": sum(entry[1] for entry in stats.values()),
        "primitive_calls": sum(entry[0] for entry in stats.values()),
        "total_time": sum(entry[2] for entry in stats.values()),
        "overlapped": 0,
        "python": "3.x",
    }


def index_entry(name, **fields):
    """Build an index record for ``name`` with defaults for the other fields."""
    base = {
        "id": name,
        "method": "GET",
        "path": "/work",
        "status": 200,
        "elapsed_ms": 5.0,
        "time": 1_700_000_000.0,
        "calls": 10,
        "primitive_calls": 10,
        "total_time": 0.005,
        "overlapped": 0,
        "python": "3.11.7",
    }
    base.update(fields)
    return base


def index_lines(folder):
    """Return the raw lines of the folder's index."""
    with open(os.path.join(folder, INDEX_NAME), encoding="ascii") as index:
        return index.read().splitlines()


def write_raw(folder, name, data):
    """Write bytes, or marshal any other object, into ``folder/name``; return the path."""
    path = os.path.join(folder, name)
    with open(path, "wb") as file:
        if isinstance(data, bytes):
            file.write(data)
        else:
            marshal.dump(data, file)
    return path


def fake_name(method="GET", slug="work", start_ms=1_700_000_000_000, elapsed=5, seq=1):
    """Build a file name matching ``FILENAME_RE`` with chosen parts."""
    return f"{method}.{slug}.{elapsed}ms.{start_ms}.4242-{seq}.prof"


def edge(calls, tottime, cumtime, primitive_calls=None):
    """Build a cProfile callers value ``(nc, cc, tt, ct)``."""
    return (calls, calls if primitive_calls is None else primitive_calls, tottime, cumtime)


def synthetic_stats():
    """Return a hand-made pstats dict with exact times (seconds) for deterministic checks.

    main(1.0) -> left(0.6) -> shared(0.4 of 0.5), right(0.3) -> shared(0.1 of 0.5);
    left -> deep(0.1) -> deeper(0.05); main -> tiny(0.001); and a second root ``other``.
    """
    main, left, right = ("app.py", 1, "main"), ("app.py", 10, "left"), ("app.py", 20, "right")
    shared_func, deep = ("lib.py", 5, "shared"), ("app.py", 30, "deep")
    deeper = ("x.py", 1, "deeper")
    tiny, other = ("app.py", 40, "tiny"), ("other.py", 1, "other")
    return {
        main: (1, 1, 0.099, 1.0, {}),
        left: (1, 1, 0.1, 0.6, {main: edge(1, 0.1, 0.6)}),
        right: (1, 1, 0.2, 0.3, {main: edge(1, 0.2, 0.3)}),
        shared_func: (3, 3, 0.5, 0.5, {left: edge(2, 0.4, 0.4), right: edge(1, 0.1, 0.1)}),
        deep: (1, 1, 0.05, 0.1, {left: edge(1, 0.05, 0.1)}),
        deeper: (1, 1, 0.05, 0.05, {deep: edge(1, 0.05, 0.05)}),
        tiny: (1, 1, 0.001, 0.001, {main: edge(1, 0.001, 0.001)}),
        other: (1, 1, 0.25, 0.25, {}),
    }


class TempFolderTestCase(unittest.TestCase):
    """A test case with a fresh, automatically removed profile folder in ``self.folder``."""

    def setUp(self):
        """Create the folder."""
        self.folder = tempfile.mkdtemp(prefix="tracker07-profiles-")
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)
