"""Every ``PROFILER_*``, ``DASHBOARD_*``, ``TRACKER_*`` and ``TOOLBAR_*`` setting: its default
and its check.

This module is the one owner of Tracker's settings, whichever way a feature is attached
(``Tracker(app)``, ``create_app``, or a component such as ``Tracking(app)`` on its own):
:func:`apply` fills in what an app did not set, checks every value and raises
:class:`ConfigError` with the same message in every case.  Values read from the
environment by ``app.config.from_prefixed_env()`` arrive parsed as JSON, so lists and
numbers are checked the same way as values set in code.
"""
import math
import os
import pstats
import re

import click

#: Prefixes of the settings this module owns (the rest of ``app.config`` is the app's).
PREFIXES = ("PROFILER_", "DASHBOARD_", "TRACKER_", "TOOLBAR_")
#: The sampling interval's bounds: finer costs more than it tells, coarser misses most calls.
MIN_INTERVAL_MS = 0.1
MAX_INTERVAL_MS = 1000
#: Paths nobody wants measured: static files and the browser's icon request.
STATIC_PATHS = (r"^/static/", r"^/favicon\.ico$")

DEFAULTS = {
    # Profile mode (profiler.py): off unless asked for.
    "PROFILER_ENABLED": False,
    "PROFILER_PRINT": True,
    "PROFILER_RESTRICTIONS": (30,),
    "PROFILER_SORT_BY": ("tottime", "calls"),
    "PROFILER_DIR": None,  # None: the app's instance/profiles; "": print only
    "PROFILER_IGNORE": STATIC_PATHS,
    "PROFILER_MIN_MS": 0,
    "PROFILER_MAX_FILES": 10_000,
    "PROFILER_RETENTION_DAYS": 0,
    "PROFILER_ENGINE": "cprofile",  # or "sampling": every request, whole call paths
    "PROFILER_INTERVAL_MS": 1,  # the sampling engine's interval
    # The dashboard: on, answering loopback clients only unless credentials are set.
    "DASHBOARD_ENABLED": True,
    "DASHBOARD_PREFIX": "/dashboard",
    "DASHBOARD_USERNAME": None,
    "DASHBOARD_PASSWORD": None,
    # Endpoint tracking: on, into the app's instance/tracker.sqlite3.
    "TRACKER_ENABLED": True,
    "TRACKER_DATABASE_URL": None,
    "TRACKER_IGNORE": STATIC_PATHS,
    "TRACKER_SAMPLE_RATE": 1.0,
    "TRACKER_RETENTION_DAYS": 30,
    "TRACKER_MAX_ROWS": 1_000_000,
    "TRACKER_QUEUE_SIZE": 10_000,
    "TRACKER_BATCH_SIZE": 1000,
    "TRACKER_FLUSH_INTERVAL": 1.0,
    "TRACKER_SLOW_MS": 500,
    "TRACKER_MAINTENANCE_INTERVAL": 60.0,
    # Server-Timing: None follows TOOLBAR_ENABLED (local clients); "all" tells every client.
    "TRACKER_SERVER_TIMING": None,
    # The toolbar on HTML pages: off unless asked for (the demo's development and profile).
    "TOOLBAR_ENABLED": False,
    "TOOLBAR_TOP_FUNCTIONS": 5,
    # The database inside the profile (tracker_07/sql): queries of the watched engines.
    "TRACKER_SQL_ENABLED": True,
    "TRACKER_SQL_PARAMS": False,
    "TRACKER_SLOW_QUERY_MS": 100,
    "TRACKER_N_PLUS_ONE_MIN": 5,
    "TRACKER_SQL_MAX_QUERIES": 10_000,
}


class ConfigError(click.ClickException, ValueError):
    """A configuration name or setting that Tracker cannot use.

    A ``ClickException`` so that any ``flask`` command that loads a misconfigured app
    prints one ``Error: ...`` line instead of a traceback; a ``ValueError`` for code.
    """

    def __str__(self):
        return self.message


