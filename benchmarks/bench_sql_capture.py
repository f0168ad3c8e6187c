"""What capturing each request's database queries costs: per query and per request, with
capture on and off side by side in one run (and Flask-SQLAlchemy's own query recording,
the data Flask-DebugToolbar's SQL panel shows, and Flask-DebugToolbar itself per request).

    python benchmarks/bench_sql_capture.py [--rounds 5] [--queries 20000] [--requests 2000]

Per query: ``conn.execute(text("SELECT :x"), {"x": n})`` on an in-memory SQLite engine,
called from a few frames of "app" code (this file), timed with ``time.process_time()``:

* ``plain engine``: the engine is not watched;
* ``watched, outside a request``: Tracker's listeners are on, but no request is collecting
  (scripts, the tracking writer);
* ``Tracker capture``: watched and inside a request's collection (timing, rows, call site,
  parameter hash);
* ``Flask-SQLAlchemy engine`` and ``... + SQLALCHEMY_RECORD_QUERIES``: Flask-SQLAlchemy's
  recording (``get_recorded_queries``, what Flask-DebugToolbar's SQL panel reads), inside an
  app context.

Per request: a Flask app with ``Tracker(app)`` (tracking on, profile mode and the dashboard
off) and ``TRACKER_SQL_ENABLED`` on or off; ``app.wsgi_app`` called in a loop on a route
that runs no query and on one that runs ten; CPU µs per request over the loop plus the
writer's flush (the writer counts the queries and looks for findings).

Flask-DebugToolbar, per request: the same two routes (returning an HTML page, as the toolbar
only adds itself to HTML) on a Flask-SQLAlchemy app, with ``DebugToolbarExtension``
(``DEBUG_TB_ENABLED``, its default panels with the SQLAlchemy one, which needs
``SQLALCHEMY_RECORD_QUERIES``, ``DEBUG_TB_INTERCEPT_REDIRECTS`` off, requests from
127.0.0.1) and without it.  Flask-DebugToolbar is not a project dependency: the script
creates ``benchmarks/.venv-debugtoolbar`` (git-ignored) with pinned versions, the repo's
Flask, Werkzeug, SQLAlchemy and Flask-SQLAlchemy among them, and measures these variants in
a fresh child process of that virtualenv each round (CPU µs of the child's loop, after its
own warm-up; ``--skip-toolbar`` leaves them out).

Variants are interleaved round by round and medians printed.
"""
import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, REPO_ROOT)

# pylint: disable=wrong-import-position  # the repository root must be on the path first
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import create_engine, text
from werkzeug.test import create_environ

STATEMENT = text("SELECT :x")
TOOLBAR_VENV = os.path.join(HERE, ".venv-debugtoolbar")
TOOLBAR_PYTHON = os.path.join(TOOLBAR_VENV, "bin", "python")
TOOLBAR_PINS = ("Flask==3.1.3", "Werkzeug==3.1.9", "SQLAlchemy==2.0.44",
                "Flask-SQLAlchemy==3.1.1", "Flask-DebugToolbar==0.16.0")
PAGE = "<!doctype html><html><head><title>bench</title></head><body><p>{}</p></body></html>"
PATHS = {"/none": "no query", "/ten": "10 queries"}


def run_queries(engine, count):
    """``count`` queries, each from two frames of app code."""
    with engine.connect() as conn:
        for number in range(count):
            _view(conn, number)


def _view(conn, number):
    return _helper(conn, number)


def _helper(conn, number):
    return conn.execute(STATEMENT, {"x": number}).scalar()


def cpu_per_call(function, count):
    """CPU µs per call of ``function`` run ``count`` times (it loops itself)."""
    started = time.process_time()
    function(count)
    return (time.process_time() - started) / count * 1e6


