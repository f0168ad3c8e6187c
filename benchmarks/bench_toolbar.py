"""Benchmark the toolbar and the Server-Timing header against bare Flask and Tracker without them.

Run from the repository root::

    python benchmarks/bench_toolbar.py                       # defaults: 2,000 requests, 7 rounds
    python benchmarks/bench_toolbar.py --requests 200 --rounds 2      # a quick smoke run

One small Flask app (an HTML page of about 6 KB and a JSON answer) is built once per
variant, each with its own temporary instance folder:

* ``bare Flask``: no Tracker;
* ``Tracker``: ``Tracker(app)`` with its defaults (endpoint tracking into SQLite, dashboard on,
  toolbar and Server-Timing off);
* ``+ Server-Timing``: the same with ``TRACKER_SERVER_TIMING=True`` (the header and the
  profile id header, no toolbar);
* ``+ toolbar``: the same with ``TOOLBAR_ENABLED=True`` (the toolbar on HTML pages, and
  Server-Timing).

Each request goes straight through the WSGI app (a prebuilt environ, the body read and
closed, as a server does), from 127.0.0.1 and from a remote address (which never gets the
toolbar or the headers).  Variants are interleaved in chunks; every round times
``--requests`` requests of each variant and route; the table shows the median of the
rounds' mean wall time per request, and what each variant adds to ``Tracker``.

With ``--profile-requests N`` (default 100) it also times profile mode
(``PROFILER_ENABLED``, saving without printing) with and without the toolbar on the HTML
page, where the toolbar also lists the profile's top functions.  Last, the toolbar's WSGI
wrapper alone around a constant WSGI app, which isolates its own cost from Flask's noise.
"""
import argparse
import contextlib
import gc
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time
from importlib import metadata

from flask import Flask, jsonify

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from tracker_07 import Tracker  # noqa: E402  pylint: disable=wrong-import-position

ROWS = "".join(f"<tr><td>item {n}</td><td>{n * 7}</td><td>note {n}</td></tr>" for n in range(120))
PAGE = (f"<!doctype html><html><head><title>Bench</title></head><body><h1>Items</h1>"
        f"<table>{ROWS}</table></body></html>")
VARIANTS = {
    "bare Flask": None,
    "Tracker": {},
    "+ Server-Timing": {"TRACKER_SERVER_TIMING": True},
    "+ toolbar": {"TOOLBAR_ENABLED": True},
}
PROFILE_VARIANTS = {
    "profile mode": {"PROFILER_ENABLED": True, "PROFILER_PRINT": False},
    "profile mode + toolbar": {"PROFILER_ENABLED": True, "PROFILER_PRINT": False,
                               "TOOLBAR_ENABLED": True},
}
#: Requests per variant before the next variant's turn.
CHUNK = 100
CASES = (("/page", "127.0.0.1"), ("/json", "127.0.0.1"), ("/page", "203.0.113.9"))


def build(folder, settings):
    """The benchmark app, with Tracker and ``settings`` unless ``settings`` is None."""
    app = Flask(__name__, instance_path=str(folder))

    @app.route("/page")
    def page():
        return PAGE

    @app.route("/json")
    def json_view():
        return jsonify(items=list(range(50)))

    if settings is not None:
        Tracker(app, **settings)
    return app


def environ_for(path, remote):
    """A WSGI environ of a GET request, as Werkzeug's server builds it."""
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote, "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:5000",
        "HTTP_ACCEPT": "text/html", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": None, "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


def start_response(_status, _headers, _exc_info=None):
    """A server's start_response that sends nothing."""
    return None


def run(app, environ, count):
    """Serve ``count`` requests; return the mean wall time per request in µs and the body."""
    wsgi = app.wsgi_app
    body = b""
    started = time.perf_counter()
    for _ in range(count):
        iterable = wsgi(dict(environ), start_response)
        try:
            body = b"".join(iterable)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
    return (time.perf_counter() - started) / count * 1e6, body