def _expected(key, value, what):
    """Word an error for a setting that has the wrong type or range."""
    return f"{key} must be {what}; got {value!r}."


def _items(value):
    """One value or a list of them, as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _regex(key, pattern):
    """Compile ``pattern`` or explain why it is not a regular expression."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{key}: {pattern!r} is not a regular expression ({exc}).") from None


def _restrictions(key, value):
    """pstats restrictions: ints >= 0 keep N rows, floats in (0, 1] a fraction, strings filter."""
    items = _items(value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise ConfigError(_expected(key, value, "ints, floats or strings"))
        if isinstance(item, int) and item < 0:
            raise ConfigError(_expected(key, value, "ints of 0 or more"))
        if isinstance(item, float) and not 0.0 < item <= 1.0:
            raise ConfigError(_expected(key, value, "floats in (0, 1]"))
        if isinstance(item, str):
            _regex(key, item)
    return tuple(items)


def _sort_by(key, value):
    """One pstats sort key or a list of them."""
    items = _items(value)
    allowed = sorted(pstats.Stats.sort_arg_dict_default)
    if not items or any(not isinstance(item, str) or item not in allowed for item in items):
        raise ConfigError(_expected(key, value, "pstats keys: " + ", ".join(allowed)))
    return tuple(items)


def _patterns(key, value):
    """One regular expression or a list of them."""
    items = _items(value)
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(_expected(key, value, "regular expressions"))
        _regex(key, item)
    return tuple(items)


def _folder(key, value):
    """A folder path, an empty string (do not save) or None (the instance folder)."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ConfigError(_expected(key, value, "a folder path or an empty string"))
    return os.fspath(value) if value is not None else None


def _flag(key, value):
    """True or false (JSON ``true``/``false`` in the environment)."""
    if not isinstance(value, bool):
        raise ConfigError(_expected(key, value, "true or false"))
    return value


def _number(low, high=math.inf, integer=False):
    """Build a check for a number in ``[low, high]`` (NaN fails every comparison, so it fails)."""
    kinds = (int,) if integer else (int, float)
    what = ("a whole number" if integer else "a number") + f" >= {low:g}"
    if high != math.inf:
        what += f" and <= {high:g}"

    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            raise ConfigError(_expected(key, value, what))
        return value

    return check


def _choice(*allowed):
    """Build a check for one of a few words."""
    def check(key, value):
        if value not in allowed:
            raise ConfigError(_expected(key, value, " or ".join(repr(word) for word in allowed)))
        return value

    return check


def _prefix(key, value):
    """A URL prefix such as ``/dashboard`` or ``/_tracker/ui``."""
    if not isinstance(value, str) or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
        raise ConfigError(_expected(key, value, "a path like /dashboard"))
    return value


def _optional_text(key, value):
    """Unset (None) or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(_expected(key, value, "a non-empty string or unset"))
    return value


def _server_timing(key, value):
    """None (follow TOOLBAR_ENABLED), true or false (local clients), or "all" (every client)."""
    if value is None or isinstance(value, bool) or value == "all":
        return value
    raise ConfigError(_expected(key, value, 'true, false, "all" or unset'))


def _database_url(key, value):
    """None (the instance folder's SQLite file) or a SQLite / PostgreSQL URL."""
    if value is None:
        return None
    from .tracking.store import parse_url  # pylint: disable=import-outside-toplevel  # SQLAlchemy loads only for tracking

    try:
        parse_url(value, key)
    except ValueError as error:
        raise ConfigError(str(error).rstrip(".") + ".") from None
    return value


CHECKS = {
    "PROFILER_ENABLED": _flag,
    "PROFILER_PRINT": _flag,
    "PROFILER_RESTRICTIONS": _restrictions,
    "PROFILER_SORT_BY": _sort_by,
    "PROFILER_DIR": _folder,
    "PROFILER_IGNORE": _patterns,
    "PROFILER_MIN_MS": _number(0),
    "PROFILER_MAX_FILES": _number(0, integer=True),
    "PROFILER_RETENTION_DAYS": _number(0),
    "PROFILER_ENGINE": _choice("cprofile", "sampling"),
    "PROFILER_INTERVAL_MS": _number(MIN_INTERVAL_MS, MAX_INTERVAL_MS),
    "DASHBOARD_ENABLED": _flag,
    "DASHBOARD_PREFIX": _prefix,
    "DASHBOARD_USERNAME": _optional_text,
    "DASHBOARD_PASSWORD": _optional_text,
    "TRACKER_ENABLED": _flag,
    "TRACKER_DATABASE_URL": _database_url,
    "TRACKER_IGNORE": _patterns,
    "TRACKER_SAMPLE_RATE": _number(0, 1),
    "TRACKER_RETENTION_DAYS": _number(0),
    "TRACKER_MAX_ROWS": _number(0, integer=True),
    "TRACKER_QUEUE_SIZE": _number(1, integer=True),
    "TRACKER_BATCH_SIZE": _number(1, integer=True),
    "TRACKER_FLUSH_INTERVAL": _number(0.001),
    "TRACKER_SLOW_MS": _number(0),
    "TRACKER_MAINTENANCE_INTERVAL": _number(0),
    "TRACKER_SERVER_TIMING": _server_timing,
    "TOOLBAR_ENABLED": _flag,
    "TOOLBAR_TOP_FUNCTIONS": _number(1, 50, integer=True),
    "TRACKER_SQL_ENABLED": _flag,
    "TRACKER_SQL_PARAMS": _flag,
    "TRACKER_SLOW_QUERY_MS": _number(0),
    "TRACKER_N_PLUS_ONE_MIN": _number(2, integer=True),
    "TRACKER_SQL_MAX_QUERIES": _number(0, integer=True),
}

#: Where ``app.extensions`` keeps what :func:`apply` settled, so it runs once per app.
APPLIED_KEY = "tracker_settings"


def apply(app, overrides=None):
    """Default, override and check every Tracker setting of ``app``; return its config.

    Runs its checks once per app (later calls only apply new ``overrides``), so each
    component can call it and an app configured through any of them is checked the same.
    """
    config = app.config
    unknown = sorted(key for key in (overrides or {})
                     if key.startswith(PREFIXES) and key not in DEFAULTS)
    if unknown:
        raise ConfigError(f"Unknown Tracker setting(s): {', '.join(unknown)}; "
                          f"known ones start with {', '.join(PREFIXES)} (see the README).")
    config.update(overrides or {})
    if app.extensions.get(APPLIED_KEY) and not overrides:
        return config
    for key, default in DEFAULTS.items():
        config.setdefault(key, default)
        config[key] = CHECKS[key](key, config[key])
    credentials = (config["DASHBOARD_USERNAME"], config["DASHBOARD_PASSWORD"])
    if any(credentials) and not all(credentials):
        raise ConfigError("Set both DASHBOARD_USERNAME and DASHBOARD_PASSWORD, or neither.")
    if config["PROFILER_DIR"] is None:
        config["PROFILER_DIR"] = os.path.join(app.instance_path, "profiles")
    elif config["PROFILER_DIR"]:
        config["PROFILER_DIR"] = os.path.abspath(config["PROFILER_DIR"])
    if config["TRACKER_DATABASE_URL"] is None:
        config["TRACKER_DATABASE_URL"] = "sqlite:///" + os.path.join(
            app.instance_path, "tracker.sqlite3")
    app.extensions[APPLIED_KEY] = True
    return config


def dashboard_paths(config):
    """The pattern of the dashboard's own pages, which are never profiled or tracked."""
    return ("^" + re.escape(config["DASHBOARD_PREFIX"]) + "/",) if config[
        "DASHBOARD_ENABLED"] else ()
