"""``Tracker(app)``: profile mode, the dashboard, endpoint tracking and the CLI on any Flask app.

::

    from tracker_07 import Tracker

    tracker = Tracker()              # or Tracker(app, PROFILER_ENABLED=True)

    def create_app():
        app = Flask(__name__)
        tracker.init_app(app)
        return app

Each feature follows its own ``*_ENABLED`` setting: profile mode and the toolbar off, the
dashboard (loopback clients only unless credentials are set) and endpoint tracking on.
Every setting has a default (:mod:`tracker_07.settings`), so an app that sets nothing
works; the profile folder is the app's ``instance/profiles`` and the store its
``instance/tracker.sqlite3``.
"""
import weakref

from . import dashboard, profiler, settings, toolbar
from .profiles import cli as profiles_cli
from .sql.extension import EXTENSION_KEY as SQL_KEY
from .sql.extension import SqlCapture
from .tracking.cli import EXTENSION_KEY as TRACKING_KEY
from .tracking.cli import tracker_cli
from .tracking.extension import Tracking

#: ``app.extensions[EXTENSION_KEY]`` is the :class:`Tracker` attached to that app.
EXTENSION_KEY = "tracker"


class Tracker:
    """Flask extension: ``Tracker(app, **settings)`` or ``Tracker(**settings).init_app(app)``.

    Keyword settings (``PROFILER_ENABLED=True``) override ``app.config``.  One instance may
    serve several apps; each keeps its own profiler, store and writer.
    """

    def __init__(self, app=None, **overrides):
        self.overrides = overrides
        self._apps = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app, **overrides):
        """Check the settings, then add each enabled feature and both command groups."""
        if app.extensions.get(EXTENSION_KEY) is not None:
            raise RuntimeError(f"Tracker is already attached to the app {app.name!r}.")
        config = settings.apply(app, {**self.overrides, **overrides})
        if config["DASHBOARD_ENABLED"]:
            dashboard.init_app(app)
        store_engine = None
        if config["TRACKER_ENABLED"]:
            store_engine = Tracking(app).engine
        if config["TRACKER_SQL_ENABLED"]:  # tracking and profile mode read it from the environ
            SqlCapture(app, store_engine)
        if config["PROFILER_ENABLED"]:  # outermost, so a profile includes tracking's cost
            profiler.init_app(app)
        toolbar.init_app(app)  # outermost of all: it reads what the profiler saved
        profiles_cli.init_app(app)
        app.cli.add_command(tracker_cli)
        app.extensions[EXTENSION_KEY] = self
        self._apps.add(app)

    def watch_engine(self, engine, app=None):
        """Capture the queries of a SQLAlchemy ``engine`` in each request's profile and
        tracking (Flask-SQLAlchemy's engines are found without this).

        :param app: the app whose requests use it; needed only when this instance serves
            several apps.
        :return: the engine.
        :raise RuntimeError: if no app with query capture (``TRACKER_SQL_ENABLED``) is attached.
        :raise ValueError: for Tracker's own store engine.
        """
        apps = [app] if app is not None else list(self._apps)
        captures = [each.extensions[SQL_KEY] for each in apps if SQL_KEY in each.extensions]
        if not captures:
            raise RuntimeError("Attach Tracker to an app with TRACKER_SQL_ENABLED on first.")
        for sql_capture in captures:
            sql_capture.watch_engine(engine)
        return engine

    def flush(self, app=None, timeout=5.0):
        """Store every request record queued so far (for tests and scripts).

        :param app: the app to flush; by default every app this instance is attached to.
        :return: False if the store did not take everything within ``timeout`` seconds.
        """
        apps = [app] if app is not None else list(self._apps)
        done = True
        for each in apps:
            tracking = each.extensions.get(TRACKING_KEY)
            if tracking is not None:
                done = tracking.flush(timeout) and done
        return done
