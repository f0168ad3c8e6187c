"""The writer's passes over every request, in C (``tracking/_rows.c``) and in Python: the same
rows, the same slow requests and the same hourly groups, value for value and type for type."""
import math
import random
import unittest
from unittest import mock

from tracker_07.tracking import counted, rows, store


class Queries:
    """A request's captured queries, as far as the writer reads them."""

    def __init__(self, count):
        self.count = count
        self.seconds = count * 0.0013


def findings_of(queries):
    """Stands in for the SQL analysis: the tests compare the two passes, not the findings."""
    return queries.count % 3


def random_batch(generator, size):
    """Queued records as the request path makes them, over every case the row depends on."""
    batch = []
    for _record in range(size):
        started = generator.uniform(0, 1e5)
        duration = generator.choice([0.0, 1e-6, 0.005, generator.lognormvariate(-5, 3), 1e4])
        batch.append((started, started + duration,
                      generator.choice([None, "/a", "/b/<int:x>", "x" * 300, "é" * 250,
                                        "y" * store.ENDPOINT_LENGTH,
                                        "z" * (store.ENDPOINT_LENGTH + 1)]),
                      generator.choice(["GET", "POST", "BREW", "get"]),
                      generator.choice(["200 OK", "404 NOT FOUND", "bad", "500 X", None]),
                      generator.choice([None, None, Queries(0), Queries(generator.randint(1, 5))])))
    return batch


def types_of(items):
    """Each item's type: 1 and 1.0 are equal, but a row must hold what Python would."""
    return [type(item) for item in items]


class RowsFromTest(unittest.TestCase):
    """``_rows.rows_from`` against ``rows.rows_in_python``."""

    def setUp(self):
        self.assertIsNotNone(rows._rows,  # pylint: disable=protected-access
                             "tracker_07/tracking/_rows.c is not compiled")
        patcher = mock.patch.object(rows, "findings_count", findings_of)
        patcher.start()
        self.addCleanup(patcher.stop)

    @staticmethod
    def compiled(batch, slow_ms=math.inf, shape=rows.ROW_SHAPE):
        """The compiled pass, called as ``rows.rows_from`` calls it."""
        return rows._rows.rows_from(  # pylint: disable=protected-access
            batch, 1.7e9, slow_ms, shape, rows.status_code, rows.sql_numbers)

    def test_rows_and_slow_requests_in_c_as_in_python(self):
        generator = random.Random(5)
        for _round in range(100):
            batch = random_batch(generator, generator.randint(0, 300))
            slow_ms = generator.choice([math.inf, 10.0, 0.0])
            made, slow = self.compiled(batch, slow_ms)
            expected, expected_slow = rows.rows_in_python(batch, 1.7e9, slow_ms)
            self.assertEqual(made, expected)
            self.assertEqual([types_of(row) for row in made],
                             [types_of(row) for row in expected])
            self.assertEqual(slow, expected_slow)
        self.assertEqual(self.compiled(tuple(batch)), self.compiled(batch))

    def test_the_bounds_of_the_row(self):
        """Labels cut and named, methods folded, buckets at both ends, queries counted."""
        long_rule = "/" + "x" * 300
        batch = [(10.0, 10.0, long_rule, "BREW", "404 NOT FOUND", None),
                 (10.0, 10.0 + 1e6, None, "GET", "bad status", Queries(2)),
                 (10.0, 10.0 + store.MIN_BUCKET_MS / 1000, "/a", "GET", "200 OK", Queries(0))]
        made, slow = self.compiled(batch, slow_ms=1000.0)
        self.assertEqual(made[0][1:4], (long_rule[:store.ENDPOINT_LENGTH], "OTHER", 404))
        self.assertEqual(made[0][-1], 0)
        self.assertEqual(made[1][1:4], ("<0>", "GET", 0))
        self.assertEqual(made[1][5:], (2, Queries(2).seconds * 1000.0, 2, store.BUCKET_COUNT - 1))
        self.assertEqual(made[2][-1], store.bucket_of(made[2][4]))
        self.assertEqual(made[2][5:8], (0, 0.0, 0))
        self.assertEqual(made[0][0], 10.0 + 1.7e9)
        self.assertEqual(slow, [1])

    def test_records_of_other_types_are_left_to_python(self):
        plain = (1.0, 1.5, "/a", "GET", "200 OK", None)
        for odd in ([1.0, 1.5, "/a", "GET", "200 OK", None], (1, 2, "/a", "GET", "200 OK", None),
                    (1.0, 1.5, b"/a", "GET", "200 OK", None), (1.0, 1.5, "/a", 7, "200 OK", None),
                    (1.0, 1.5, "/a", "GET", "200 OK"), (1.0, math.nan, "/a", "GET", "200", None),
                    (1.0, math.inf, "/a", "GET", "200 OK", None)):
            self.assertIsNone(self.compiled([plain, odd]), odd)
        made, _slow = rows.rows_from([plain, (1, 2, "/a", "GET", "200 OK", None)], 0.0, math.inf)
        self.assertEqual([row[4] for row in made], [500.0, 1000.0])
        with self.assertRaises(ValueError):  # as Python refuses it: int(nan)
            rows.rows_from([(1.0, math.nan, "/a", "GET", "200 OK", None)], 0.0, math.inf)

    def test_errors_of_what_it_calls_are_raised(self):
        def failing(_queries):
            raise RuntimeError("analysis failed")

        batch = [(1.0, 1.5, "/a", "GET", "200 OK", Queries(1))]
        with self.assertRaisesRegex(RuntimeError, "analysis failed"):
            rows._rows.rows_from(batch, 0.0, math.inf, rows.ROW_SHAPE,  # pylint: disable=protected-access
                                 rows.status_code, failing)
        with self.assertRaisesRegex(TypeError, "tuple of three"):
            rows._rows.rows_from(batch, 0.0, math.inf, rows.ROW_SHAPE,  # pylint: disable=protected-access
                                 rows.status_code, lambda _queries: (1, 2))
        with self.assertRaises(TypeError):  # an unhashable status, as in Python
            self.compiled([(1.0, 1.5, "/a", "GET", ["200"], None)])
        with self.assertRaises(TypeError):
            rows.rows_in_python([(1.0, 1.5, "/a", "GET", ["200"], None)], 0.0, math.inf)
        with self.assertRaisesRegex(TypeError, "shape"):
            self.compiled(batch, shape=rows.ROW_SHAPE[:-1])

    def test_rows_from_runs_python_without_the_compiled_module(self):
        batch = random_batch(random.Random(2), 50)
        with mock.patch.object(rows, "_rows", None):
            made = rows.rows_from(batch, 5.0, 1.0)
        self.assertEqual(made, rows.rows_in_python(batch, 5.0, 1.0))
        self.assertEqual(made, rows.rows_from(batch, 5.0, 1.0))


