"""The profiles list by route: count, median, p95 and slowest of each method and route.

A route is a record's ``rule`` (or ``endpoint``) when the index has one, else
its request path.  The summaries are built from the catalog's records and
kept: a profile that the catalog took from new index lines is put into its
route's sorted times with ``bisect``, so the list after one new profile stays
cheap; any other change to the catalog (a rescan, a removal, a replaced
record) builds them again from all records.  They are saved with the
catalog's records after a scan, and a new process takes them from there
(:mod:`.listing_cache`), taking out and putting in the profiles removed and
added since, if any (:mod:`.listing_update`).  (A little over 350 lines: building,
keeping, saving and restoring the summaries are one concern, the route's sorted
times, and split apart they would share every field.)

Percentiles are exact, over the profiles whose elapsed time is known: the
median is the middle time (the mean of the two middle ones for an even
count), p95 the nearest-rank one (the smallest time that at least 95% of the
profiles do not exceed), the same rank rule as the endpoint statistics.
"""
import bisect
import functools
import operator
import os
import threading

from . import catalog, index, listing, listing_cache
from .listing import route_of

from .route_columns import ROUTE_FIELDS, grouped, sorted_columns, two_newest

ELAPSED, PAIR_ID = operator.itemgetter(0), operator.itemgetter(1)

def median(times):
    """Return the median of sorted times (the mean of the two middle ones for an even count)."""
    middle = len(times) // 2
    if len(times) % 2:
        return times[middle]
    return (times[middle - 1] + times[middle]) / 2