def query_variants():
    """name -> function(count) running that many queries in that setting."""
    # pylint: disable-next=import-outside-toplevel,import-error  # parent only, repo on the path
    from tracker_07.sql import capture

    plain = create_engine("sqlite://")
    watched_idle = create_engine("sqlite://")
    capture.watch(watched_idle)
    watched = create_engine("sqlite://")
    capture.watch(watched)

    def captured(count):
        with capture.collect() as queries:
            run_queries(watched, count)
        assert queries.count == count

    variants = {
        "plain engine": lambda count: run_queries(plain, count),
        "watched, outside a request": lambda count: run_queries(watched_idle, count),
        "Tracker capture": captured,
    }
    for record in (False, True):
        app = Flask(f"fsa-{record}")
        app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", SQLALCHEMY_RECORD_QUERIES=record)
        db = SQLAlchemy(app)

        def flask_sqlalchemy(count, app=app, db=db):
            with app.test_request_context():
                run_queries(db.engine, count)

        name = "Flask-SQLAlchemy engine" + (" + SQLALCHEMY_RECORD_QUERIES" if record else "")
        variants[name] = flask_sqlalchemy
    return variants


def request_variants(tmpdir, apps):
    """name -> function(count) serving that many requests through ``app.wsgi_app``
    (the apps are added to ``apps`` to be shut down)."""
    # pylint: disable-next=import-outside-toplevel,import-error  # parent only, repo on the path
    from tracker_07 import Tracker

    variants = {}
    for enabled in (False, True):
        app = Flask(f"bench-{enabled}", instance_path=os.path.join(tmpdir, f"i{enabled}"))
        app.config.update(DASHBOARD_ENABLED=False, TRACKER_SQL_ENABLED=enabled,
                          TRACKER_DATABASE_URL=f"sqlite:///{tmpdir}/store-{enabled}.sqlite3")
        tracker = Tracker(app)
        apps.append(app)
        engine = create_engine(f"sqlite:///{tmpdir}/data-{enabled}.sqlite3")
        if enabled:
            tracker.watch_engine(engine)

        @app.route("/none")
        def none():
            return "no query"

        @app.route("/ten")
        def ten(engine=engine):
            run_queries(engine, 10)
            return "ten queries"

        for path, what in PATHS.items():
            def serve(count, app=app, tracker=tracker, path=path):
                serve_requests(app, path, count)
                tracker.flush(app, 30)

            label = "capture on " if enabled else "capture off"
            variants[f"{label}  {path} ({what})"] = functools.partial(cpu_per_call, serve)
    return variants


def serve_requests(app, path, count):
    """Call ``app.wsgi_app`` ``count`` times for ``path`` from 127.0.0.1; the last body."""
    environ = create_environ(path, environ_overrides={"REMOTE_ADDR": "127.0.0.1"})
    chunks = []
    for _ in range(count):
        body = app.wsgi_app(dict(environ), lambda *args: None)
        chunks = list(body)
        body.close()
    return b"".join(chunks)


def toolbar_app(tmpdir, with_toolbar):
    """A Flask-SQLAlchemy app with the two routes, with Flask-DebugToolbar or without."""
    app = Flask(f"toolbar-{with_toolbar}")
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmpdir}/data.sqlite3",
                      SQLALCHEMY_RECORD_QUERIES=with_toolbar, SECRET_KEY="bench",
                      DEBUG_TB_ENABLED=with_toolbar, DEBUG_TB_INTERCEPT_REDIRECTS=False)
    db = SQLAlchemy(app)

    @app.route("/none")
    def none():
        return PAGE.format("no query")

    @app.route("/ten")
    def ten():
        run_queries(db.engine, 10)
        return PAGE.format("ten queries")

    if with_toolbar:
        # pylint: disable-next=import-outside-toplevel,import-error  # child venv only
        from flask_debugtoolbar import DebugToolbarExtension
        DebugToolbarExtension(app)
    return app


def toolbar_child(with_toolbar, path, count):
    """In the child: warm up, serve ``count`` requests, print CPU µs per request as JSON."""
    with tempfile.TemporaryDirectory() as tmpdir:
        app = toolbar_app(tmpdir, with_toolbar)
        page = serve_requests(app, path, 200)
        if with_toolbar:  # the toolbar is on the page, its SQL panel saw the queries
            expected = b"10 queries" if path == "/ten" else b"0 queries"
            assert b"flDebug" in page and expected in page, page[-2000:]
        print(json.dumps({"cpu_us": cpu_per_call(
            functools.partial(serve_requests, app, path), count)}))