def measure(variants, cases, requests, rounds, root):
    """Time every variant on every case; return ``{(variant, case): [µs per round]}``."""
    apps = {name: build(root / name.replace(" ", "_").replace("+", "plus"), settings)
            for name, settings in variants.items()}
    for name, app in apps.items():  # warm up, and check what each variant answers
        for path, remote in cases:
            _us, body = run(app, environ_for(path, remote), 5)
            injected = b"<tracker-toolbar" in body
            expected = "toolbar" in name and path == "/page" and remote == "127.0.0.1"
            if injected != expected:
                raise SystemExit(f"{name} {path} from {remote}: toolbar {injected}")
    results = {}
    chunk = min(CHUNK, requests)
    for _round in range(rounds):
        for path, remote in cases:
            environ = environ_for(path, remote)
            totals = dict.fromkeys(apps, 0.0)
            gc.collect()
            for _chunk in range(max(1, requests // chunk)):  # interleaved: noise hits all alike
                for name, app in apps.items():
                    us, _body = run(app, environ, chunk)
                    totals[name] += us
            for name, total in totals.items():
                results.setdefault((name, (path, remote)), []).append(
                    total / max(1, requests // chunk))
    for app in apps.values():
        tracking = app.extensions.get("tracker_tracking")
        if tracking is not None:
            tracking.shutdown()
    return results


def table(results, variants, cases, base):
    """A markdown table: median µs per request, and the difference to ``base``."""
    heads = [f"`{path}` from " + ("loopback" if remote.startswith("127") else "a remote client")
             for path, remote in cases]
    lines = ["| variant | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(cases)]
    for name in variants:
        cells = []
        for case in cases:
            median = statistics.median(results[(name, case)])
            cell = f"{median:,.1f} µs"
            if base is not None and name != base and (base, case) in results:
                cell += f" ({median - statistics.median(results[(base, case)]):+,.1f})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wrapper_alone(requests, rounds):
    """Time the toolbar's WSGI wrapper around a constant WSGI app (no Flask): its own cost."""
    from tracker_07 import dashboard, settings  # pylint: disable=import-outside-toplevel
    from tracker_07.toolbar import Panel, ToolbarMiddleware  # pylint: disable=import-outside-toplevel
    page = PAGE.encode()

    def constant(_environ, respond):
        respond("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                           ("Content-Length", str(len(page)))])
        return [page]

    app = Flask(__name__)
    config = settings.apply(app, {"TOOLBAR_ENABLED": True, "PROFILER_DIR": ""})
    dashboard.init_app(app)
    wrappers = {
        "constant WSGI app": constant,
        "+ Server-Timing": ToolbarMiddleware(
            constant, None, dict(config, TOOLBAR_ENABLED=False, TRACKER_SERVER_TIMING=True)),
        "+ toolbar": ToolbarMiddleware(constant, Panel(app, config), config),
    }
    holder = {name: Flask(name) for name in wrappers}
    for name, wrapper in wrappers.items():
        holder[name].wsgi_app = wrapper
    results = {}
    for _round in range(rounds):
        for remote in ("127.0.0.1", "203.0.113.9"):
            for name, each in holder.items():
                us, _body = run(each, environ_for("/page", remote), requests)
                results.setdefault((name, ("/page", remote)), []).append(us)
    return wrappers, results


def main():
    """Parse the options, run both parts, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile-requests", type=int, default=100)
    options = parser.parse_args()
    print(f"Python {platform.python_version()}, Flask {metadata.version('flask')}, "
          f"Werkzeug {metadata.version('werkzeug')}; {options.requests} requests x "
          f"{options.rounds} rounds; median of the rounds' mean wall time per request\n")
    root = pathlib.Path(tempfile.mkdtemp(prefix="bench-toolbar-"))
    try:
        results = measure(VARIANTS, CASES, options.requests, options.rounds, root)
        print(table(results, VARIANTS, CASES, "Tracker"))
        if options.profile_requests:
            cases = CASES[:1]
            with contextlib.redirect_stdout(sys.stderr):
                results = measure(PROFILE_VARIANTS, cases, options.profile_requests,
                                  options.rounds, root / "profile")
            print(f"\nProfile mode, {options.profile_requests} requests x {options.rounds} "
                  "rounds (each saves a .prof file):\n")
            print(table(results, PROFILE_VARIANTS, cases, "profile mode"))
        wrappers, results = wrapper_alone(options.requests, options.rounds)
        print("\nThe wrapper alone, around a constant WSGI app that answers the same page:\n")
        print(table(results, wrappers, (("/page", "127.0.0.1"), ("/page", "203.0.113.9")),
                    "constant WSGI app"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