def nearest_rank(times, percent):
    """Return the nearest-rank percentile of sorted times (whole-number arithmetic, exact)."""
    rank = max(1, (percent * len(times) + 99) // 100)
    return times[rank - 1]


class Route:
    """One method and route: its profiles' times in order, its two newest profiles and a count."""

    __slots__ = ("method", "route", "timed", "count", "newest", "total_ms", "summary", "saved")

    def __init__(self, method, route):
        """Start with no profiles."""
        self.method, self.route = method, route
        self.timed = []  # (elapsed_ms, id), sorted
        self.newest = []  # (time, id) of the two newest, newest first
        self.count = 0
        self.total_ms = 0.0
        self.summary = None
        #: Its times in order and their ids, as two lists, instead of ``timed`` until the
        #: route changes (a route restored, or built at once).
        self.saved = None

    def saved_state(self):
        """Return the route as saved: its times and ids (in order) apart, as plain lists."""
        if self.saved is not None:  # restored or built at once, and unchanged since
            elapsed, ids = self.saved
        else:
            elapsed = [pair[0] for pair in self.timed]
            ids = [pair[1] for pair in self.timed]
        return (self.method, self.route, self.count, self.total_ms, self.newest, elapsed, ids,
                self.summarise())

    @classmethod
    def restored(cls, state):
        """Make a route from its saved state (its pairs are made again only if it changes)."""
        route = cls(state[0], state[1])
        route.count, route.total_ms, route.newest, elapsed, ids, route.summary = state[2:]
        route.timed, route.saved = None, (elapsed, ids)
        return route

    def _unpack(self):
        """Make the ``(elapsed_ms, id)`` pairs of a route kept as two lists, before it changes."""
        if self.saved is not None:
            self.timed, self.saved = list(zip(*self.saved)), None

    def add(self, elapsed, ids, times):
        """Count more profiles of this route, given as their ``elapsed_ms``, ids and ``time``
        values, in step."""
        new_route = not self.count and self.saved is None
        self.count += len(ids)
        self.summary = None
        timed_ids = ids
        if None in elapsed:
            known = [position for position, value in enumerate(elapsed) if value is not None]
            elapsed, timed_ids = [elapsed[at] for at in known], [ids[at] for at in known]
        if new_route:
            # Kept as the two sorted lists a restored route keeps, not as a pair per profile
            # (50,000 pairs cost the garbage collector some 10 ms); pairs are made on a change.
            self.timed, self.saved = None, sorted_columns(elapsed, timed_ids)
        elif len(elapsed) == 1:
            self._unpack()
            bisect.insort(self.timed, (elapsed[0], timed_ids[0]))
        elif elapsed:
            self._unpack()
            self.timed.extend(zip(elapsed, timed_ids))
            self.timed.sort()
        self.total_ms += sum(elapsed)
        if None in times:
            times = [moment or 0.0 for moment in times]
        moments = [*self.newest, *two_newest(times, ids)]
        moments.sort(reverse=True)
        self.newest = moments[:2]

    def discard(self, rows):
        """Forget ``(elapsed_ms, id, time)`` rows; False if the route cannot tell what is left
        (a time it does not hold, or one of its two newest gone while older ones remain)."""
        self._unpack()
        self.count -= len(rows)
        self.summary = None
        for elapsed, profile_id, _moment in rows:
            if elapsed is None:
                continue
            position = bisect.bisect_left(self.timed, (elapsed, profile_id))
            if self.timed[position:position + 1] != [(elapsed, profile_id)]:
                return False
            del self.timed[position]
        gone = {(moment or 0.0, profile_id) for _elapsed, profile_id, moment in rows}
        self.newest = [moment for moment in self.newest if moment not in gone]
        self.total_ms = sum(map(ELAPSED, self.timed))
        return len(self.newest) >= min(2, self.count)

    def summarise(self):
        """Describe the route (kept until a profile is added); times in ms, None when unknown."""
        if self.summary is None:
            if self.saved is not None:
                times, ids = self.saved
            else:
                times, ids = list(map(ELAPSED, self.timed)), list(map(PAIR_ID, self.timed))
            self.summary = {
                "method": self.method,
                "path": self.route,
                "count": self.count,
                "timed": len(times),
                "median_ms": median(times) if times else None,
                "p95_ms": nearest_rank(times, 95) if times else None,
                "max_ms": times[-1] if times else None,
                "min_ms": times[0] if times else None,
                "total_ms": self.total_ms,
                "unprofiled": 0,
                "newest_id": self.newest[0][1] if self.newest else None,
                "previous_id": self.newest[1][1] if len(self.newest) > 1 else None,
                "fastest_id": ids[0] if len(ids) > 1 else None,
                "slowest_id": ids[-1] if len(ids) > 1 else None,
            }
        return self.summary


class RouteTable:
    """Every route of one catalog, and how far into the catalog's index records it has read."""

    def __init__(self, kept, records):
        """Group ``records`` (the catalog's, or a scan's when ``kept`` is None) by route."""
        self.kept = kept
        self.indexed_seen = kept.indexed_count if kept is not None else 0
        self.removed_ns = kept.removed_ns if kept is not None else None
        self.routes = {}
        self.path_routes = {}  # (method, path) -> route key, where the route is not the path
        self.size = 0
        self.ordered = None
        self.add(records)

    @classmethod
    def restored(cls, kept, state):
        """Take the routes saved with ``kept``'s records, as they were when it was scanned."""
        table = cls(kept, ())
        table.removed_ns = -1  # as when saved: a removal since then builds the table again
        table.indexed_seen, table.size, table.path_routes, saved_routes = state
        for route_state in saved_routes:
            route = Route.restored(route_state)
            table.routes[(route.method, route.route)] = route
        return table

    def saved_state(self):
        """Return what :meth:`restored` takes (a scan's table, while its catalog is unchanged)."""
        return (self.indexed_seen, self.size, self.path_routes,
                [route.saved_state() for route in self.routes.values()])

    def add(self, records):
        """Add records to their routes (records without a method or path are not summarised).

        Records are grouped by method and path in one pass (:func:`.route_columns.grouped`),
        each group as three lists; those that name a rule or an endpoint are then grouped
        under it here.
        """
        by_route, others = grouped(records)
        path_routes = self.path_routes
        for record in others:
            method, path, elapsed, profile_id, moment = ROUTE_FIELDS(record)
            if method is None or path is None:
                continue
            route = route_of(record)
            if route != path:
                path_routes[(method, path)] = route
            columns = by_route.get((method, route))
            if columns is None:
                columns = by_route[(method, route)] = ([], [], [])
            columns[0].append(elapsed)
            columns[1].append(profile_id)
            columns[2].append(moment)
        for key, columns in by_route.items():
            group = self.routes.get(key)
            if group is None:
                group = self.routes[key] = Route(*key)
            group.add(*columns)
        self.size += len(records)
        self.ordered = None

    def discard(self, records):
        """Take records out of their routes; False if a route cannot tell what it has left."""
        gone = {}
        for record in records:
            method, path, elapsed, profile_id, moment = ROUTE_FIELDS(record)
            if method is not None and path is not None:
                gone.setdefault((method, route_of(record)), []).append(
                    (elapsed, profile_id, moment))
        self.size -= len(records)
        self.ordered = None
        for key, rows in gone.items():
            group = self.routes.get(key)
            if group is None or not group.discard(rows):
                return False
            if not group.count:
                del self.routes[key]
        if any(route_of(record) != record["path"] for record in records):
            # Paths grouped under another route that no profile has any more.
            present = {(record["method"], record["path"]) for record in self.kept.as_list()}
            for key in self.path_routes.keys() - present:
                del self.path_routes[key]
        return True

    def follows(self, kept):
        """Catch up with new index records of the same catalog; False if that is not enough."""
        if kept is not self.kept or kept.removed_ns != self.removed_ns:
            return False
        if kept.indexed_count != self.indexed_seen:
            new = kept.indexed[self.indexed_seen:kept.indexed_count]
            self.add([record for record in new if kept.records.get(record["id"]) is record])
            self.indexed_seen = kept.indexed_count
        return len(kept.records) == self.size

    def summaries(self):
        """Return every route's summary, most total time first (shared: do not modify them)."""
        if self.ordered is None:
            summaries = [group.summarise() for group in self.routes.values()]
            summaries.sort(key=lambda item: (item["method"], item["path"]))
            summaries.sort(key=lambda item: item["total_ms"], reverse=True)
            self.ordered = summaries
        return self.ordered


_tables = {}
_lock = threading.Lock()


def forget():
    """Forget the kept summaries (the next call builds them from all records)."""
    with _lock:
        _tables.clear()


def route_table(folder, listed=False):
    """Return the folder's summaries and its paths grouped under another route, up to date.

    ``listed`` says the folder was just listed, so the catalog that listing
    left is current (see :func:`tracker_07.profiles.catalog.kept_catalog`).
    The summaries are built under the lock, so none is made of a route half updated.
    """
    kept = catalog.kept_catalog(folder) if listed else None
    if kept is None:
        kept = catalog.catalog(folder)
    if kept is None:
        table = RouteTable(None, listing.scan_records(folder))
        return table.summaries(), table.path_routes
    with _lock:
        key = os.path.realpath(folder)
        table = _tables.get(key)
        if table is None or not table.follows(kept):
            table = _table_of(folder, kept)
            _tables.clear()  # one folder kept, as for the catalog
            _tables[key] = table
        return table.summaries(), table.path_routes  # read-only outside: only added to


def _table_of(folder, kept):
    """Take the routes saved with the catalog, or group its records; save them after a scan."""
    saved, kept.saved_routes = kept.saved_routes, None
    table = None if saved is None else _restored_table(kept, *saved)
    if table is None:
        table = RouteTable(kept, kept.as_list())
    if kept.scan_signature is not None:
        listing_cache.save_later(folder, functools.partial(_capture, folder, kept, table))
    return table


def _restored_table(kept, state, gone, unindexed):
    """The saved routes with the profiles removed and added since, caught up with new index
    lines; None if a route cannot tell what it has left."""
    table = RouteTable.restored(kept, state)
    if not table.discard(gone):
        return None
    table.add(unindexed)
    return table if table.follows(kept) else None


def _capture(folder, kept, table):
    """Marshal the catalog and its routes, if both are still exactly as scanned (else None)."""
    with _lock:
        return catalog.saved_form(folder, kept, table.saved_state)


def route_summaries(folder, *, method=None, path_contains=None, listed=False):
    """Summarise the folder's profiles by method and route, with requests served unprofiled.

    Routes only served unprofiled are listed too (with a count of 0).  ``method``
    and ``path_contains`` keep the routes the list's filters keep; ``listed``
    as for :func:`route_table`.
    """
    kept_summaries, path_routes = route_table(folder, listed)
    unprofiled = {}
    for (request_method, path), served in index.unprofiled_counts(folder).items():
        key = (request_method, path_routes.get((request_method, path), path))
        unprofiled[key] = unprofiled.get(key, 0) + served
    summaries = []
    for summary in kept_summaries:
        served = unprofiled.pop((summary["method"], summary["path"]), 0)
        summaries.append(dict(summary, unprofiled=served) if served else summary)
    summaries.extend(
        dict(Route(request_method, route).summarise(), unprofiled=served)
        for (request_method, route), served in sorted(unprofiled.items()))
    return [summary for summary in summaries if _keeps(summary, method, path_contains)]


def _keeps(summary, method, path_contains):
    """Tell whether a route passes the list's method and path filters (None: no filter)."""
    if method is not None and summary["method"] != method.upper():
        return False
    return path_contains is None or path_contains.lower() in summary["path"].lower()


def compare_pair(folder, profile_id):
    """Pick what to compare a profile with: ``(before, after)`` ids, oldest first, or None.

    The partner is the previous profile of the same method and route, else the
    next one; None for a profile alone on its route or of an unknown route.
    """
    record = listing.find_record(folder, profile_id)
    if record["method"] is None or record["path"] is None:
        return None
    ids = listing.route_profiles(folder, record["method"], route_of(record))
    if profile_id not in ids or len(ids) < 2:
        return None
    position = ids.index(profile_id)
    if position > 0:
        return ids[position - 1], profile_id
    return profile_id, ids[position + 1]
