"""The ``flask profiles`` commands: list, show, compare, export, prune and merge saved profiles.

Register them with ``init_app(app)``.  The folder is ``PROFILER_DIR`` of the
app.  A profile may be named by its id, by a unique prefix of an id, or by the
path of a ``.prof`` file anywhere (to compare with a profile from elsewhere).
Errors are one line on stderr with exit status 1, never a traceback.
One module past 350 lines because it is one click group whose six commands share
their option declarations, profile resolution and report formatting.
"""
import datetime
import io
import json
import math
import os
import pstats
import re
import shutil

import click
from flask import current_app
from flask.cli import AppGroup

from tracker_07.profiles import analysis, listing, paths, routes, unprofiled
from tracker_07.profiles.errors import NotAFolder, ProfileError, ProfileNotFound
from tracker_07.profiles.stats import load_stats, merge
from tracker_07.profiles.wrappers import without_wrappers

PSTATS_SORT_KEYS = sorted(pstats.Stats.sort_arg_dict_default)
#: Werkzeug's ProfilerMiddleware default order: "internal time, call count".
DEFAULT_PSTATS_SORT = ("tottime", "calls")
EXPORT_FORMATS = ("collapsed", "speedscope", "prof")
PATH_COLUMN_WIDTH = 40


class ProfilesGroup(AppGroup):
    """A command group that turns any saved-profile error into a one-line CLI error."""

    def invoke(self, ctx):
        """Run the command; a ProfileError ends it with ``Error: ...`` and status 1."""
        try:
            return super().invoke(ctx)
        except NotAFolder as error:
            raise click.ClickException(
                f"PROFILER_DIR {printable(error.folder)} is not a folder."
            ) from error
        except ProfileError as error:
            raise click.ClickException(str(error)) from error


profiles_group = ProfilesGroup(
    "profiles", help="List, show, compare, export and prune the saved request profiles."
)


def init_app(app):
    """Add the ``flask profiles`` command group to an app's CLI."""
    app.cli.add_command(profiles_group)


def profile_folder():
    """Return the app's profile folder, or stop with a clear error if none is configured."""
    folder = current_app.config.get("PROFILER_DIR")
    if not folder:
        raise click.ClickException("PROFILER_DIR is not set; configure the profile folder first.")
    return folder


def no_profiles_yet(folder):
    """Say where profiles would be and how to make some, when the folder has none."""
    if current_app.config.get("PROFILER_ENABLED"):
        return f"No profiles in {folder} yet: profile mode saves one per request there."
    return (f"No profiles in {folder}: profile mode is off for this app. Run it with "
            "PROFILER_ENABLED=True (the demo: flask --app \"tracker_07:create_app('profile')\" "
            "run --without-threads); it saves into this same instance folder.")


def printable(text):
    """Escape control and other unprintable characters so a path cannot drive the terminal."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))


def resolve_profile(folder, reference):
    """Find a profile by id, by path of a ``.prof`` file, or by unique id prefix.

    Returns the file's absolute path and its list record.
    """
    try:
        return listing.profile_path(folder, reference), listing.find_record(folder, reference)
    except ProfileNotFound:
        pass
    if os.path.isfile(reference):
        path = os.path.abspath(reference)
        return path, listing.record_from_name(os.path.basename(path))
    matches = [
        record for record in listing.catalog_records(folder) if record["id"].startswith(reference)
    ]
    if len(matches) > 1:
        raise click.ClickException(
            f"{printable(reference)!r} matches {len(matches)} profiles; give more of the id."
        )
    if not matches or not reference:
        raise click.ClickException(f"no profile {printable(reference)!r} in {folder}")
    return listing.profile_path(folder, matches[0]["id"]), matches[0]


def console_report(stats, path_info, sort_keys, limit, text=None):
    """Render a profile the way Werkzeug's ProfilerMiddleware prints it to the console."""
    stream = io.StringIO()
    stats.stream = stream
    stats.files = []
    stats.sort_stats(*sort_keys)
    print("-" * 80, file=stream)
    print(f"PATH: {path_info!r}", file=stream)
    restrictions = [f"(?i){re.escape(text)}"] if text else []
    stats.print_stats(*restrictions, limit)
    print(f"{'-' * 80}\n", file=stream)
    return stream.getvalue()


