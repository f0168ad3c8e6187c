"""A strict parser of the ``Server-Timing`` header, written from the W3C Server Timing grammar.

::

    Server-Timing             = #server-timing-metric
    server-timing-metric      = metric-name *( OWS ";" OWS server-timing-param )
    metric-name               = token
    server-timing-param       = server-timing-param-name OWS "=" OWS server-timing-param-value
    server-timing-param-name  = token
    server-timing-param-value = token / quoted-string

``token`` and ``quoted-string`` are RFC 9110's; ``#`` is a comma-separated list.
"""
import re

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_OWS = r"[ \t]*"
_METRIC = re.compile(
    rf"{_OWS}(?P<name>{_TOKEN})(?P<params>(?:{_OWS};{_OWS}{_TOKEN}{_OWS}={_OWS}"
    rf"(?:{_TOKEN}|{_QUOTED}))*){_OWS}(?:,|$)")
_PARAM = re.compile(rf"{_OWS};{_OWS}(?P<key>{_TOKEN}){_OWS}={_OWS}"
                    rf"(?:(?P<token>{_TOKEN})|(?P<quoted>{_QUOTED}))")


def unquote(text):
    """The value of a quoted-string."""
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse(header):
    """Return ``[(name, {param: value})]``, ``dur`` as a float; raise ValueError when the
    header does not follow the grammar."""
    metrics = []
    position = 0
    while position < len(header):
        match = _METRIC.match(header, position)
        if match is None or match.end() == position:
            raise ValueError(f"not a Server-Timing metric at {header[position:]!r}")
        params = {}
        for param in _PARAM.finditer(match["params"]):
            value = param["token"] if param["token"] is not None else unquote(param["quoted"])
            params.setdefault(param["key"].lower(), value)
        if "dur" in params:
            params["dur"] = float(params["dur"])
        metrics.append((match["name"], params))
        position = match.end()
    if not metrics or header.rstrip().endswith(","):
        raise ValueError(f"an empty or unfinished Server-Timing header: {header!r}")
    return metrics
