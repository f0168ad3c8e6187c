"""Who may see the dashboard, and proof that a form came from it.

Without credentials the dashboard answers only clients on the loopback
address.  With ``DASHBOARD_USERNAME`` and ``DASHBOARD_PASSWORD`` it asks every
client for HTTP basic auth, compared in constant time.  Anything that changes
data is a POST carrying the session's CSRF token.
"""
import hmac
import ipaddress
import secrets

from flask import abort, current_app, request, session

CSRF_SESSION_KEY = "tracker_csrf"
CSRF_FIELD = "csrf_token"
BASIC_CHALLENGE = 'Basic realm="Tracker dashboard", charset="UTF-8"'
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_loopback(address):
    """Tell whether a client address is this machine (127.0.0.0/8 or ::1)."""
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _same(given, expected):
    """Compare two secrets in constant time."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def credentials(config):
    """Return ``(username, password)`` when both are configured, else None."""
    username, password = config["DASHBOARD_USERNAME"], config["DASHBOARD_PASSWORD"]
    return (username, password) if username and password else None


def client_allowed(expected, remote_addr, authorization):
    """The dashboard's rule: with ``expected`` credentials the client must send them (HTTP
    basic auth, compared in constant time); without, it must be on the loopback address.

    :param expected: ``(username, password)`` from :func:`credentials`, or None.
    :param authorization: Werkzeug's ``Authorization`` of the request, or None.
    """
    if expected is None:
        return is_loopback(remote_addr)
    given_user = authorization.username if authorization is not None else ""
    given_password = authorization.password if authorization is not None else ""
    user_ok = _same(given_user or "", expected[0])
    return _same(given_password or "", expected[1]) and user_ok


def check_access():
    """Refuse the request unless the client is local or sent the configured credentials."""
    expected = credentials(current_app.config)
    if not client_allowed(expected, request.remote_addr, request.authorization):
        if expected is not None:
            abort(401)
        abort(403, "The dashboard answers only local clients unless DASHBOARD_USERNAME "
                   "and DASHBOARD_PASSWORD are set.")
    if request.method == "POST":
        check_csrf()


def csrf_token():
    """Return this session's CSRF token, making one on first use; None when the app has no
    secret key (no session to keep it in), so forms are left out and POSTs refused."""
    if not current_app.secret_key:
        return None
    token = session.get(CSRF_SESSION_KEY)
    if not token:
        token = session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf():
    """Refuse a POST whose form does not carry this session's CSRF token."""
    if not current_app.secret_key:
        abort(400, "The dashboard's forms need the app's SECRET_KEY (to keep a CSRF token in "
                   "the session); set it, or use the flask profiles / flask tracker commands.")
    expected = session.get(CSRF_SESSION_KEY)
    given = request.form.get(CSRF_FIELD, "")
    if not expected or not _same(given, expected):
        abort(400, "The form is missing its CSRF token or it expired; reload the page and retry.")


def add_security_headers(response):
    """Forbid framing, sniffing and foreign scripts on every dashboard response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
    return response