def report_options(command):
    """Add the ``--sort``, ``--limit`` and ``--filter`` options of a pstats report."""
    command = click.option(
        "--filter",
        "text",
        metavar="TEXT",
        help="Only functions whose filename:lineno(function) contains TEXT (any case).",
    )(command)
    command = click.option(
        "--limit",
        type=click.IntRange(min=1),
        default=30,
        show_default=True,
        help="Print at most this many functions.",
    )(command)
    return click.option(
        "--sort",
        "sort_keys",
        type=click.Choice(PSTATS_SORT_KEYS),
        multiple=True,
        help="pstats sort key; repeat it to break ties (default: tottime, then calls).",
    )(command)


def format_time(epoch):
    """Show a start time as UTC to the second, or '-' when unknown."""
    if epoch is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_cell(value, spec=""):
    """Format a number for a table cell, or '-' when the index does not know it."""
    return "-" if value is None else format(value, spec)


def list_line(record):
    """Format one profile as a line of ``flask profiles list``."""
    path = printable(record["path"] if record["path"] is not None else "?")
    if len(path) > PATH_COLUMN_WIDTH:
        path = path[: PATH_COLUMN_WIDTH - 3] + "..."
    return (
        f"{format_time(record['time']):<19}  {record['method'] or '?':<7} "
        f"{format_cell(record['status']):>6} {format_cell(record['elapsed_ms'], '.0f'):>8} "
        f"{format_cell(record['calls']):>8} {format_cell(record['overlapped']):>4}  "
        f"{path:<{PATH_COLUMN_WIDTH}}  {printable(record['id'])}"
    )


def route_lines(summaries):
    """Format the route summary of ``flask profiles list --routes`` (times in ms)."""
    yield f"{'METHOD':<7} {'COUNT':>6} {'MEDIAN':>8} {'P95':>8} {'MAX':>8} {'UNPROF':>6}  ROUTE"
    for item in summaries:
        yield (f"{item['method']:<7} {item['count']:>6} {format_cell(item['median_ms'], '.1f'):>8} "
               f"{format_cell(item['p95_ms'], '.1f'):>8} {format_cell(item['max_ms'], '.1f'):>8} "
               f"{item['unprofiled']:>6}  {printable(item['path'])}")


@profiles_group.command("list")
@click.option(
    "--sort",
    type=click.Choice(listing.SORT_KEYS),
    default="time",
    show_default=True,
    help="Column to sort by.",
)
@click.option("--asc/--desc", "ascending", default=False, help="Sort order (default: --desc).")
@click.option(
    "--limit",
    type=click.IntRange(1, listing.MAX_PER_PAGE),
    default=50,
    show_default=True,
    help="Show at most this many profiles.",
)
@click.option("--path", "path_contains", help="Only paths containing this text (any case).")
@click.option("--method", help="Only this HTTP method, e.g. GET.")
@click.option("--status", type=int, help="Only this response status, e.g. 500.")
@click.option("--min-ms", type=float, help="Only requests that took at least this many ms.")
@click.option("--routes", "by_route", is_flag=True,
              help="Summarise by method and route instead (--path and --method filter them).")
