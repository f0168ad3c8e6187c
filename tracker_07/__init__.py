"""Tracker: find out why a Flask app is slow.

``create_app(config_name)`` builds the app from a named configuration in
:mod:`tracker_07.config`; the ``profile`` configuration profiles every request.
"""
from flask import Flask

from . import config as configuration
from . import dashboard, profiler, tracking
from .app_utils import check_system
from .main import bp as main_bp
from .profiles import cli as profiles_cli


def create_app(config_name="default", **settings):
    """Build the Tracker app from a named configuration, ``FLASK_*`` variables and ``settings``.

    :param config_name: ``development``, ``testing``, ``production``, ``profile`` or ``default``.
    :param settings: configuration keys that override everything else, e.g. ``PROFILER_DIR``.
    :raise ConfigError: for an unknown name or a setting of the wrong type or range.
    """
    check_system()
    config_class = configuration.get_config(config_name)
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config_class)
    app.config.from_prefixed_env()
    app.config.update(settings, CONFIG_NAME=config_name)
    configuration.finalize(app)

    app.register_blueprint(main_bp)
    dashboard.init_app(app)
    if app.config["TRACKER_ENABLED"]:
        tracking.init_app(app)
    profiler.init_app(app)
    profiles_cli.init_app(app)
    return app
