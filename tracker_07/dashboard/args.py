"""Read query-string arguments strictly: a bad value is a 400 that says what is allowed."""
from flask import abort, request


def choice(name, allowed, default):
    """Return the argument if it is one of ``allowed``, else refuse the request."""
    value = request.args.get(name, default)
    if value not in allowed:
        abort(400, f"{name} must be one of: {', '.join(map(str, allowed))}.")
    return value


def number(name, default=None, *, low=0, high=None, kind=int):
    """Return the argument as an int (or float) within ``low``..``high``, or refuse the request."""
    given = request.args.get(name, "").strip()
    if not given:
        return default
    try:
        value = kind(given)
    except ValueError:
        abort(400, f"{name} must be a number; got {given[:40]!r}.")
    if value < low:
        abort(400, f"{name} must be {low} or more." if high is None
              else f"{name} must be between {low} and {high}.")
    if high is not None and value > high:
        abort(400, f"{name} must be between {low} and {high}.")
    return value


def text(name, max_length=200):
    """Return a free-text argument, stripped and shortened, or None when empty."""
    value = request.args.get(name, "").strip()[:max_length]
    return value or None
