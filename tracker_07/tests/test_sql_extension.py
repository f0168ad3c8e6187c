"""Attaching capture (tracker_07/sql/extension.py and ``Tracker.watch_engine``): engines
named by the app, Flask-SQLAlchemy's found in either order, Tracker's store refused."""
import os
import tempfile
import unittest

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import create_engine, text

from tracker_07 import Tracker
from tracker_07.profiles import index
from tracker_07.sql import capture
from tracker_07.tests.tracking_helpers import get


class ExtensionTest(unittest.TestCase):
    """One app per test, its files in a temporary folder."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(self._tmp.cleanup)
        self.tmpdir = self._tmp.name

    def make_app(self, **config):
        """A Flask app with profile mode into the temporary folder and tracking off."""
        app = Flask(__name__, instance_path=os.path.join(self.tmpdir, "instance"))
        app.config.update({"TRACKER_ENABLED": False, "PROFILER_ENABLED": True,
                           "PROFILER_PRINT": False,
                           "PROFILER_DIR": os.path.join(self.tmpdir, "profiles"),
                           "SQLALCHEMY_DATABASE_URI": f"sqlite:///{self.tmpdir}/db.sqlite3",
                           **config})
        return app

    def last_record(self):
        """The newest profile's index record."""
        return index.read_index(os.path.join(self.tmpdir, "profiles"))[-1]

    def flask_sqlalchemy_app(self, tracker_first):
        """An app using Flask-SQLAlchemy, with Tracker attached before or after it."""
        app = self.make_app()
        db = SQLAlchemy()
        if tracker_first:
            Tracker(app)
        db.init_app(app)
        if not tracker_first:
            Tracker(app)

        @app.route("/two")
        def two():
            db.session.execute(text("SELECT 1"))
            db.session.execute(text("SELECT 2"))
            return jsonify(2)

        with app.app_context():
            engine = db.engine
        self.addCleanup(engine.dispose)
        return app, engine

    def test_flask_sqlalchemy_initialised_first_is_watched_at_once(self):
        app, engine = self.flask_sqlalchemy_app(tracker_first=False)
        self.assertTrue(capture.is_watched(engine))
        get(app.test_client(), "/two")
        self.assertEqual(self.last_record()["queries"], 2)

    def test_flask_sqlalchemy_initialised_after_tracker_is_watched_by_the_first_request(self):
        app, engine = self.flask_sqlalchemy_app(tracker_first=True)
        self.assertFalse(capture.is_watched(engine))
        get(app.test_client(), "/two")
        self.assertTrue(capture.is_watched(engine))
        self.assertEqual(self.last_record()["queries"], 2)
        self.assertEqual(app.extensions["tracker_sql"].engines, [engine])

    def test_watch_engine_returns_the_engine_and_captures_it(self):
        app = self.make_app()
        tracker = Tracker(app)
        engine = tracker.watch_engine(create_engine("sqlite://"))
        self.addCleanup(engine.dispose)
        tracker.watch_engine(engine, app=app)  # again: no second listener
        self.assertEqual(app.extensions["tracker_sql"].engines, [engine])

        @app.route("/one")
        def one():
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return "ok"

        get(app.test_client(), "/one")
        self.assertEqual(self.last_record()["queries"], 1)
        self.assertEqual(self.last_record()["sql"]["queries"]["statements"][0]["site"]["function"],
                         "one")

    def test_trackers_own_store_engine_is_refused(self):
        app = self.make_app(TRACKER_ENABLED=True,
                            TRACKER_DATABASE_URL=f"sqlite:///{self.tmpdir}/store.sqlite3")
        tracker = Tracker(app)
        tracking = app.extensions["tracker_tracking"]
        self.addCleanup(tracking.shutdown)
        with self.assertRaises(ValueError):
            tracker.watch_engine(tracking.engine)
        self.assertFalse(capture.is_watched(tracking.engine))

    def test_capture_off_records_no_queries(self):
        app = self.make_app(TRACKER_SQL_ENABLED=False)
        tracker = Tracker(app)
        self.assertNotIn("tracker_sql", app.extensions)
        with self.assertRaises(RuntimeError):
            tracker.watch_engine(create_engine("sqlite://"))
        get(app.test_client(), "/")
        self.assertNotIn("queries", self.last_record())

    def test_an_app_without_flask_sqlalchemy_watches_nothing_by_itself(self):
        app = self.make_app()
        Tracker(app)
        self.assertEqual(app.extensions["tracker_sql"].watch_flask_sqlalchemy(), 0)
        self.assertEqual(app.extensions["tracker_sql"].options.slow_ms, 100)