class CountGroupsTest(unittest.TestCase):
    """``_rows.count_groups`` against ``counted.count_in_python``."""

    def setUp(self):
        self.assertIsNotNone(counted._rows,  # pylint: disable=protected-access
                             "tracker_07/tracking/_rows.c is not compiled")

    @staticmethod
    def compiled(stored, groups, statuses):
        """The compiled pass, called as ``counted.Pending.add`` calls it."""
        return counted._rows.count_groups(  # pylint: disable=protected-access
            stored, groups, statuses, store.HOUR)

    def assert_same_groups(self, left, right):
        """Equal groups, each value of the type Python would have made."""
        self.assertEqual(left, right)
        self.assertEqual({key: types_of(group) for key, group in left.items()},
                         {key: types_of(group) for key, group in right.items()})

    def test_groups_in_c_as_in_python(self):
        generator = random.Random(7)
        with mock.patch.object(rows, "findings_count", findings_of):
            for _round in range(50):
                made, _slow = rows.rows_in_python(
                    random_batch(generator, generator.randint(1, 400)), 1.7e9, math.inf)
                compiled_groups, in_python = ({}, {}), ({}, {})
                for first in range(0, len(made), 97):  # several writes into the same groups
                    part = made[first:first + 97]
                    self.assertEqual(self.compiled(part, *compiled_groups),
                                     counted.count_in_python(part, *in_python))
                for compiled, expected in zip(compiled_groups, in_python):
                    self.assert_same_groups(compiled, expected)

    def test_a_group_holds_the_sums_maxima_and_latest_start(self):
        hour = 1_700_000_000 // store.HOUR * store.HOUR
        stored = [(hour + 10.5, "/a", "GET", 200, 3.0, 2, 1.5, 1, 40),
                  # (No queries: what else it says of them is not counted.)
                  (hour + 20.5, "/a", "GET", 200, 5.0, 0, 9.0, 5, 40),
                  (hour + 5.5, "/a", "GET", 200, 4.0, 3, 2.5, 2, 41)]
        groups, statuses = {}, {}
        self.assertEqual(self.compiled(stored, groups, statuses), (hour + 5.5, hour + 20.5))
        self.assertEqual(statuses, {(hour, "/a", "GET", 200): [
            hour, "/a", "GET", 200, 3, 12.0, 5.0, hour + 20.5, 5, 3, 4.0, 3]})
        self.assertEqual(groups[hour, "/a", "GET", 200, 40],
                         [hour, "/a", "GET", 200, 40, 2, 8.0, 5.0, hour + 20.5, 2, 2, 1.5, 1])

    def test_rows_of_other_types_change_nothing(self):
        plain = (3600.5, "/a", "GET", 200, 1.0, 0, 0.0, 0, 40)
        for odd in ((3600, "/a", "GET", 200, 1.0, 0, 0.0, 0, 40), plain[:8],
                    (math.inf, "/a", "GET", 200, 1.0, 0, 0.0, 0, 40), list(plain),
                    (3600.5, "/a", "GET", 200, 1, 0, 0.0, 0, 40)):
            groups, statuses = {}, {}
            self.assertIsNone(self.compiled([plain, odd], groups, statuses), odd)
            self.assertEqual((groups, statuses), ({}, {}))

    def test_a_group_that_is_not_its_list_is_refused(self):
        row = (3600.5, "/a", "GET", 200, 1.0, 0, 0.0, 0, 40)
        with self.assertRaisesRegex(TypeError, "not a list of its size"):
            self.compiled([row], {}, {(3600, "/a", "GET", 200): (1, 2)})

    def test_pending_counts_the_same_with_either(self):
        with mock.patch.object(rows, "findings_count", findings_of):
            made, _slow = rows.rows_in_python(random_batch(random.Random(3), 200), 1e9, 1.0)
        counts = []
        for compiled in (counted._rows, None):  # pylint: disable=protected-access
            pending = counted.Pending()
            with mock.patch.object(counted, "_rows", compiled):
                pending.add(made[:120], 1)
                pending.add(made[120:], 121)
            counts.append((pending.groups, pending.statuses, pending.earliest, pending.latest,
                           pending.count))
        self.assertEqual(counts[0], counts[1])
        self.assertEqual(counts[0][2:], (min(made)[0], max(made)[0], 200))


if __name__ == "__main__":
    unittest.main()
