"""What capturing each request's database queries costs: per query and per request, with
capture on and off side by side in one run (and Flask-SQLAlchemy's own query recording,
the data Flask-DebugToolbar's SQL panel shows, where it applies).

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
writer's flush (the writer counts the queries and looks for findings).  Variants are
interleaved round by round and medians printed.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position  # the repository root must be on the path first
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import create_engine, text
from werkzeug.test import create_environ

from tracker_07 import Tracker
from tracker_07.sql import capture

STATEMENT = text("SELECT :x")


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

        for path in ("/none", "/ten"):
            def serve(count, app=app, tracker=tracker, path=path):
                environ = create_environ(path)
                for _ in range(count):
                    body = app.wsgi_app(dict(environ), lambda *args: None)
                    for _chunk in body:
                        pass
                    body.close()
                tracker.flush(app, 30)

            label = "capture on " if enabled else "capture off"
            variants[f"{label}  {path} ({'10 queries' if path == '/ten' else 'no query'})"] = serve
    return variants


def measure(variants, count, rounds):
    """Median CPU µs per call of each variant, interleaved round by round."""
    results = {name: [] for name in variants}
    names = list(variants)
    for name in names:  # warm up: first connections, compiled statements, schema
        variants[name](min(count, 200))
    for round_number in range(rounds):
        order = names[round_number % len(names):] + names[:round_number % len(names)]
        for name in order:
            results[name].append(cpu_per_call(variants[name], count))
    return {name: statistics.median(values) for name, values in results.items()}


def main():
    """Run both measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=2000)
    options = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {options.rounds} rounds, medians\n")
    per_query = measure(query_variants(), options.queries, options.rounds)
    base = per_query["plain engine"]
    print(f"Per query ({options.queries} queries a round), CPU µs:")
    for name, value in per_query.items():
        print(f"  {name:50s} {value:8.2f}   {value - base:+7.2f} vs plain engine")
    fsa = per_query["Flask-SQLAlchemy engine"]
    print(f"  {'(SQLALCHEMY_RECORD_QUERIES vs its own engine)':50s} "
          f"{per_query['Flask-SQLAlchemy engine + SQLALCHEMY_RECORD_QUERIES'] - fsa:+17.2f}")
    with tempfile.TemporaryDirectory() as tmpdir:
        apps = []
        per_request = measure(request_variants(tmpdir, apps), options.requests, options.rounds)
        for app in apps:
            app.extensions["tracker_tracking"].shutdown()
    print(f"\nPer request ({options.requests} requests a round, tracking on), CPU µs "
          "including the writer:")
    for name, value in per_request.items():
        print(f"  {name:50s} {value:8.2f}")
    for path in ("/none (no query)", "/ten (10 queries)"):
        off = per_request[f"capture off  {path}"]
        on = per_request[f"capture on   {path}"]
        print(f"  {'capture on - off, ' + path:50s} {on - off:+8.2f}")


if __name__ == "__main__":
    main()
