"""The roll-ups: what the writer counts as it writes equals what the database sums from the
raw rows, over many writes, maintenance passes, restarts and a second writer; a store made
by the previous Tracker is upgraded and reads the same."""
import tempfile
import unittest
from unittest import mock

from flask import Flask
from sqlalchemy import func, inspect, select

from tracker_07.tracking import counted, filters, reads, rollups, schema, spans, store, writes
from tracker_07.tracking.extension import Tracking
from tracker_07.tests.tracking_helpers import (
    BASE_TIME, HOUR, StoreMixin, sample_rows, sqlite_engine,
)

TABLES = (*(table for table, _period in store.ROLLUPS), store.endpoints_table)


def contents(engine, table):
    """A rollup table's rows, sorted, floats rounded (sums may add up in another order)."""
    with engine.connect() as conn:
        rows = conn.execute(select(table)).all()
    return sorted(tuple(round(value, 6) if isinstance(value, float) else value
                        for value in row) for row in rows)


def totals_check(test, engine):
    """The per-bucket totals hold exactly the hourly roll-up's hours before
    ``totals_until``, summed; returns that mark."""
    with engine.connect() as conn:
        until = schema.meta_value(conn, schema.TOTALS_UNTIL_KEY)
        summed = conn.exec_driver_sql(
            f"SELECT period_start, bucket, {schema.summed_values()} FROM "
            f"{store.hourly_table.name} WHERE period_start < {until} "
            f"GROUP BY period_start, bucket").all()
    test.assertEqual(contents(engine, store.totals_table), sorted(
        tuple(round(value, 6) if isinstance(value, float) else value for value in row)
        for row in summed))
    return until


def complete(rows):
    """Sample rows as the writer stores them (``writes.INSERT_COLUMNS`` order)."""
    return [(*row, store.bucket_of(row[4])) for row in rows]


