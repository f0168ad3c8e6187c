"""Small helpers with no Flask globals: version checks and facts shown on the index page."""
import platform
import re
import sys
from importlib import metadata

MIN_PYTHON = (3, 10)
MIN_FLASK = (3, 0)


class SystemCheckError(RuntimeError):
    """The interpreter or a package is too old for Tracker."""


def version_tuple(text):
    """Turn ``"3.1.3"`` or ``"3.2.0rc1"`` into ``(3, 1, 3)`` / ``(3, 2, 0)`` for comparison."""
    parts = []
    for part in text.split(".")[:3]:
        leading_digits = re.match(r"\d+", part)
        if leading_digits is None:
            break
        parts.append(int(leading_digits.group()))
    return tuple(parts)


def flask_version():
    """Return the installed Flask version string."""
    return metadata.version("flask")


def check_system(python=None, flask=None):
    """Raise ``SystemCheckError`` naming what is too old, instead of failing obscurely later."""
    python = tuple(sys.version_info[:2]) if python is None else python
    flask = flask_version() if flask is None else flask
    problems = []
    if python < MIN_PYTHON:
        problems.append(f"Python {'.'.join(map(str, MIN_PYTHON))} or newer is required, "
                        f"this is {'.'.join(map(str, python))}")
    if version_tuple(flask) < MIN_FLASK:
        problems.append(f"Flask {'.'.join(map(str, MIN_FLASK))} or newer is required, "
                        f"{flask} is installed (pip install -r requirements.txt)")
    if problems:
        raise SystemCheckError("; ".join(problems) + ".")


def runtime_facts(config_name):
    """Describe what is running, for the index page."""
    return {
        "config_name": config_name,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "flask_version": flask_version(),
    }
