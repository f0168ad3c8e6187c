"""Finding rolled-up raw rows by time without an index on it: each roll-up pass notes the
range of ids it folded in with the earliest and latest start among them (a span), so a
time window becomes a range of ids, and retention deletes rows without an index entry each.

Every raw row up to the roll-up mark lies in a span whose earliest and latest start
enclose its own; rows after the mark are read by id.  Retention deletes whole spans and
trims the one it cuts (or whose oldest rows it removed by age) to what is left, so spans
stay exact bounds.
"""
from sqlalchemy import delete, func, select, update

from .store import requests_table, spans_table

#: Ids per span when rows are read back to make spans (many rows rolled up at once, or
#: a store upgraded): a span as long in time as a pass of one writer, at most.
SPAN_IDS = 10_000


def add(conn, done, top, starts=None):
    """Note the spans of the rows ``done < id <= top`` (just rolled up): one, given their
    earliest and latest start (a writer's rows since the last pass), else one per
    ``SPAN_IDS`` ids, reading them."""
    if starts is not None:
        conn.execute(spans_table.insert().values(first_id=done + 1, last_id=top,
                                                 earliest=starts[0], latest=starts[1]))
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
    return _extreme(conn, done, func.max, spans_table.c.latest, max)


def oldest(conn, done):
    """The earliest start of the rows left (exact: spans are trimmed as rows go)."""
    return _extreme(conn, done, func.min, spans_table.c.earliest, min)


def _extreme(conn, done, aggregate, span_column, pick):
    """``pick`` of the spans' ``aggregate`` of ``span_column`` and the same of the rows
    not rolled up yet (read by their ids), or None when there are neither."""
    raw = requests_table.c
    rolled = conn.execute(select(aggregate(span_column))).scalar()
    fresh = conn.execute(select(aggregate(raw.started_at + 0)).where(raw.id > done)).scalar()
    known = [value for value in (rolled, fresh) if value is not None]
    return pick(known) if known else None


def _trim(conn, *where):
    """Set the ``where`` spans' earliest start to that of the rows left in them, or
    delete them if none is."""
    raw, spans = requests_table.c, spans_table.c
    inside = (raw.id >= spans.first_id, raw.id <= spans.last_id)
    conn.execute(delete(spans_table).where(*where, ~select(raw.id).where(*inside).exists()))
    conn.execute(update(spans_table).where(*where).values(
        earliest=select(func.min(raw.started_at)).where(*inside).scalar_subquery()))


def delete_older(conn, cutoff, done):
    """Delete the rows started before ``cutoff``; returns how many."""
    raw, spans = requests_table.c, spans_table.c
    deleted = 0
    last = conn.execute(select(func.max(spans.last_id)).where(spans.earliest < cutoff)).scalar()
    if last is not None:
        deleted += conn.execute(delete(requests_table).where(
            raw.id <= last, raw.started_at < cutoff)).rowcount
        conn.execute(delete(spans_table).where(spans.latest < cutoff))
        _trim(conn, spans.earliest < cutoff)
    # Rows not rolled up yet ("+ 0": by their ids, as there is no index on the time).
    return deleted + conn.execute(delete(requests_table).where(
        raw.id > done, raw.started_at + 0 < cutoff)).rowcount


def delete_through(conn, bound):
    """Delete the rows ``id <= bound``; returns how many."""
    raw, spans = requests_table.c, spans_table.c
    deleted = conn.execute(delete(requests_table).where(raw.id <= bound)).rowcount
    conn.execute(delete(spans_table).where(spans.last_id <= bound))
    cut = conn.execute(select(spans.first_id).where(spans.first_id <= bound)).scalar()
    if cut is not None:  # the span cut in two: what is left of it
        conn.execute(update(spans_table).where(spans.first_id == cut).values(
            first_id=bound + 1))
        _trim(conn, spans.first_id == bound + 1)
    return deleted
