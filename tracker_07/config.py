"""The demo app's named configurations, and the rules for its secret key and production.

Every Tracker setting's default and check lives in :mod:`tracker_07.settings`.

Precedence, lowest first: the configuration class, ``FLASK_*`` environment
variables (``.flaskenv``, ``.env`` or the real environment, values parsed as
JSON when they can be), then keyword settings given to ``create_app``.
Class bodies read nothing from the environment, so importing this module never
fails; secrets are looked up when an app is built.
"""
import os
import secrets

from . import settings
from .settings import ConfigError

__all__ = ["ConfigError", "config", "get_config", "finalize"]


class Config:
    """What the demo app's configurations share; every other setting has the default of
    :data:`tracker_07.settings.DEFAULTS`."""

    SECRET_KEY = None
    SESSION_COOKIE_SAMESITE = "Lax"
    #: The dashboard is on in development and profile mode only (it needs a password elsewhere).
    DASHBOARD_ENABLED = False


class DevelopmentConfig(Config):
    """Local development: the dashboard on, ``app.debug`` set (``flask run`` still needs
    ``--debug`` for the debugger and reloader)."""

    DEBUG = True
    DASHBOARD_ENABLED = True
    TOOLBAR_ENABLED = True


class TestingConfig(Config):
    """Unit tests: exceptions propagate, nothing is written outside temporary folders."""

    TESTING = True
    TRACKER_ENABLED = False


class ProductionConfig(Config):
    """A real deployment: a secret key must come from the environment."""

    PRODUCTION = True


class ProfileConfig(DevelopmentConfig):
    """Development with every request profiled and saved under the instance folder."""

    DEBUG = False
    PROFILER_ENABLED = True


config = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
    "profile": ProfileConfig,
    "default": DevelopmentConfig,
}


def get_config(name):
    """Return the configuration class called ``name``, or say which names exist."""
    try:
        return config[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(config))
        raise ConfigError(f"Unknown configuration {name!r}; valid names are: {valid}.") from None


def finalize(app):
    """Check every Tracker setting of ``app``, settle the secret key, refuse unsafe production."""
    settings.apply(app)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or None
    if not app.config["SECRET_KEY"]:
        if app.config.get("PRODUCTION"):
            raise ConfigError(
                "The production configuration needs a secret key: set FLASK_SECRET_KEY "
                "(or SECRET_KEY) in the environment, e.g. to the output of "
                "python -c 'import secrets; print(secrets.token_hex(32))'."
            )
        app.config["SECRET_KEY"] = secrets.token_hex(32)  # random per process, never a fixed one
    credentials = (app.config["DASHBOARD_USERNAME"], app.config["DASHBOARD_PASSWORD"])
    if (app.config.get("PRODUCTION") and app.config["DASHBOARD_ENABLED"]
            and not all(credentials)):
        raise ConfigError(
            "The production configuration refuses to expose the dashboard without a password: "
            "set FLASK_DASHBOARD_USERNAME and FLASK_DASHBOARD_PASSWORD, or turn it off with "
            "FLASK_DASHBOARD_ENABLED=false."
        )
