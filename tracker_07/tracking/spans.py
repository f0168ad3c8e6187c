"""Finding rolled-up raw rows by time without an index on it: each roll-up pass notes the
range of ids it folded in with the earliest and latest start among them (a span), so a
time window becomes a range of ids, and retention deletes rows without an index entry each.

Every raw row up to the roll-up mark lies in a span whose earliest and latest start
enclose its own; rows after the mark are read by id.  Retention deletes whole spans and
trims the one it cuts (or whose oldest rows it removed by age) to what is left, so spans
stay exact bounds.
"""
from sqlalchemy import delete, func, select

from .statements import run
from .store import requests_table, spans_table

#: Ids per span when rows are read back to make spans (many rows rolled up at once, or
#: a store upgraded): a span as long in time as a pass of one writer, at most.
SPAN_IDS = 10_000
SPANS, RAW = spans_table.name, requests_table.name


def add(conn, done, top, starts=None):
    """Note the spans of the rows ``done < id <= top`` (just rolled up): one, given their
    earliest and latest start (a writer's rows since the last pass), else one per
    ``SPAN_IDS`` ids, reading them."""
    if starts is not None:
        run(conn, f"INSERT INTO {SPANS} (first_id, last_id, earliest, latest) "
                  f"VALUES (?, ?, ?, ?)", done + 1, top, *starts)
        return
    raw = requests_table.c
    conn.execute(spans_table.insert().from_select(
        ["first_id", "last_id", "earliest", "latest"],
        select(func.min(raw.id), func.max(raw.id), func.min(raw.started_at),
               func.max(raw.started_at)).where(raw.id > done, raw.id <= top)
        .group_by((raw.id - 1) // SPAN_IDS)))


def add_existing(conn, done):
    """Spans for the rolled-up rows of a store made before spans existed (any there are
    made again)."""
    conn.execute(delete(spans_table))
    add(conn, 0, done)


def ids_between(conn, since, until, done):
    """The lowest and highest id up to ``done`` of the rows that may have started in
    ``[since, until)``, or ``None`` when no rolled-up row can have."""
    spans = spans_table.c
    low, high = conn.execute(select(func.min(spans.first_id), func.max(spans.last_id)).where(
        spans.latest >= since, spans.earliest < until)).one()
    if low is None or low > min(high, done):
        return None
    return low, min(high, done)


def newest(conn, done):
    """A start time no row started after (the latest, or later where rows were deleted)."""
    return _extreme(conn, done, "max", "latest", max)


def oldest(conn, done):
    """The earliest start of the rows left (exact: spans are trimmed as rows go)."""
    return _extreme(conn, done, "min", "earliest", min)


def _extreme(conn, done, aggregate, span_column, pick):
    """``pick`` of the spans' ``aggregate`` of ``span_column`` and the same of the rows
    not rolled up yet (read by their ids, "+ 0": not by a time index), or None when there
    are neither."""
    known = [value for value in run(
        conn, f"SELECT (SELECT {aggregate}({span_column}) FROM {SPANS}), "
              f"(SELECT {aggregate}(started_at + 0) FROM {RAW} WHERE id > ?)", done).one()
        if value is not None]
    return pick(known) if known else None


#: The rows inside a span, for a statement on the spans.
_INSIDE = f"FROM {RAW} WHERE {RAW}.id >= {SPANS}.first_id AND {RAW}.id <= {SPANS}.last_id"


def _trim(conn, where, *parameters):
    """Set the spans' (SQL ``where``) earliest start to that of the rows left in them, or
    delete them if none is."""
    run(conn, f"DELETE FROM {SPANS} WHERE {where} AND NOT EXISTS (SELECT 1 {_INSIDE})",
        *parameters)
    run(conn, f"UPDATE {SPANS} SET earliest = (SELECT min(started_at) {_INSIDE}) "
              f"WHERE {where}", *parameters)


def delete_older(conn, cutoff, done):
    """Delete the rows started before ``cutoff``; returns how many."""
    deleted = 0
    last = run(conn, f"SELECT max(last_id) FROM {SPANS} WHERE earliest < ?", cutoff).scalar()
    if last is not None:
        deleted += run(conn, f"DELETE FROM {RAW} WHERE id <= ? AND started_at < ?",
                       last, cutoff).rowcount
        run(conn, f"DELETE FROM {SPANS} WHERE latest < ?", cutoff)
        _trim(conn, "earliest < ?", cutoff)
    # Rows not rolled up yet ("+ 0": by their ids, as there is no index on the time).
    return deleted + run(conn, f"DELETE FROM {RAW} WHERE id > ? AND started_at + 0 < ?",
                         done, cutoff).rowcount


def delete_through(conn, bound):
    """Delete the rows ``id <= bound``; returns how many."""
    deleted = run(conn, f"DELETE FROM {RAW} WHERE id <= ?", bound).rowcount
    run(conn, f"DELETE FROM {SPANS} WHERE last_id <= ?", bound)
    cut = run(conn, f"SELECT first_id FROM {SPANS} WHERE first_id <= ?", bound).scalar()
    if cut is not None:  # the span cut in two: what is left of it
        run(conn, f"UPDATE {SPANS} SET first_id = ? WHERE first_id = ?", bound + 1, cut)
        _trim(conn, "first_id = ?", bound + 1)
    return deleted
