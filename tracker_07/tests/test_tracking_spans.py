"""Spans of ids: every rolled-up raw row lies in one whose times enclose its own, retention
keeps them exact, and reads that find rows through them count each row once, also when a
roll-up commits while a read is under way."""
import math
import unittest
from unittest import mock

from sqlalchemy import event, select

from tracker_07.tracking import grouped, reads, rollups, spans, store, writes
from tracker_07.tracking.filters import Filters
from tracker_07.tests.tracking_helpers import BASE_TIME, HOUR, StoreMixin


class SpansMixin(StoreMixin):
    """The spans on any backend (SQLite here, PostgreSQL in ``test_tracking_postgres``)."""

    def roll_up(self):
        """Fold every stored row into the roll-ups (and a span)."""
        with self.engine.begin() as conn:
            rollups.roll_up(conn)

    def assert_spans_exact(self):
        """Each rolled-up row lies in exactly one span; each span's earliest start is its
        rows' earliest, its latest no earlier than theirs, and no span is empty."""
        with self.engine.connect() as conn:
            found = conn.execute(select(store.spans_table)).all()
            done = grouped.meta_value(conn, rollups.ROLLED_UP_KEY)
            rows = conn.execute(select(store.requests_table.c.id,
                                       store.requests_table.c.started_at)).all()
        for first, last, earliest, latest in found:
            inside = [started for row_id, started in rows if first <= row_id <= last]
            self.assertTrue(inside, (first, last))
            self.assertEqual(min(inside), earliest)
            self.assertLessEqual(max(inside), latest)
        for row_id, _started in rows:
            holders = [span for span in found if span[0] <= row_id <= span[1]]
            self.assertEqual(len(holders), 1 if row_id <= done else 0, row_id)

    def test_retention_by_age_and_count_keeps_the_spans_exact(self):
        for first in range(0, 2400, 800):  # three passes, two spans each
            self.insert(self.rows[first:first + 800])
            with mock.patch.object(spans, "SPAN_IDS", 500):
                self.roll_up()
        with self.engine.connect() as conn:
            found = conn.execute(select(store.spans_table.c.first_id,
                                        store.spans_table.c.last_id)).all()
        self.assertEqual(sorted(found), [(1, 500), (501, 800), (801, 1000), (1001, 1500),
                                         (1501, 1600), (1601, 2000), (2001, 2400)])
        self.insert(self.rows[2400:])  # and rows not rolled up yet
        self.assert_spans_exact()
        cutoff = BASE_TIME + 2.5 * HOUR
        with self.engine.begin() as conn:
            deleted = writes.prune(conn, older_than=cutoff)
        self.assertEqual(deleted, sum(1 for row in self.rows if row[0] < cutoff))
        self.assert_spans_exact()
        self.rows = [row for row in self.rows if row[0] >= cutoff]
        self.check_summary(BASE_TIME + 3 * HOUR + 600, BASE_TIME + 4 * HOUR + 1200)
        with self.engine.begin() as conn:  # cuts the second span
            writes.prune(conn, keep_rows=len(self.rows) - 300)
            self.assertEqual(spans.oldest(conn, 0), min(
                row["started_at"] for row in reads.export_rows(conn)))
        self.assert_spans_exact()
        self.roll_up()
        self.assert_spans_exact()
        with self.engine.begin() as conn:
            writes.prune(conn, keep_rows=0)
            self.assertIsNone(spans.oldest(conn, 0))
            self.assertIsNone(spans.newest(conn, 0))
        self.assert_spans_exact()

    def test_a_roll_up_during_a_read_counts_each_row_once(self):
        self.insert(self.rows[:1500])
        self.roll_up()
        with self.engine.connect() as conn:
            marked = grouped.meta_value(conn, rollups.ROLLED_UP_KEY)
        self.insert(self.rows[1500:])
        self.roll_up()
        real = grouped.meta_value

        def read_before_the_roll_up(conn, key):
            return marked if key == rollups.ROLLED_UP_KEY else real(conn, key)

        with mock.patch.object(grouped, "meta_value", read_before_the_roll_up):
            # Partial hours at either end, and a window shorter than an hour.
            self.check_summary(BASE_TIME + 600, BASE_TIME + 3 * HOUR + 1500)
            self.check_summary(BASE_TIME + HOUR + 300, BASE_TIME + HOUR + 2000)
            with self.engine.connect() as conn:
                series = reads.time_series(conn, Filters(
                    since=BASE_TIME, until=BASE_TIME + 40 * 60), 40)
        self.assertEqual(sum(point["count"] for point in series), sum(
            1 for row in self.rows if BASE_TIME <= row[0] < BASE_TIME + 40 * 60))

    def test_windows_without_rolled_up_rows_read_only_the_new_ones(self):
        self.insert(self.rows[:1000])
        self.roll_up()
        with self.engine.connect() as conn:
            self.assertIsNone(spans.ids_between(conn, BASE_TIME - 2 * HOUR,
                                                BASE_TIME - HOUR, math.inf))
            self.assertIsNone(spans.ids_between(conn, BASE_TIME, BASE_TIME + HOUR, 0))
        self.insert(self.rows[1000:])
        self.check_summary(BASE_TIME + 1200, BASE_TIME + 1500)
        self.check_summary(BASE_TIME - 2 * HOUR, BASE_TIME - HOUR)


class SqliteSpansTest(SpansMixin, unittest.TestCase):
    """The spans on a SQLite file, and the plans they give."""

    def test_the_dashboard_reads_no_raw_row_outside_its_window(self):
        self.insert(self.rows)
        self.roll_up()
        statements = []

        def keep(_conn, _cursor, statement, parameters, _context, _many):
            statements.append((statement, parameters))

        event.listen(self.engine, "before_cursor_execute", keep)
        self.check_summary(BASE_TIME + 600, BASE_TIME + 3 * HOUR + 1500)
        with self.engine.connect() as conn:
            reads.time_series(conn, Filters(since=BASE_TIME, until=BASE_TIME + 1800), 30)
        event.remove(self.engine, "before_cursor_execute", keep)
        with self.engine.connect() as conn:
            plans = [" / ".join(row[-1] for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters))
                for statement, parameters in statements if "tracker_requests" in statement]
        self.assertTrue(plans)
        for plan in plans:  # rows by a range of ids, never the whole table
            self.assertNotIn("SCAN tracker_requests", plan)


if __name__ == "__main__":
    unittest.main()