def ensure_toolbar_venv(install):
    """Create benchmarks/.venv-debugtoolbar with the pinned packages (only there)."""
    if os.path.exists(TOOLBAR_PYTHON) and not install:
        return
    print(f"creating {TOOLBAR_VENV}, installing into it only: {' '.join(TOOLBAR_PINS)}",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", TOOLBAR_VENV], check=True)
    subprocess.run([TOOLBAR_PYTHON, "-m", "pip", "install", "-q", *TOOLBAR_PINS], check=True)


def toolbar_variants():
    """name -> function(count) measuring that variant in a fresh child of the toolbar venv."""
    variants = {}
    for with_toolbar in (False, True):
        for path, what in PATHS.items():
            def in_child(count, with_toolbar=with_toolbar, path=path):
                output = subprocess.run(
                    [TOOLBAR_PYTHON, __file__, "--child-toolbar", str(int(with_toolbar)), path,
                     str(count)], env=dict(os.environ, PYTHONPATH=REPO_ROOT), check=True,
                    capture_output=True, text=True, timeout=600).stdout
                return json.loads(output.strip().splitlines()[-1])["cpu_us"]

            label = "FSA + DebugToolbar" if with_toolbar else "FSA, no toolbar"
            variants[f"{label}  {path} ({what})"] = in_child
    return variants


def measure(variants, count, rounds):
    """Median of each variant's CPU µs per call (its function returns them), interleaved
    round by round."""
    results = {name: [] for name in variants}
    names = list(variants)
    for name in names:  # warm up: first connections, compiled statements, schema
        if not name.startswith("FSA"):  # a child process warms itself up
            variants[name](min(count, 200))
    for round_number in range(rounds):
        order = names[round_number % len(names):] + names[:round_number % len(names)]
        for name in order:
            results[name].append(variants[name](count))
    return {name: statistics.median(values) for name, values in results.items()}


def main():
    """Run both measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--skip-toolbar", action="store_true")
    parser.add_argument("--reinstall", action="store_true")
    parser.add_argument("--child-toolbar", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child_toolbar:
        toolbar_child(options.child_toolbar[0] == "1", options.child_toolbar[1],
                      int(options.child_toolbar[2]))
        return
    if not options.skip_toolbar:
        ensure_toolbar_venv(options.reinstall)
    print(f"Python {sys.version.split()[0]}, {options.rounds} rounds, medians\n")
    per_query = measure({name: functools.partial(cpu_per_call, function)
                         for name, function in query_variants().items()},
                        options.queries, options.rounds)
    base = per_query["plain engine"]
    print(f"Per query ({options.queries} queries a round), CPU µs:")
    for name, value in per_query.items():
        print(f"  {name:50s} {value:8.2f}   {value - base:+7.2f} vs plain engine")
    fsa = per_query["Flask-SQLAlchemy engine"]
    print(f"  {'(SQLALCHEMY_RECORD_QUERIES vs its own engine)':50s} "
          f"{per_query['Flask-SQLAlchemy engine + SQLALCHEMY_RECORD_QUERIES'] - fsa:+17.2f}")
    with tempfile.TemporaryDirectory() as tmpdir:
        apps = []
        variants = request_variants(tmpdir, apps)
        if not options.skip_toolbar:
            variants.update(toolbar_variants())
        per_request = measure(variants, options.requests, options.rounds)
        for app in apps:
            app.extensions["tracker_tracking"].shutdown()
    print_per_request(per_request, options.requests)


def print_per_request(per_request, requests):
    """The per-request table, then what capture and the toolbar add."""
    print(f"\nPer request ({requests} requests a round), CPU µs; capture on/off: "
          "Tracker, tracking on, the writer included; FSA: Flask-SQLAlchemy, in a child of "
          ".venv-debugtoolbar:")
    for name, value in per_request.items():
        print(f"  {name:50s} {value:8.2f}")
    for off_label, on_label, what in (("capture off", "capture on ", "capture on - off"),
                                      ("FSA, no toolbar", "FSA + DebugToolbar",
                                       "DebugToolbar - no toolbar")):
        if f"{on_label}  /ten (10 queries)" not in per_request:
            continue
        added = {}
        for path, queries in PATHS.items():
            added[path] = (per_request[f"{on_label}  {path} ({queries})"]
                           - per_request[f"{off_label}  {path} ({queries})"])
            print(f"  {what + ', ' + path:50s} {added[path]:+8.2f}")
        print(f"  {what + ', per query ((/ten - /none) / 10)':50s} "
              f"{(added['/ten'] - added['/none']) / 10:+8.2f}")


if __name__ == "__main__":
    main()