class WriterCountsMixin:
    """Roll-ups from the writer's own counts equal a from-scratch roll-up of the raw rows
    (the store's URL from ``database_url``; the expected roll-ups built in SQLite)."""

    def setUp(self):  # pylint: disable=invalid-name  # unittest's name
        """A temporary folder, the sample rows and an empty store for each test."""
        tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(tmp.cleanup)
        self.tmpdir = tmp.name
        self.rows = complete(sample_rows(count=4000, seed=11, span=3 * 86400))
        self.url = self.database_url()

    def database_url(self):
        """The store the test writes to (empty)."""
        raise NotImplementedError

    def tracking(self, **config):
        """A tracked app on the test's store, maintenance only when the test says."""
        app = Flask(__name__)
        app.config.update(TRACKER_DATABASE_URL=self.url,
                          TRACKER_MAINTENANCE_INTERVAL=1e9, TRACKER_RETENTION_DAYS=0,
                          TRACKER_MAX_ROWS=0, **config)
        tracking = Tracking(app)
        self.addCleanup(tracking.shutdown)
        return tracking

    def expected(self):
        """Every rollup table as the database builds it from the same raw rows."""
        engine = self.expected_engine()
        return {table.name: contents(engine, table) for table in TABLES}

    def expected_engine(self):
        """A SQLite store of the same raw rows, rolled up by the database."""
        engine = sqlite_engine(f"{self.tmpdir}/expected-{len(self._cleanups)}")
        self.addCleanup(engine.dispose)
        schema.create_schema(engine)
        source = self.tracking().engine
        with source.connect() as conn:
            raw = conn.execute(select(*(store.requests_table.c[name] for name in (
                "started_at", "endpoint", "method", "status", "duration_ms", "queries",
                "sql_ms", "findings", "bucket")))).all()
        with engine.begin() as conn:
            conn.execute(store.requests_table.insert(), [
                dict(zip(("started_at", "endpoint", "method", "status", "duration_ms",
                          "queries", "sql_ms", "findings", "bucket"), row)) for row in raw])
            rollups.roll_up(conn)
        return engine

    def test_counts_kept_while_writing_equal_the_raw_rows_after_restarts(self):
        tracking = self.tracking()
        # pylint: disable-next=protected-access  # counting the calls of the merge
        merge = mock.patch.object(rollups, "merge_pending", wraps=rollups.merge_pending)
        with merge as merged:
            for first in range(0, 3000, 500):
                tracking.writer.insert(self.rows[first:first + 500])
                if first % 1000:
                    tracking.writer.maintain(force=True)
            tracking.shutdown()
            tracking = self.tracking()  # a restart: nothing counted is lost or doubled
            tracking.writer.insert(self.rows[3000:])
            tracking.writer.maintain(force=True)
        self.assertEqual(merged.call_count, 4)
        with tracking.engine.connect() as conn:  # each pass's span: its rows' starts
            found = conn.execute(select(store.spans_table)).all()
            raw = conn.execute(select(store.requests_table.c.id,
                                      store.requests_table.c.started_at)).all()
        self.assertEqual(sum(last - first + 1 for first, last, *_ in found), len(self.rows))
        for first, last, earliest, latest in found:
            inside = [started for row_id, started in raw if first <= row_id <= last]
            self.assertEqual((earliest, latest), (min(inside), max(inside)))
        actual = {table.name: contents(tracking.engine, table) for table in TABLES}
        self.assertEqual(actual, self.expected())
        self.assertTrue(actual["tracker_rollup_daily"])  # late rows for summed days too
        with tracking.engine.connect() as conn:
            self.assertEqual(sum(row["count"] for row in reads.summary(conn, reads.Filters(
                since=BASE_TIME, until=BASE_TIME + 4 * 86400))), len(self.rows))

    def test_hours_in_progress_wait_for_the_totals_and_come_late_to_them(self):
        tracking = self.tracking()
        hours_later = (BASE_TIME + 36 * HOUR, BASE_TIME + 60 * HOUR)
        for first, now in zip((0, 2000), hours_later):
            with mock.patch.object(filters, "now", return_value=now):
                tracking.writer.insert(self.rows[first:first + 2000])
                tracking.writer.maintain(force=True)
            # Summed up to the hour that ended an hour before; the later ones wait.
            self.assertEqual(totals_check(self, tracking.engine), (now // HOUR - 1) * HOUR)
        with tracking.engine.connect() as conn:  # hours from both tables, none twice
            series = reads.time_series(conn, reads.Filters(
                since=BASE_TIME, until=BASE_TIME + 4 * 86400), 96)
        self.assertEqual(sum(point["count"] for point in series), len(self.rows))
        tracking.writer.maintain(force=True)  # the clock: every hour summed
        self.assertEqual({table.name: contents(tracking.engine, table) for table in TABLES},
                         self.expected())

    def test_groups_staged_for_a_waiting_read_read_the_same_and_the_next_pass_merges_them(self):
        rows = sorted(self.rows)  # in time order: the staged hours are not summed yet
        tracking = self.tracking()
        with mock.patch.object(filters, "now", return_value=rows[1999][0]):
            tracking.writer.insert(rows[:2000])
            tracking.writer.maintain(force=True)  # hours an hour before the last summed
        # pylint: disable-next=protected-access  # the upsert a staged roll-up skips
        with mock.patch.object(rollups, "merge_pending", wraps=rollups.merge_pending) as merged:
            for first in (2000, 2600):  # twice: groups of one key staged twice
                tracking.writer.insert(rows[first:first + 600])
                tracking.writer.roll_up(staged=True)
        merged.assert_not_called()
        self.assertEqual(self.staged_rows(tracking), (2, 2))
        with tracking.engine.connect() as conn:
            self.assertEqual(reads.rows_behind(conn), 0)
        self.assertEqual(self.every_read(tracking.engine), self.every_read(self.expected_engine()))

        with mock.patch.object(filters, "now", return_value=rows[1999][0]):
            tracking.writer.insert(rows[3200:3400] + rows[:1])  # a late row: no staging
            tracking.writer.roll_up(staged=True)
            self.assertEqual(self.staged_rows(tracking), (0, 0))  # merged first
            tracking.writer.insert(rows[3400:])
            tracking.writer.roll_up(staged=True)
        self.assertEqual(self.staged_rows(tracking), (2, 2))
        self.assertEqual(self.every_read(tracking.engine), self.every_read(self.expected_engine()))
        tracking.writer.maintain(force=True)  # a pass: merged, every hour summed
        self.assertEqual(self.staged_rows(tracking), (0, 0))
        self.assertEqual({table.name: contents(tracking.engine, table) for table in TABLES},
                         self.expected())

    def test_retention_removes_staged_groups_with_their_hours(self):
        rows = sorted(self.rows)
        for prune in ({"older_than": rows[499][0] + 2 * HOUR}, {"keep_rows": 0}):
            with self.subTest(**prune):
                tracking = self.tracking()
                tracking.writer.insert(rows[:500])
                tracking.writer.roll_up(staged=True)  # nothing summed yet: all staged
                self.assertEqual(self.staged_rows(tracking), (2, 2))
                with tracking.engine.connect() as conn:  # the second time too: the ids
                    # SQLite gives after every row was removed are not taken as rolled up
                    self.assertEqual(sum(row["count"] for row in reads.summary(
                        conn, reads.Filters(since=BASE_TIME, until=BASE_TIME + 86400))), 500)
                with tracking.engine.begin() as conn:
                    writes.prune(conn, **prune)
                self.assertEqual(self.staged_rows(tracking), (0, 0))

    def staged_rows(self, tracking):
        """Whether each staged table holds groups: (0 or 2, 0 or 2) for the hourly and
        status ones (2 so that a failure shows which)."""
        with tracking.engine.connect() as conn:
            return tuple(2 if conn.execute(select(func.count()).select_from(table)).scalar()
                         else 0 for _table, _key, table in store.STAGED)

    @staticmethod
    def every_read(engine):
        """What the dashboard reads over the whole span, floats rounded."""
        window = reads.Filters(since=BASE_TIME - HOUR, until=BASE_TIME + 4 * 86400)
        narrow = reads.Filters(since=BASE_TIME + 2 * 86400 + 0.5 * HOUR,
                               until=BASE_TIME + 4 * 86400, endpoint="/a", status="5xx")
        with engine.connect() as conn:
            found = [reads.summary(conn, window), reads.summary(conn, narrow),
                     reads.time_series(conn, window, 12), reads.time_series(conn, narrow, 7),
                     reads.histogram(conn, window), reads.histogram(conn, narrow),
                     reads.endpoints(conn)]
        return [[{key: round(value, 6) if isinstance(value, float) else value
                  for key, value in row.items()} for row in rows] for rows in found]

    def test_a_second_writer_makes_the_roll_up_read_the_rows_back(self):
        first, second = self.tracking(), self.tracking()
        with mock.patch.object(rollups, "merge_pending") as merged:
            for start in range(0, 4000, 400):
                writer = (first if start % 800 else second).writer
                writer.insert(self.rows[start:start + 400])
            first.writer.maintain(force=True)
            second.writer.maintain(force=True)
        merged.assert_not_called()
        self.assertEqual({table.name: contents(first.engine, table) for table in TABLES},
                         self.expected())

class SqliteWriterCountsTest(WriterCountsMixin, unittest.TestCase):
    """The writer's counts on SQLite, and what only SQLite's inserts do."""

    def database_url(self):
        return f"sqlite:///{self.tmpdir}/store.sqlite3"

    def test_rows_stored_without_ids_are_read_back(self):
        tracking = self.tracking(TRACKER_BATCH_SIZE=2000)
        with mock.patch.object(rollups, "merge_pending") as merged:
            tracking.writer.insert(self.rows[:1500])  # more than one statement's worth
            tracking.writer.maintain(force=True)
        merged.assert_not_called()
        self.assertFalse(tracking.writer.pending.groups)
        with tracking.engine.connect() as conn:
            self.assertEqual(reads.row_count(conn), 1500)

    def test_pending_covers_exactly_the_new_ids(self):
        pending = counted.Pending()
        self.assertFalse(pending.covers(0, 10))
        pending.add(self.rows[:10], 1)
        self.assertTrue(pending.covers(0, 10))
        self.assertFalse(pending.covers(0, 11))  # someone else's row
        self.assertFalse(pending.covers(1, 10))  # one of ours was rolled up already
        pending.add(self.rows[10:12], None)
        self.assertFalse(pending.covers(0, 12))
        self.assertEqual(pending.groups, {})  # nothing kept that cannot be used
        pending.clear()
        with mock.patch.object(counted, "MAX_PENDING_GROUPS", 3):
            pending.add(self.rows[:10], 1)
            pending.add(self.rows[10:12], 11)  # too many groups: counting stops
        self.assertFalse(pending.covers(0, 12))
        self.assertEqual(pending.groups, {})
        pending.clear()
        self.assertEqual((pending.groups, pending.count, pending.usable), ({}, 0, True))


class UpgradeMixin(StoreMixin):
    """A store made by the previous Tracker (no totals or endpoint tables, a daily roll-up
    that includes the day in progress) reads the same after the upgrade."""

    def make_previous_store(self):
        """Rows rolled up the way the previous version left them."""
        self.insert(self.rows, roll_up=True)
        with self.engine.begin() as conn:
            conn.execute(store.daily_table.delete())
            rollups.fold_days(conn, now=BASE_TIME + 9 * 86400)  # every day with rows
            for table in (store.totals_table, store.endpoints_table, store.status_hourly_table,
                          store.status_daily_table, store.spans_table):
                table.drop(conn)
            conn.execute(store.meta_table.delete().where(store.meta_table.c.key.in_(
                (schema.SCHEMA_KEY, schema.DAILY_UNTIL_KEY))))

    def test_previous_store_is_upgraded_once_and_reads_the_same(self):
        self.rows = sample_rows(count=3000, seed=5, span=2 * 86400)
        self.make_previous_store()
        schema.create_schema(self.engine)
        with self.engine.begin() as conn:
            self.assertFalse(schema.upgrade(conn))  # once only
            self.assertEqual(schema.meta_value(conn, schema.SCHEMA_KEY), schema.SCHEMA_VERSION)
            self.assertEqual(len(reads.endpoints(conn)), 6)
        self.check_summary(BASE_TIME, BASE_TIME + 2 * 86400)
        with self.engine.begin() as conn:
            self.assertEqual(rollups.roll_up(conn), 0)  # sums the finished days again
        self.check_summary(BASE_TIME - HOUR, BASE_TIME + 3 * 86400)
        self.check_summary(BASE_TIME + 3 * HOUR, BASE_TIME + 30 * HOUR, endpoint="/c")
        with self.engine.connect() as conn:
            series = reads.time_series(conn, reads.Filters(since=BASE_TIME,
                                                           until=BASE_TIME + 2 * 86400), 48)
        self.assertEqual(sum(point["count"] for point in series), len(self.rows))


    def test_totals_hold_finished_hours_and_reads_take_the_rest_hourly(self):
        self.insert(self.rows[:2000])
        now = BASE_TIME + 3 * HOUR
        with self.engine.begin() as conn:
            rollups.roll_up(conn, now=now)
        until = totals_check(self, self.engine)
        self.assertEqual(until, (now // HOUR - 1) * HOUR)
        self.insert(self.rows[2000:])  # late rows for summed hours too
        with self.engine.begin() as conn:
            rollups.roll_up(conn, now=now)
        self.assertEqual(totals_check(self, self.engine), until)
        first_hour = BASE_TIME // HOUR * HOUR
        window = reads.Filters(since=first_hour, until=first_hour + 7 * HOUR)
        with self.engine.connect() as conn:
            series = reads.time_series(conn, window, 7)
            histogram = reads.histogram(conn, window)
        for point in series:  # each hour from the totals or the hourly roll-up, once
            self.assertEqual(point["count"], sum(
                1 for row in self.rows if point["start"] <= row[0] < point["end"]))
        self.assertEqual(sum(column["count"] for column in histogram), len(self.rows))
        with self.engine.begin() as conn:
            rollups.roll_up(conn, now=now + 86400)
        self.assertGreater(totals_check(self, self.engine), BASE_TIME + 6 * HOUR)

    def test_a_store_of_version_2_sums_its_totals_again(self):
        self.insert(self.rows, roll_up=True)
        with self.engine.begin() as conn:  # as version 2 left it: every hour in the totals
            conn.execute(store.meta_table.delete().where(
                store.meta_table.c.key == schema.TOTALS_UNTIL_KEY))
            schema.set_meta(conn, schema.SCHEMA_KEY, 2)
            conn.execute(store.totals_table.delete())
            conn.exec_driver_sql(f"INSERT INTO {store.totals_table.name} SELECT period_start, "
                                 f"bucket, {schema.summed_values()} FROM "
                                 f"{store.hourly_table.name} GROUP BY period_start, bucket")
            # ... with an index on the start time and no spans.
            store.spans_table.drop(conn)
            conn.exec_driver_sql(f"CREATE INDEX {store.OLD_TIME_INDEX} ON "
                                 f"{store.requests_table.name} (started_at)")
        self.assertTrue(inspect(self.engine).get_indexes(store.requests_table.name))
        self.insert(self.rows[:10])  # and rows not rolled up yet
        with mock.patch.object(spans, "SPAN_IDS", 1000):
            schema.create_schema(self.engine)
        self.assertEqual(inspect(self.engine).get_indexes(store.requests_table.name), [])
        self.assertEqual(totals_check(self, self.engine), 0)  # emptied, read hourly
        with self.engine.connect() as conn:  # the rolled-up rows in spans of 1,000 ids
            found = conn.execute(select(store.spans_table).order_by("first_id")).all()
        self.assertEqual([tuple(row[:2]) for row in found],
                         [(1, 1000), (1001, 2000), (2001, 3000)])
        for first, last, earliest, latest in found:
            inside = [row[0] for row in self.rows[first - 1:last]]
            self.assertEqual((earliest, latest), (min(inside), max(inside)))
        self.rows += self.rows[:10]
        with self.engine.begin() as conn:
            rollups.roll_up(conn)
        self.assertGreater(totals_check(self, self.engine), BASE_TIME + 6 * HOUR)
        with self.engine.connect() as conn:
            series = reads.time_series(conn, reads.Filters(
                since=BASE_TIME, until=BASE_TIME + 6 * HOUR), 6)
        self.assertEqual(sum(point["count"] for point in series), len(self.rows))


class SqliteUpgradeTest(UpgradeMixin, unittest.TestCase):
    """The upgrade on a SQLite file."""


if __name__ == "__main__":
    unittest.main()
