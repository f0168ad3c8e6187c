"""Named configurations, and the checks that turn bad settings into clear errors.

Precedence, lowest first: the configuration class, ``FLASK_*`` environment
variables (``.flaskenv``, ``.env`` or the real environment, values parsed as
JSON when they can be), then keyword settings given to ``create_app``.
Class bodies read nothing from the environment, so importing this module never
fails; secrets are looked up when an app is built.
"""
import os
import pstats
import re
import secrets


class ConfigError(ValueError):
    """A configuration name or setting that Tracker cannot use."""


class Config:
    """Settings shared by every configuration."""

    SECRET_KEY = None
    #: Wrap ``app.wsgi_app`` in the profiler (see ``profiler.py``).
    PROFILER_ENABLED = False
    #: pstats restrictions: an int keeps the top N rows, a float a fraction, a string filters.
    PROFILER_RESTRICTIONS = (30,)
    #: pstats sort keys; the default prints "Ordered by: internal time, call count".
    PROFILER_SORT_BY = ("tottime", "calls")
    #: Folder for ``.prof`` files; empty means print only, ``None`` the instance folder.
    PROFILER_DIR = ""
    #: Regular expressions for paths that are served without profiling.
    PROFILER_IGNORE = (r"^/static/", r"^/favicon\.ico$")
    #: Keep a ``.prof`` file only for requests at least this slow (the report still prints).
    PROFILER_MIN_MS = 0
    #: Print the pstats report of every profiled request to standard output.
    PROFILER_PRINT = True
    #: Retention of saved profiles, applied at start-up and every 50 saves (0: no limit).
    PROFILER_MAX_FILES = 0
    PROFILER_RETENTION_DAYS = 0
    #: Mount the dashboard (profiles and endpoint timings) under DASHBOARD_PREFIX.
    DASHBOARD_ENABLED = False
    DASHBOARD_PREFIX = "/dashboard"
    #: With both set, the dashboard asks for HTTP basic auth; without, it answers loopback only.
    DASHBOARD_USERNAME = None
    DASHBOARD_PASSWORD = None
    #: Record every request's endpoint, method, status and duration (``tracking/``).
    TRACKER_ENABLED = True
    #: Regular expressions for paths that are not tracked.
    TRACKER_IGNORE = (r"^/static/", r"^/favicon\.ico$")


class DevelopmentConfig(Config):
    """Local development with the debugger available."""

    DEBUG = True
    DASHBOARD_ENABLED = True


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
    PROFILER_DIR = None
    PROFILER_MAX_FILES = 10_000


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


def _restrictions(value):
    """Accept one restriction or a list of them: ints >= 0, floats in (0, 1], regex strings."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise ConfigError(_expected("PROFILER_RESTRICTIONS", value, "ints, floats or strings"))
        if isinstance(item, int) and item < 0:
            raise ConfigError(_expected("PROFILER_RESTRICTIONS", value, "ints of 0 or more"))
        if isinstance(item, float) and not 0.0 < item <= 1.0:
            raise ConfigError(_expected("PROFILER_RESTRICTIONS", value, "floats in (0, 1]"))
        if isinstance(item, str):
            _regex("PROFILER_RESTRICTIONS", item)
    return tuple(items)


def _sort_by(value):
    """Accept one pstats sort key or a list of them."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    allowed = sorted(pstats.Stats.sort_arg_dict_default)
    if not items or any(item not in allowed for item in items):
        raise ConfigError(_expected("PROFILER_SORT_BY", value,
                                    "pstats keys: " + ", ".join(allowed)))
    return tuple(items)


def _patterns(key):
    """Build a check for a setting that is one regular expression or a list of them."""

    def check(value):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not isinstance(item, str):
                raise ConfigError(_expected(key, value, "regular expressions"))
            _regex(key, item)
        return tuple(items)

    return check


def _profile_dir(value):
    """Accept a folder path, an empty string (do not save) or None (the instance folder)."""
    if value is not None and not isinstance(value, str):
        raise ConfigError(_expected("PROFILER_DIR", value, "a folder path or an empty string"))
    return value


