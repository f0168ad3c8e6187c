"""Tracker: find out why a Flask app is slow.

``Tracker(app)`` brings profile mode, the dashboard, endpoint tracking and the CLI to any
Flask app.  ``create_app(config_name)`` builds the demo app, Tracker's first user, from a
named configuration in :mod:`tracker_07.config`; its ``profile`` configuration profiles
every request.
"""
from flask import Flask

from . import config as configuration
from .app_utils import check_system
from .extension import Tracker

__all__ = ["Tracker", "create_app"]


def create_app(config_name="default", **settings):
    """Build the demo app from a named configuration, ``FLASK_*`` variables and ``settings``.

    :param config_name: ``development``, ``testing``, ``production``, ``profile`` or ``default``.
    :param settings: configuration keys that override everything else, e.g. ``PROFILER_DIR``.
    :raise ConfigError: for an unknown name or a setting of the wrong type or range.
    """
    check_system()
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(configuration.get_config(config_name))
    app.config.from_prefixed_env()
    app.config.update(settings, CONFIG_NAME=config_name)
    configuration.finalize(app)
    # The demo needs Flask-SQLAlchemy and Flask-Caching; ``Tracker`` on your app does not.
    from . import main  # pylint: disable=import-outside-toplevel

    main.init_app(app)
    Tracker(app)
    return app
