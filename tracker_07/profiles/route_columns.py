"""The passes over every record that build the profiles list's routes, with each route's
profiles kept as columns (lists in step) rather than as a tuple per profile.

A first listing of 50,000 profiles groups every record by method and path
(:func:`grouped`: in C where ``_listing.c`` is compiled), sorts each route's times with
their ids (:func:`sorted_columns`) and finds its two newest profiles (:func:`two_newest`).
A tuple per profile would make the garbage collector run some 70 collections over them.
:mod:`.routes` keeps the routes and their summaries.
"""
import bisect
import collections
import heapq
import operator

try:
    from ._listing import group_by_route
except ImportError:  # not compiled (no C compiler at install): grouped in Python below
    group_by_route = None

#: What a route needs of a record, read in one call.
ROUTE_FIELDS = operator.itemgetter("method", "path", "elapsed_ms", "id", "time")


def grouped(records):
    """Group ``records`` by method and path: ``{(method, path): (elapsed_ms values, ids,
    times)}`` as lists, and the records that name a rule or an endpoint (for the caller to
    group under it); records whose method or path is None are left out."""
    return (group_by_route or _group_by_route)(records)


def _group_by_route(records):
    """``_listing.group_by_route`` in Python: the columns of ``records`` by method and path,
    and the records that name a rule or an endpoint.  One pass reads every field a route
    needs from each record: the records lie all over memory, so each pass costs more than
    its work."""
    by_route = {}
    others = []
    for record in records:
        method, path, elapsed, profile_id, moment = ROUTE_FIELDS(record)
        if method is None or path is None:
            continue
        if "rule" in record or "endpoint" in record:
            others.append(record)
            continue
        rows = by_route.get((method, path))
        if rows is None:
            by_route[(method, path)] = [(elapsed, profile_id, moment)]
        else:
            rows.append((elapsed, profile_id, moment))
    return {key: tuple(map(list, zip(*rows))) for key, rows in by_route.items()}, others


def sorted_columns(elapsed, ids):
    """Sort times and their ids by time, then id, as two lists: no pair made per profile.

    The positions are sorted by time (a float each, compared in C), and only runs of equal
    times by id.
    """
    order = sorted(range(len(elapsed)), key=elapsed.__getitem__)
    times = list(map(elapsed.__getitem__, order))
    if len(set(times)) != len(times):
        for moment, count in collections.Counter(times).items():
            if count > 1:
                start = bisect.bisect_left(times, moment)
                order[start:start + count] = sorted(order[start:start + count],
                                                    key=ids.__getitem__)
    return times, list(map(ids.__getitem__, order))


def two_newest(times, ids):
    """The two largest ``(time, id)`` of profiles given as times and ids, largest first.

    The times alone are compared first (in C, without a pair per profile); pairs are
    compared only where one of the two newest times is shared.
    """
    if len(times) > 1 and times.count(newest := max(times)) == 1:
        at = times.index(newest)
        others = [*times[:at], *times[at + 1:]]
        second = max(others)
        if others.count(second) == 1:
            return [(newest, ids[at]), (second, ids[times.index(second)])]
    return heapq.nlargest(2, zip(times, ids))