def _at_least_zero(key, what, kinds=(int, float)):
    """Build a check for a number of 0 or more (``what`` names its unit in the error)."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
            raise ConfigError(_expected(key, value, f"{what} >= 0"))
        return value

    return check


def _prefix(value):
    """Accept a URL prefix such as ``/dashboard`` or ``/_tracker/ui``."""
    if not isinstance(value, str) or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
        raise ConfigError(_expected("DASHBOARD_PREFIX", value, "a path like /dashboard"))
    return value


def _optional_text(key):
    """Build a check for a setting that is unset (None) or a non-empty string."""

    def check(value):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(_expected(key, value, "a non-empty string or unset"))
        return value

    return check


def _flag(key):
    """Build a check for a true/false setting (JSON ``true``/``false`` in the environment)."""

    def check(value):
        if not isinstance(value, bool):
            raise ConfigError(_expected(key, value, "true or false"))
        return value

    return check


def _regex(key, pattern):
    """Compile ``pattern`` or explain why it is not a regular expression."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{key}: {pattern!r} is not a regular expression ({exc}).") from None


def _expected(key, value, what):
    """Word an error for a setting that has the wrong type or range."""
    return f"{key} must be {what}; got {value!r}."


SETTING_CHECKS = {
    "PROFILER_ENABLED": _flag("PROFILER_ENABLED"),
    "PROFILER_PRINT": _flag("PROFILER_PRINT"),
    "PROFILER_RESTRICTIONS": _restrictions,
    "PROFILER_SORT_BY": _sort_by,
    "PROFILER_DIR": _profile_dir,
    "PROFILER_IGNORE": _patterns("PROFILER_IGNORE"),
    "TRACKER_IGNORE": _patterns("TRACKER_IGNORE"),
    "PROFILER_MIN_MS": _at_least_zero("PROFILER_MIN_MS", "a number of milliseconds"),
    "PROFILER_MAX_FILES": _at_least_zero("PROFILER_MAX_FILES", "a whole number", (int,)),
    "PROFILER_RETENTION_DAYS": _at_least_zero("PROFILER_RETENTION_DAYS", "a number of days"),
    "DASHBOARD_ENABLED": _flag("DASHBOARD_ENABLED"),
    "DASHBOARD_PREFIX": _prefix,
    "DASHBOARD_USERNAME": _optional_text("DASHBOARD_USERNAME"),
    "DASHBOARD_PASSWORD": _optional_text("DASHBOARD_PASSWORD"),
    "TRACKER_ENABLED": _flag("TRACKER_ENABLED"),
}


def finalize(app):
    """Check every known setting of ``app`` and settle the secret key."""
    for key, check in SETTING_CHECKS.items():
        app.config[key] = check(app.config[key])
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or None
    if not app.config["SECRET_KEY"]:
        if app.config.get("PRODUCTION"):
            raise ConfigError(
                "The production configuration needs a secret key: set FLASK_SECRET_KEY "
                "(or SECRET_KEY) in the environment, e.g. to the output of "
                "python -c 'import secrets; print(secrets.token_hex(32))'."
            )
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    if app.config["DASHBOARD_ENABLED"]:  # the dashboard's own pages are never measured
        own_pages = "^" + re.escape(app.config["DASHBOARD_PREFIX"]) + "/"
        for key in ("PROFILER_IGNORE", "TRACKER_IGNORE"):
            app.config[key] = (*app.config[key], own_pages)
    credentials = (app.config["DASHBOARD_USERNAME"], app.config["DASHBOARD_PASSWORD"])
    if any(credentials) and not all(credentials):
        raise ConfigError("Set both DASHBOARD_USERNAME and DASHBOARD_PASSWORD, or neither.")
    if (app.config.get("PRODUCTION") and app.config["DASHBOARD_ENABLED"]
            and not all(credentials)):
        raise ConfigError(
            "The production configuration refuses to expose the dashboard without a password: "
            "set FLASK_DASHBOARD_USERNAME and FLASK_DASHBOARD_PASSWORD, or turn it off with "
            "FLASK_DASHBOARD_ENABLED=false."
        )