def list_command(sort, ascending, limit, path_contains, method, status, min_ms, by_route):
    """List saved profiles, newest first, or with --routes a summary per route.

    Only the index and the folder listing are read, never the profiles, so this
    stays fast with thousands of files.
    """
    folder = profile_folder()
    if by_route:
        summaries = routes.route_summaries(folder, method=method, path_contains=path_contains)
        if not summaries:
            click.echo(f"No routes in {folder}." if method or path_contains
                       else no_profiles_yet(folder))
            return
        for line in route_lines(summaries[:limit]):
            click.echo(line)
        click.echo(f"{min(limit, len(summaries))} of {len(summaries)} routes, most time first.")
        return
    page = listing.list_profiles(
        folder,
        sort=sort,
        descending=not ascending,
        path_contains=path_contains,
        method=method,
        status=status,
        min_ms=min_ms,
        per_page=limit,
    )
    if not page.items:
        click.echo(f"No profiles in {folder}." if page.total or any(
            (path_contains, method, status, min_ms)) else no_profiles_yet(folder))
        echo_unprofiled(folder)
        return
    click.echo(
        f"{'TIME (UTC)':<19}  {'METHOD':<7} {'STATUS':>6} {'MS':>8} {'CALLS':>8} {'OVL':>4}  "
        f"{'PATH':<{PATH_COLUMN_WIDTH}}  ID"
    )
    for record in page.items:
        click.echo(list_line(record))
    click.echo(f"{len(page.items)} of {page.total} profiles.")
    echo_unprofiled(folder)


def echo_unprofiled(folder):
    """Say how many requests were served unprofiled, per route, busiest first."""
    counts = unprofiled.unprofiled_counts(folder)
    if not counts:
        return
    click.echo(f"Not profiled: {sum(counts.values())} request(s) (another request held the "
               "profiler, or it could not start):")
    for (method, path), count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        click.echo(f"  {count:>8}  {printable(method)} {printable(path)}")


@profiles_group.command("show")
@click.argument("profile_id")
@report_options
def show_command(profile_id, sort_keys, limit, text):
    """Print a profile's pstats report.

    The report looks like the one Werkzeug's ProfilerMiddleware prints to the
    console, so a saved profile reads like a live one.  PROFILE_ID is an id, a
    unique prefix of one, or the path of any .prof file.
    """
    path, record = resolve_profile(profile_folder(), profile_id)
    stats = without_wrappers(load_stats(path))
    path_info = record["path"] if record["path"] is not None else record["id"]
    report = console_report(stats, path_info, sort_keys or DEFAULT_PSTATS_SORT, limit, text)
    click.echo(report, nl=False)


def diff_line(row, key):
    """Format one function of ``flask profiles compare`` (times in ms; new/gone: one side only)."""
    before, after = row[f"before_{key}"] * 1000, row[f"after_{key}"] * 1000
    return (
        f"{row['status']:<9} {after - before:+10.3f} {before:10.3f} {after:10.3f}  "
        f"{printable(row['label'])}"
    )


@profiles_group.command("compare")
@click.argument("before_id")
@click.argument("after_id")
@click.option(
    "--key",
    type=click.Choice(analysis.DIFF_KEYS),
    default="tottime",
    show_default=True,
    help="Time compared per function: own time or cumulative time.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most this many functions (biggest changes first).",
)
def compare_command(before_id, after_id, key, limit):
    """Compare two profiles, biggest change first.

    Each function is marked regressed, improved or same (changes within
    0.1 ms or 5% count as noise), or new/gone when only one side has it.
    Both ids may be prefixes or .prof paths.
    """
    folder = profile_folder()
    before = without_wrappers(load_stats(resolve_profile(folder, before_id)[0]))
    after = without_wrappers(load_stats(resolve_profile(folder, after_id)[0]))
    result = analysis.diff(before, after, key=key)
    totals = result["totals"]
    click.echo(
        f"before: {totals['before']['calls']} calls in {totals['before']['total_time']:.3f} s; "
        f"after: {totals['after']['calls']} calls in {totals['after']['total_time']:.3f} s "
        f"({totals['status']}, {totals['delta_time'] * 1000:+.3f} ms)"
    )
    click.echo(
        f"{'STATUS':<9} {'DELTA ms':>10} {'BEFORE ms':>10} {'AFTER ms':>10}  FUNCTION ({key})"
    )
    for row in result["rows"][:limit]:
        click.echo(diff_line(row, key))
    hidden = len(result["rows"]) - limit
    if hidden > 0:
        click.echo(f"... {hidden} more functions.")


