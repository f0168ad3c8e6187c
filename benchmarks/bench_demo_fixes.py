"""Before and after of the demo's two fixes: /posts/slow (N+1) against /posts/fast
(selectinload), and /words/slow against /words/cached (Flask-Caching).

    python benchmarks/bench_demo_fixes.py [--repeat 20]

The demo app (``create_app("development")``, tracking off, its data in a temporary SQLite
file) serves each page ``--repeat`` times through ``app.wsgi_app`` after one warm-up
request; pages are interleaved and the median wall ms per request is printed, with the
number of queries each page ran (from Tracker's capture).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position  # the repository root must be on the path first
from werkzeug.test import create_environ

from tracker_07 import create_app
from tracker_07.sql.capture import ENVIRON_KEY

PAGES = ("/posts/slow", "/posts/fast", "/words/slow", "/words/cached")


def serve(app, path):
    """One request through the WSGI app; returns (wall ms, queries run)."""
    environ = create_environ(path)
    started = time.perf_counter()
    body = app.wsgi_app(environ, lambda *args: None)
    for _chunk in body:
        pass
    body.close()
    elapsed = (time.perf_counter() - started) * 1000.0
    queries = environ.get(ENVIRON_KEY)
    return elapsed, queries.count if queries is not None else 0


def main():
    """Serve the pages and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        app = create_app("development", TRACKER_ENABLED=False, DASHBOARD_ENABLED=False,
                         SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmpdir}/demo.sqlite3")
        for path in PAGES:  # warm up: the data set is made, the cache filled
            serve(app, path)
        times = {path: [] for path in PAGES}
        queries = {}
        for _ in range(options.repeat):
            for path in PAGES:
                elapsed, count = serve(app, path)
                times[path].append(elapsed)
                queries[path] = count
    print(f"Python {sys.version.split()[0]}, {options.repeat} requests a page, median wall ms")
    for path in PAGES:
        print(f"  {path:15s} {statistics.median(times[path]):8.2f} ms  {queries[path]:4d} queries")


if __name__ == "__main__":
    main()
