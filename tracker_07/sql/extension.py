"""``SqlCapture(app)``: capture the queries of the engines an app uses, request by request.

``Tracker(app)`` attaches it when ``TRACKER_SQL_ENABLED`` is on (the default).  Engines
are watched when named (``tracker.watch_engine(engine)``) and, for Flask-SQLAlchemy,
found on their own: when Tracker is attached after ``db.init_app(app)``, at once; when
before, on the app's first request.  Tracker's own store engine is never watched.
"""
from .. import settings as tracker_settings
from . import capture

#: ``app.extensions[EXTENSION_KEY]`` is the app's :class:`SqlCapture`.
EXTENSION_KEY = "tracker_sql"


class SqlCapture:
    """Per-request query capture for one app."""

    def __init__(self, app, store_engine=None):
        config = tracker_settings.apply(app)
        self.app = app
        self.store_engine = store_engine
        self.options = capture.CaptureOptions(
            keep_params=config["TRACKER_SQL_PARAMS"],
            slow_ms=config["TRACKER_SLOW_QUERY_MS"],
            n_plus_one=config["TRACKER_N_PLUS_ONE_MIN"],
            max_queries=config["TRACKER_SQL_MAX_QUERIES"],
            logger=app.logger,
        )
        self.engines = []
        app.wsgi_app = capture.QueryCapture(app.wsgi_app, self.options,
                                            before_first=self.watch_flask_sqlalchemy)
        app.extensions[EXTENSION_KEY] = self
        self.watch_flask_sqlalchemy()

    def watch_engine(self, engine):
        """Capture ``engine``'s queries; Tracker's own store is refused.

        :return: the engine, so ``engine = tracker.watch_engine(create_engine(url))`` works.
        """
        if engine is self.store_engine:
            raise ValueError("Tracker's own store engine is never captured.")
        capture.watch(engine)
        if engine not in self.engines:
            self.engines.append(engine)
        return engine

    def watch_flask_sqlalchemy(self):
        """Watch every engine Flask-SQLAlchemy made for this app (if it is attached yet)."""
        extension = self.app.extensions.get("sqlalchemy")
        if extension is None:
            return 0
        with self.app.app_context():
            engines = list(extension.engines.values())
        for engine in engines:
            self.watch_engine(engine)
        return len(engines)
