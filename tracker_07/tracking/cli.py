"""``flask tracker ...``: read and maintain the endpoint tracking store from a shell."""
import csv
import json
import re
from contextlib import contextmanager
from datetime import datetime, timezone

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from . import filters, reads, rollups, writes
from .store import IMMEDIATE

EXTENSION_KEY = "tracker_tracking"
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

tracker_cli = AppGroup("tracker", help="Query and maintain the endpoint tracking store.")


def parse_time(value, now=None):
    """Read ``30m``/``1h``/``24h``/``7d`` (that long ago) or an ISO date (UTC if no zone)."""
    now = filters.now() if now is None else now
    text = value.strip().lower()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now - float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration like 1h, 24h, 7d nor an ISO date like 2024-05-01"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _time_option(_ctx, _param, value):
    """Click callback turning a time option into epoch seconds."""
    return None if value is None else parse_time(value)


def make_filters(**values):
    """Build the reads' ``Filters``; a bad value is a usage error in the dashboard's words."""
    try:
        return filters.Filters(**values)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def filter_options(command):
    """The filters shared by ``stats`` and ``export``."""
    for option in reversed((
        click.option("--until", callback=_time_option,
                     help="End of the range (exclusive), same forms as --since; default now."),
        click.option("--endpoint", help="Only this endpoint (URL rule), e.g. '/user/<int:id>'."),
        click.option("--method", help="Only this HTTP method, e.g. GET."),
        click.option("--status", help="Only this status code (404) or class (5xx)."),
    )):
        command = option(command)
    return command


def get_tracking():
    """The app's tracking extension, or a usage error if tracking is off."""
    tracking = current_app.extensions.get(EXTENSION_KEY)
    if tracking is None:
        raise click.UsageError(
            "endpoint tracking is not enabled for this app (set TRACKER_ENABLED=True)"
        )
    return tracking


@contextmanager
def database(write=False):
    """A connection to the store; database failures become one clear line and exit 1."""
    engine = get_tracking().engine
    try:
        with engine.connect() as conn:
            if write:
                conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                yield conn
    except SQLAlchemyError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise click.ClickException(
            f"cannot use the tracking database "
            f"{engine.url.render_as_string(hide_password=True)}: {reason}"
        ) from None


def _format_time(epoch):
    """Epoch seconds as a short UTC timestamp for the table."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_table(rows):
    """Summary rows as an aligned plain-text table."""
    headers = ("endpoint", "method", "count", "mean ms", "p50 ms", "p95 ms", "p99 ms",
               "max ms", "4xx", "5xx", "queries", "max q", "sql ms", "sql %", "findings",
               "last seen (UTC)")
    lines = [headers]
    for row in rows:
        lines.append((
            row["endpoint"], row["method"], str(row["count"]),
            *(f"{row[key]:.2f}" for key in ("mean", "p50", "p95", "p99", "max")),
            str(row["count_4xx"]), str(row["count_5xx"]), f"{row['queries']:.1f}",
            str(row["queries_max"]), f"{row['sql_ms']:.2f}", f"{100 * row['sql_share']:.0f}",
            str(row["findings"]), _format_time(row["last_seen"]),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    text = []
    for line in lines:
        cells = [cell.ljust(width) if i < 2 else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(line, widths))]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text)


@tracker_cli.command("stats")
@click.option("--since", default="24h", show_default=True, callback=_time_option,
              help="Start of the range: a duration ago (30m, 1h, 24h, 7d) or an ISO date.")
@filter_options
@click.option("--sort", type=click.Choice(reads.SUMMARY_SORT_KEYS), default="count",
              show_default=True, help="Column to sort by.")
@click.option("--ascending", is_flag=True, help="Sort smallest first (default: largest first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats_command(since, until, endpoint, method, status, sort, ascending, as_json):
    """Show per-endpoint counts, latency percentiles (ms) and database queries for a time range.

    queries: mean per request (max q the most in one); sql ms: mean per request; sql %:
    SQL time's share of the request time; findings: N+1, duplicate and slow queries found.
    """
    chosen = make_filters(endpoint=endpoint, method=method, status=status, since=since,
                          until=filters.now() + 1 if until is None else until)
    with database() as conn:
        rows = reads.summary(conn, chosen, sort=sort, descending=not ascending)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        click.echo(format_table(rows))
    else:
        click.echo("No tracked requests in this range.")


@tracker_cli.command("prune")
@click.option("--older-than", "older_than_days", type=click.FloatRange(min=0),
              help="Delete rows older than this many days.")
@click.option("--keep", type=click.IntRange(min=0),
              help="Keep only the newest N rows (0 deletes every row).")
def prune_command(older_than_days, keep):
    """Delete old tracking rows now, by age and/or by count."""
    if older_than_days is None and keep is None:
        raise click.UsageError("give --older-than DAYS, --keep N, or both")
    older_than = None
    if older_than_days is not None:
        older_than = filters.now() - older_than_days * 86400
    with database(write=True) as conn:
        # Rolled up first, as the writer does: no row leaves before the roll-ups count it.
        rollups.roll_up(conn)
        deleted = writes.prune(conn, older_than=older_than, keep_rows=keep)
    click.echo(f"Deleted {deleted} rows.")


@tracker_cli.command("export")
@click.option("--format", "export_format", type=click.Choice(("csv", "json")), default="csv",
              show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="-",
              show_default=True, help="File to write; '-' means standard output.")
@click.option("--since", callback=_time_option,
              help="Start of the range: a duration ago (30m, 1h, 24h, 7d) or an ISO date; "
                   "default: everything.")
@filter_options
def export_command(export_format, output, since, until, endpoint, method, status):
    """Write the raw per-request rows (oldest first) as CSV or JSON."""
    chosen = make_filters(endpoint=endpoint, method=method, status=status, since=since,
                          until=until)
    count = 0
    with database() as conn, click.open_file(output, "w", encoding="utf-8") as stream:
        rows = reads.export_rows(conn, chosen)
        if export_format == "csv":
            writer = csv.DictWriter(stream, fieldnames=reads.EXPORT_COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
                count += 1
        else:
            stream.write("[")
            for row in rows:
                stream.write(("\n" if not count else ",\n") + json.dumps(row))
                count += 1
            stream.write("\n]\n")
    if output != "-":
        click.echo(f"Exported {count} rows to {output}.", err=True)


def init_app(app):
    """Register ``flask tracker`` on an app (the extension does this itself)."""
    app.cli.add_command(tracker_cli)
