"""Reads on the tracking store (summaries, percentiles, series, histograms, endpoint lists,
exports) compared with the raw rows on SQLite; the same tests run on PostgreSQL in
test_tracking_postgres."""
import unittest

from tracker_07.tracking import reads, rollups
from tracker_07.tracking.filters import Filters
from tracker_07.tracking.store import BUCKET_ERROR
from tracker_07.tests.tracking_helpers import (
    BASE_TIME, HOUR, StoreMixin, nearest_rank, sample_rows,
)


class ReadsMixin(StoreMixin):
    """Read tests shared by SQLite and PostgreSQL."""

    def test_summary_matches_raw_rows_before_and_after_roll_up(self):
        self.insert(self.rows[:2000])
        # Half rolled up, half still raw: every read path is used at once.
        with self.engine.begin() as conn:
            self.assertEqual(rollups.roll_up(conn), 2000)
            self.assertEqual(rollups.roll_up(conn), 0)
        self.insert(self.rows[2000:])
        ranges = [
            (BASE_TIME, BASE_TIME + 5 * HOUR),
            (BASE_TIME + 1234.5, BASE_TIME + 4 * HOUR - 77.25),
            (BASE_TIME + 60, BASE_TIME + 600),
        ]
        before = [self.check_summary(since, until) for since, until in ranges]
        with self.engine.begin() as conn:
            self.assertEqual(rollups.roll_up(conn), 1000)
        after = [self.check_summary(since, until) for since, until in ranges]
        self.assertEqual(len(before), len(after))
        for old, new in zip(before, after):
            self.assertEqual([row["count"] for row in old], [row["count"] for row in new])

    def test_rows_behind_counts_the_rows_past_the_roll_up_mark(self):
        with self.engine.connect() as conn:
            self.assertEqual(reads.rows_behind(conn), 0)  # an empty store
        self.insert(self.rows[:1500])
        with self.engine.begin() as conn:
            self.assertEqual(reads.rows_behind(conn), 1500)
            rollups.roll_up(conn)
            self.assertEqual(reads.rows_behind(conn), 0)
        self.insert(self.rows[1500:1600])
        with self.engine.connect() as conn:
            self.assertEqual(reads.rows_behind(conn), 100)

    def test_summary_across_days_uses_every_level(self):
        self.rows = sample_rows(count=4000, seed=11, span=4 * 86400)
        self.insert(self.rows[:3000], roll_up=True)
        self.insert(self.rows[3000:])
        self.check_summary(BASE_TIME + 777.7, BASE_TIME + 3.5 * 86400)
        self.check_summary(BASE_TIME - 86400, BASE_TIME + 5 * 86400)
        self.check_summary(BASE_TIME + 86400, BASE_TIME + 2 * 86400, endpoint="/c")
        with self.engine.begin() as conn:
            rollups.roll_up(conn)
        self.check_summary(BASE_TIME + 777.7, BASE_TIME + 3.5 * 86400, method="POST")

    def test_summary_filters(self):
        self.insert(self.rows, roll_up=True)
        since, until = BASE_TIME - 10, BASE_TIME + 6 * HOUR
        self.check_summary(since, until, endpoint="/a")
        self.check_summary(since, until, method="POST")
        with self.engine.connect() as conn:
            only_5xx = reads.summary(conn, Filters(since=since, until=until, status="5xx"))
            only_404 = reads.summary(conn, Filters(since=since, until=until, status=404))
        expected_5xx = sum(1 for row in self.rows if row[3] >= 500)
        self.assertEqual(sum(row["count"] for row in only_5xx), expected_5xx)
        self.assertEqual(sum(row["count_5xx"] for row in only_5xx), expected_5xx)
        self.assertEqual(sum(row["count"] for row in only_404),
                         sum(1 for row in self.rows if row[3] == 404))

    def test_summary_sorting_and_limit(self):
        self.insert(self.rows, roll_up=True)
        window = Filters(since=BASE_TIME, until=BASE_TIME + 5 * HOUR)
        with self.engine.connect() as conn:
            for key in reads.SUMMARY_SORT_KEYS:
                rows = reads.summary(conn, window, sort=key)
                self.assertEqual([row[key] for row in rows],
                                 sorted((row[key] for row in rows), reverse=True))
                rows = reads.summary(conn, window, sort=key, descending=False)
                self.assertEqual([row[key] for row in rows], sorted(row[key] for row in rows))
            with self.assertRaisesRegex(ValueError, "sort must be one of"):
                reads.summary(conn, window, sort="duration_ms; DROP TABLE x")
            with self.assertRaisesRegex(ValueError, "since and until are both needed"):
                reads.summary(conn, Filters(since=BASE_TIME))

    def test_time_series_counts_each_bucket(self):
        self.insert(self.rows[:1500], roll_up=True)
        self.insert(self.rows[1500:])
        cases = [
            (BASE_TIME + 100.0, BASE_TIME + 100.0 + 4 * HOUR, 48),  # 5-minute buckets
            (BASE_TIME - 1200.0, BASE_TIME - 1200.0 + 6 * HOUR, 3),  # on the hour, 2 h wide
        ]
        for since, until, buckets in cases:
            with self.engine.connect() as conn:
                series = reads.time_series(conn, Filters(since=since, until=until), buckets=buckets)
            self.assertEqual(len(series), buckets)
            width = (until - since) / buckets
            for index, point in enumerate(series):
                low, high = since + index * width, since + (index + 1) * width
                inside = [row[4] for row in self.rows if low <= row[0] < high]
                self.assertEqual(point["count"], len(inside), (since, index))
                self.assertAlmostEqual(point["start"], low)
                if inside:
                    self.assertAlmostEqual(point["mean"], sum(inside) / len(inside))
                    self.assertAlmostEqual(point["max"], max(inside))
                    exact = nearest_rank(inside, 0.95)
                    self.assertLessEqual(abs(point["p95"] - exact),
                                         exact * (BUCKET_ERROR + 1e-9))
                else:
                    self.assertIsNone(point["mean"])
        with self.engine.connect() as conn:
            with self.assertRaisesRegex(ValueError, "buckets must be"):
                reads.time_series(conn, Filters(since=BASE_TIME, until=BASE_TIME + 10), buckets=0)

    def test_time_series_filters(self):
        self.insert(self.rows, roll_up=True)
        with self.engine.connect() as conn:
            series = reads.time_series(conn, Filters(
                since=BASE_TIME, until=BASE_TIME + 5 * HOUR, endpoint="/c", method="GET",
                status="2xx"), buckets=5)
        expected = sum(1 for row in self.rows
                       if row[1] == "/c" and row[2] == "GET" and 200 <= row[3] < 300)
        self.assertEqual(sum(point["count"] for point in series), expected)

    def test_histogram_buckets_hold_their_rows(self):
        self.insert(self.rows, roll_up=True)
        with self.engine.connect() as conn:
            buckets = reads.histogram(conn, Filters(since=BASE_TIME, until=BASE_TIME + 5 * HOUR,
                                                    endpoint="/a"))
            empty = reads.histogram(conn, Filters(since=BASE_TIME - 100, until=BASE_TIME - 50))
        durations = [row[4] for row in self.rows if row[1] == "/a"]
        self.assertEqual(sum(bucket["count"] for bucket in buckets), len(durations))
        self.assertEqual(empty, [])
        for bucket in buckets:
            inside = sum(1 for value in durations if bucket["low_ms"] <= value < bucket["high_ms"])
            # Values sitting exactly on an edge may fall either side by rounding.
            self.assertLessEqual(abs(inside - bucket["count"]), 1)
        self.assertGreater(buckets[0]["count"], 0)
        self.assertGreater(buckets[-1]["count"], 0)

    def test_summary_and_histogram_from_one_read_equal_the_two_reads(self):
        self.rows = sample_rows(count=4000, seed=12, span=4 * 86400)
        self.insert(self.rows[:3000], roll_up=True)  # days, hours and raw rows at once
        self.insert(self.rows[3000:])
        windows = [
            Filters(since=BASE_TIME + 777.7, until=BASE_TIME + 3.5 * 86400),
            Filters(since=BASE_TIME - 86400, until=BASE_TIME + 5 * 86400, endpoint="/c"),
            Filters(since=BASE_TIME + 3600, until=BASE_TIME + 2 * 86400, status="4xx"),
            Filters(since=BASE_TIME - 100, until=BASE_TIME - 50),  # nothing in it
        ]
        counted = []
        with self.engine.connect() as conn:
            for window in windows:
                summary, histogram = reads.summary_and_histogram(conn, window, sort="p95",
                                                                 descending=False)
                self.assertEqual(summary, reads.summary(conn, window, sort="p95",
                                                        descending=False))
                self.assertEqual(histogram, reads.histogram(conn, window))
                counted.append(sum(column["count"] for column in histogram))
                self.assertEqual(counted[-1], sum(row["count"] for row in summary))
            self.assertEqual([count > 0 for count in counted], [True, True, True, False])
            with self.assertRaisesRegex(ValueError, "sort must be one of"):
                reads.summary_and_histogram(conn, windows[0], sort="nope")
        since, until = BASE_TIME + 777.7, BASE_TIME + 3.5 * 86400
        inside = sum(1 for row in self.rows if since <= row[0] < until)
        with self.engine.connect() as conn:
            _, histogram = reads.summary_and_histogram(conn, windows[0])
        self.assertEqual(sum(column["count"] for column in histogram), inside)

    def test_endpoints_lists_rolled_up_and_new_pairs(self):
        self.insert(self.rows, roll_up=True)
        self.insert([(BASE_TIME, "/new", "DELETE", 204, 1.0)])
        with self.engine.connect() as conn:
            pairs = reads.endpoints(conn)
        expected = sorted({(row[1], row[2]) for row in self.rows} | {("/new", "DELETE")})
        self.assertEqual([(pair["endpoint"], pair["method"]) for pair in pairs], expected)

    def test_durations_beyond_the_last_bucket_report_the_maximum(self):
        self.rows = [(BASE_TIME + 1, "/slow", "GET", 200, 5e6), (BASE_TIME + 2, "/slow", "GET",
                                                                  200, 4e6)]
        self.insert(self.rows)
        with self.engine.connect() as conn:
            rows = reads.summary(conn, Filters(since=BASE_TIME, until=BASE_TIME + 10))
        # Past the last edge (about 30 minutes) the buckets no longer resolve anything.
        self.assertEqual((rows[0]["p50"], rows[0]["p99"], rows[0]["max"]), (5e6, 5e6, 5e6))
        self.assertEqual(rows[0]["mean"], 4.5e6)

    def test_export_rows_filters_and_order(self):
        self.insert(self.rows)
        since, until = BASE_TIME + HOUR, BASE_TIME + 2 * HOUR
        with self.engine.connect() as conn:
            exported = list(reads.export_rows(conn, Filters(
                since=since, until=until, endpoint="/a", method="get", status="2xx")))
            everything = list(reads.export_rows(conn, chunk_size=100))
        expected = sorted(row[0] for row in self.rows if since <= row[0] < until
                          and row[1] == "/a" and row[2] == "GET" and 200 <= row[3] < 300)
        self.assertEqual([row["started_at"] for row in exported], expected)
        self.assertEqual(len(everything), len(self.rows))
        self.assertEqual(set(everything[0]), set(reads.EXPORT_COLUMNS))


class SqliteReadsTest(ReadsMixin, unittest.TestCase):
    """The shared read tests on a SQLite file."""


if __name__ == "__main__":
    unittest.main()
