"""Writes on the tracking store (batches, roll-up, retention, counters) on SQLite; the same
tests run on PostgreSQL in test_tracking_postgres."""
import math
import sqlite3
import unittest
from unittest import mock

from sqlalchemy import func, select

from tracker_07.tracking import reads, rollups, store, writes
from tracker_07.tracking.filters import Filters
from tracker_07.tests.tracking_helpers import (
    BASE_TIME, HOUR, StoreMixin, sample_rows,
)


class WritesMixin(StoreMixin):
    """Write tests shared by SQLite and PostgreSQL."""

    def test_insert_rows_in_several_statements(self):
        rows = [(*row, store.bucket_of(row[4])) for row in self.rows[:20]]
        self.assertEqual(len(rows[0]), len(writes.INSERT_COLUMNS))
        with mock.patch.object(writes, "ROWS_PER_INSERT", 7), self.engine.begin() as conn:
            self.assertEqual(writes.insert_rows(conn, rows), 20)
        with self.engine.connect() as conn:
            stored = [tuple(row[name] for name in writes.INSERT_COLUMNS[:-1])
                      for row in reads.export_rows(conn)]
        self.assertEqual(stored, sorted(row[:-1] for row in rows))

    def test_roll_up_totals_match_the_raw_rows_and_count_each_row_once(self):
        self.rows = sample_rows(count=2000, seed=3, span=3 * 86400)
        self.insert(self.rows[:1200], roll_up=True)
        self.insert(self.rows[1200:])
        with self.engine.begin() as conn:
            self.assertEqual(rollups.roll_up(conn), 800)
            self.assertEqual(rollups.roll_up(conn), 0)
        for table, period in store.ROLLUPS:
            with self.engine.connect() as conn:
                totals = conn.execute(select(
                    func.sum(table.c["count"]), func.sum(table.c.sum_ms),
                    func.max(table.c.max_ms), func.min(table.c.period_start))).one()
            self.assertEqual(totals[0], len(self.rows), table.name)
            self.assertAlmostEqual(totals[1], sum(row[4] for row in self.rows), places=6)
            self.assertEqual(totals[2], max(row[4] for row in self.rows))
            self.assertEqual(totals[3], min(row[0] for row in self.rows) // period * period)

    def test_prune_by_age_and_by_count(self):
        self.insert(self.rows, roll_up=True)
        cutoff = BASE_TIME + 2.5 * HOUR
        with self.engine.begin() as conn:
            deleted = writes.prune(conn, older_than=cutoff)
            self.assertEqual(deleted, sum(1 for row in self.rows if row[0] < cutoff))
            self.assertEqual(reads.row_count(conn), len(self.rows) - deleted)
            self.assertEqual(writes.prune(conn, keep_rows=len(self.rows)), 0)
            remaining = sorted(row["id"] for row in reads.export_rows(conn))
            newest_ids = range(remaining[-1] - 99, remaining[-1] + 1)  # the newest 100 ids
            survivors = [row_id for row_id in remaining if row_id in newest_ids]
            self.assertEqual(writes.prune(conn, keep_rows=100), len(remaining) - len(survivors))
            self.assertEqual(reads.row_count(conn), len(survivors))
            kept = sorted(row["id"] for row in reads.export_rows(conn))
            self.assertEqual(writes.prune(conn, keep_rows=0), len(survivors))
            self.assertEqual(reads.endpoints(conn), [])
            with self.assertRaisesRegex(ValueError, "keep_rows"):
                writes.prune(conn, keep_rows=-1)
        # The newest rows are the ones kept.
        self.assertEqual(kept, survivors)
        self.assertEqual(kept, remaining[-len(survivors):])

    def test_prune_by_count_with_gaps_in_the_ids(self):
        self.insert(self.rows[:10])
        with self.engine.begin() as conn:
            ids = sorted(row["id"] for row in reads.export_rows(conn))
            conn.execute(store.requests_table.delete().where(
                store.requests_table.c.id.in_(ids[2:8])))
            # Ids 1, 2, 9 and 10 are left: the newest 5 ids are 6 to 10, so 1 and 2 go.
            self.assertEqual(writes.prune(conn, keep_rows=5), 2)
            self.assertEqual(sorted(row["id"] for row in reads.export_rows(conn)), ids[8:])
            self.assertEqual(writes.prune(conn, keep_rows=2), 0)

    def test_prune_removes_whole_rollup_hours_only(self):
        self.insert(self.rows, roll_up=True)
        cutoff = BASE_TIME + 2.5 * HOUR
        with self.engine.begin() as conn:
            writes.prune(conn, older_than=cutoff)
        since = math.floor(cutoff / HOUR) * HOUR + HOUR
        self.check_summary(since, BASE_TIME + 6 * HOUR)
        with self.engine.connect() as conn:
            early = reads.summary(conn, Filters(since=BASE_TIME - HOUR,
                                                 until=math.floor(cutoff / HOUR) * HOUR))
        self.assertEqual(early, [])

    def test_dropped_counter_accumulates(self):
        with self.engine.begin() as conn:
            self.assertEqual(reads.dropped_count(conn), 0)
            writes.add_dropped(conn, 3)
            writes.add_dropped(conn, 0)
            writes.add_dropped(conn, 4)
            self.assertEqual(reads.dropped_count(conn), 7)

    def test_insert_batch_of_nothing(self):
        with self.engine.begin() as conn:
            self.assertEqual(writes.insert_batch(conn, []), 0)
            self.assertEqual(rollups.roll_up(conn), 0)
            self.assertEqual(reads.row_count(conn), 0)


class SqliteWritesTest(WritesMixin, unittest.TestCase):
    """The shared write tests on a SQLite file, and its writes in steps."""

    def complete_rows(self, count):
        """``count`` sample rows with their buckets, as the writer makes them."""
        return [(*row[:5], *writes.NO_SQL, store.bucket_of(row[4])) for row in self.rows[:count]]

    def stored(self):
        """Every stored row's id and columns, in id order (export sorts by time)."""
        with self.engine.connect() as conn:
            return sorted((row["id"], *(row[name] for name in writes.INSERT_COLUMNS[:5]))
                          for row in reads.export_rows(conn))

    def test_rows_written_in_steps_are_one_transaction_with_consecutive_ids(self):
        rows = self.complete_rows(23)
        statements = []
        with self.engine.connect() as conn:
            conn.connection.dbapi_connection.set_trace_callback(statements.append)
            with mock.patch.object(writes, "_multi_row_insert",
                                   wraps=writes._multi_row_insert) as statement:  # pylint: disable=protected-access
                first_id = writes.append_rows_in_steps(conn, rows, step=10)
            conn.connection.dbapi_connection.set_trace_callback(None)
        self.assertEqual(first_id, 1)
        self.assertEqual([statement.split(" (")[0] for statement in statements],
                         ["BEGIN IMMEDIATE", *["INSERT INTO tracker_requests"] * 3, "COMMIT"])
        self.assertEqual([len(call.args[0]) for call in statement.call_args_list], [10, 10, 3])
        self.assertEqual(self.stored(), [(number, *row[:5])
                                         for number, row in enumerate(rows, start=1)])

    def test_a_failed_step_rolls_the_whole_write_back(self):
        rows = self.complete_rows(25)
        rows[22] = (None, *rows[22][1:])  # started_at may not be NULL
        with self.engine.connect() as conn:
            with self.assertRaises(sqlite3.IntegrityError):
                writes.append_rows_in_steps(conn, rows, step=10)
            self.assertFalse(conn.connection.dbapi_connection.in_transaction)
        self.assertEqual(self.stored(), [])

    def test_a_transaction_sqlite_rolled_back_itself_is_not_rolled_back_again(self):
        def execute(sql, *_args):
            if sql.startswith("INSERT"):  # e.g. a full disk: SQLite ends the transaction
                raise sqlite3.OperationalError("database or disk is full")

        dbapi_connection = mock.Mock(in_transaction=False)
        dbapi_connection.execute.side_effect = execute
        conn = mock.Mock()
        conn.connection.dbapi_connection = dbapi_connection
        with self.assertRaisesRegex(sqlite3.OperationalError, "full"):
            writes.append_rows_in_steps(conn, self.complete_rows(4), step=2)
        executed = [call.args[0].split(" (")[0] for call in dbapi_connection.execute.call_args_list]
        self.assertEqual(executed, ["BEGIN IMMEDIATE", "INSERT INTO tracker_requests"])

    def test_ids_that_are_not_consecutive_are_not_claimed(self):
        cursors = iter([mock.Mock(lastrowid=2), mock.Mock(lastrowid=9)])
        dbapi_connection = mock.Mock(in_transaction=False)
        dbapi_connection.execute.side_effect = lambda sql, *args: (
            next(cursors) if sql.startswith("INSERT") else None)
        conn = mock.Mock()
        conn.connection.dbapi_connection = dbapi_connection
        self.assertIsNone(writes.append_rows_in_steps(conn, self.complete_rows(4), step=2))


if __name__ == "__main__":
    unittest.main()