@profiles_group.command("export")
@click.argument("profile_id")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(EXPORT_FORMATS),
    default="collapsed",
    show_default=True,
    help="collapsed stacks (flamegraph.pl), speedscope JSON, or the raw .prof file.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default="-",
    help="File to write (default: standard output).",
)
def export_command(profile_id, export_format, output):
    """Export a profile for other tools.

    collapsed stacks feed flamegraph.pl and speedscope; speedscope JSON opens
    in speedscope.app; prof is the pstats file itself (snakeviz, tuna, pstats).
    The stacks never split a function's time between several callers.
    """
    path, record = resolve_profile(profile_folder(), profile_id)
    stats = without_wrappers(load_stats(path))
    if export_format == "prof":
        with open(path, "rb") as source, click.open_file(output, "wb") as target:
            shutil.copyfileobj(source, target)
        return
    if export_format == "collapsed":
        text = "".join(line + "\n" for line in paths.collapsed_stacks(stats))
    else:
        text = json.dumps(paths.speedscope(stats, record["id"])) + "\n"
    with click.open_file(output, "w") as target:
        target.write(text)


class Days(click.FloatRange):
    """A number of days from 0 to MAX_AGE_DAYS; NaN is refused too (no bound check catches it)."""

    name = "days"

    def __init__(self):
        super().__init__(0, listing.MAX_AGE_DAYS)

    def convert(self, value, param, ctx):
        """Convert like FloatRange, then fail on NaN like on any other bad number."""
        days = super().convert(value, param, ctx)
        if math.isnan(days):
            self.fail(f"{value!r} is not a number of days.", param, ctx)
        return days


@profiles_group.command("prune")
@click.option(
    "--keep",
    type=click.IntRange(0, listing.MAX_KEEP),
    metavar="N",
    help="Keep only the N newest profiles.",
)
@click.option(
    "--older-than",
    "older_than_days",
    type=Days(),
    metavar="DAYS",
    help="Remove profiles older than DAYS days.",
)
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
def prune_command(keep, older_than_days, dry_run):
    """Delete old profiles and their index lines.

    Give --keep, --older-than or both; a profile goes if either says so.
    """
    if keep is None and older_than_days is None:
        raise click.UsageError("give --keep N, --older-than DAYS or both.")
    removed = listing.prune(
        profile_folder(), keep=keep, older_than_days=older_than_days, dry_run=dry_run
    )
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {len(removed)} profile{'' if len(removed) == 1 else 's'}.")
    for profile_id in removed:
        click.echo(f"  {printable(profile_id)}")


@profiles_group.command("merge")
@click.option("--method", default="GET", show_default=True, help="HTTP method of the route.")
@click.option("--path", "route_path", required=True, help="Exact request path, e.g. /slow.")
@report_options
def merge_command(method, route_path, sort_keys, limit, text):
    """Print all profiles of one route added up.

    Merging many requests smooths out noise and shows where a route spends its
    time in general.
    """
    folder = profile_folder()
    ids = listing.route_profiles(folder, method, route_path)
    if not ids:
        raise click.ClickException(
            f"no profiles of {method.upper()} {printable(route_path)!r} in {folder}"
        )
    stats = without_wrappers(merge(listing.profile_path(folder, profile_id) for profile_id in ids))
    click.echo(f"MERGED: {len(ids)} profiles of {method.upper()} {route_path!r}")
    report = console_report(stats, route_path, sort_keys or DEFAULT_PSTATS_SORT, limit, text)
    click.echo(report, nl=False)
