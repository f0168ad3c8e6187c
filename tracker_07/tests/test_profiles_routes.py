"""The profiles list by route: exact percentiles, requests served unprofiled, kept summaries."""
import collections
import os
import random
import statistics
import time
import unittest
from unittest import mock

from tracker_07.profiles import index, listing, route_columns, routes
from tracker_07.profiles.retention import FolderRetention
from tracker_07.tests import profile_fixtures as fx

START = 1_700_000_000.0


def nearest_rank_p95(values):
    """The smallest value that at least 95% of the values do not exceed (by counting)."""
    return min(value for value in values
               if sum(other <= value for other in values) * 100 >= 95 * len(values))


class PercentileTest(fx.TempFolderTestCase):
    """The median and p95 equal what an independent computation gives."""

    def test_exact_for_many_sizes_with_ties(self):
        generator = random.Random(7)
        for size in (1, 2, 3, 19, 20, 21, 39, 40, 100, 101):
            values = sorted(generator.choice((1.5, 2.0, 7.25, 30.0)) * generator.randint(1, 50)
                            for _ in range(size))
            with self.subTest(size=size):
                self.assertEqual(routes.median(values), statistics.median(values))
                self.assertEqual(routes.nearest_rank(values, 95), nearest_rank_p95(values))

    def test_known_values(self):
        """1..20: the median is 10.5 and p95 is the 19th value; 1..21: 11 and the 20th."""
        self.assertEqual(routes.median(list(range(1, 21))), 10.5)
        self.assertEqual(routes.nearest_rank(list(range(1, 21)), 95), 19)
        self.assertEqual(routes.nearest_rank(list(range(1, 22)), 95), 20)
        self.assertEqual(routes.nearest_rank([4.0], 95), 4.0)


def random_records(generator, count, methods=("GET", "POST", "GET", None, 7)):
    """Index records of every shape the routes meet: unknown methods, paths, times and moments,
    rules and endpoints (also empty or not text), ties, other mappings; ``methods`` to choose
    from (a method not text cannot be ordered among the summaries)."""
    records = []
    for number in range(count):
        record = fx.index_entry(
            f"{number:05d}.prof", method=generator.choice(methods),
            path=generator.choice(("/a", "/b", "/c/d", "/a", None)),
            elapsed_ms=generator.choice((1.5, 2, 7.25, None, 30.0, generator.random() * 100)),
            time=generator.choice((START + number, START, None, START + 0.5)))
        extra = generator.randrange(8)
        if extra == 0:
            record["rule"] = generator.choice(("/a/<id>", "", None, 3))
        elif extra == 1:
            record["endpoint"] = generator.choice(("view", "/b"))
        elif extra == 2:
            record = collections.UserDict(record)
        records.append(record)
    return records


class SortedColumnsTest(unittest.TestCase):
    """Times and ids sorted as two lists are in the order of their pairs sorted."""

    def test_ties_broken_by_id_whole_numbers_too(self):
        generator = random.Random(5)
        for size in (0, 1, 2, 7, 300, 3000):
            elapsed = [generator.choice((1.5, 2, 2.0, 7.25, generator.random()))
                       for _ in range(size)]
            ids = [f"{generator.randrange(10 ** 6):06d}-{number}" for number in range(size)]
            with self.subTest(size=size):
                times, sorted_ids = route_columns.sorted_columns(elapsed, ids)
                self.assertEqual(list(zip(times, sorted_ids)), sorted(zip(elapsed, ids)))

    def test_the_two_newest_as_of_pairs_ties_and_whole_numbers_too(self):
        generator = random.Random(8)
        for size in (0, 1, 2, 3, 50, 500):
            for choices in ((START, START + 1, START + 2), (START, 7, 7.0), (START,)):
                times = [generator.choice(choices) + generator.choice((0, 0, 0.5))
                         for _ in range(size)]
                ids = [f"{generator.randrange(10 ** 6):06d}" for _ in range(size)]
                with self.subTest(size=size, choices=choices):
                    self.assertEqual(route_columns.two_newest(times, ids),
                                     sorted(zip(times, ids), reverse=True)[:2])

    def test_a_route_built_at_once_equals_one_built_a_profile_at_a_time(self):
        generator = random.Random(6)
        elapsed = [generator.choice((1.5, 2, None, 7.25, generator.random())) for _ in range(500)]
        ids = [f"{number:04d}.prof" for number in generator.sample(range(10 ** 4), 500)]
        times = [generator.choice((START, None, START + generator.random())) for _ in range(500)]
        at_once, one_by_one = routes.Route("GET", "/a"), routes.Route("GET", "/a")
        at_once.add(elapsed, ids, times)
        for row in zip(elapsed, ids, times):
            one_by_one.add(*([value] for value in row))
        self.assertIsNone(at_once.timed)  # kept as two lists
        summary, expected = at_once.summarise(), one_by_one.summarise()
        self.assertAlmostEqual(summary["total_ms"], expected["total_ms"])
        self.assertEqual(dict(summary, total_ms=None), dict(expected, total_ms=None))
        self.assertEqual(at_once.saved_state()[5:7], one_by_one.saved_state()[5:7])
        for route in (at_once, one_by_one):  # and both take a change alike
            self.assertTrue(route.discard([(elapsed[3], ids[3], times[3])]))
            route.add([0.0], ["new.prof"], [START + 2])
        self.assertEqual(at_once.timed, one_by_one.timed)
        self.assertEqual(at_once.summarise()["fastest_id"], "new.prof")


class GroupByRouteTest(unittest.TestCase):
    """The records grouped in C give what the grouping in Python gives, to the last figure."""

    def test_compiled(self):
        self.assertIsNotNone(route_columns.group_by_route,
                             "tracker_07/profiles/_listing.c is not compiled: pip install -e .")

    def test_the_same_groups_and_others_as_in_python(self):
        generator = random.Random(11)
        for count in (0, 1, 2, 50, 2000):
            records = random_records(generator, count)
            with self.subTest(count=count):
                grouped, others = route_columns.group_by_route(records)
                left = {id(record) for record in others}
                expected_grouped, expected_others = route_columns._group_by_route(  # pylint: disable=protected-access
                    [record for record in records if id(record) not in left])
                self.assertEqual(grouped, {key: list(columns)
                                           for key, columns in expected_grouped.items()})
                self.assertEqual(expected_others, [])
                self.assertEqual(others, [
                    record for record in records
                    if type(record) is not dict  # pylint: disable=unidiomatic-typecheck
                    or record["method"] is not None and record["path"] is not None and (
                        not isinstance(record["method"], str)
                        or "rule" in record or "endpoint" in record)])

    def test_the_same_summaries_as_in_python(self):
        generator = random.Random(12)
        for count in (1, 3, 400):
            records = random_records(generator, count, methods=("GET", "POST", None))
            tables = {}
            for compiled in (True, False):
                with mock.patch.object(route_columns, "group_by_route",
                                       route_columns.group_by_route if compiled else None):
                    tables[compiled] = routes.RouteTable(None, records)
            with self.subTest(count=count):
                compiled, in_python = tables[True].summaries(), tables[False].summaries()
                # Sums of the same times in another order: equal but for the last bits.
                for summary, expected in zip(compiled, in_python, strict=True):
                    self.assertAlmostEqual(summary["total_ms"], expected["total_ms"])
                    self.assertEqual(dict(summary, total_ms=None), dict(expected, total_ms=None))
                self.assertEqual(tables[True].path_routes, tables[False].path_routes)
                self.assertEqual(tables[True].size, count)
                counted = collections.Counter(
                    (record["method"], listing.route_of(record)) for record in records
                    if record["method"] is not None and record["path"] is not None)
                self.assertEqual({(summary["method"], summary["path"]): summary["count"]
                                  for summary in tables[True].summaries()}, counted)

    def test_a_record_without_a_field_is_refused_alike(self):
        for missing in ("method", "path", "elapsed_ms", "id", "time"):
            record = fx.index_entry("a.prof")
            del record[missing]
            for group in (route_columns.group_by_route, route_columns._group_by_route):  # pylint: disable=protected-access
                with self.subTest(missing=missing, group=group.__name__), \
                        self.assertRaises(KeyError):
                    group([fx.index_entry("b.prof"), record])
        with self.assertRaises(TypeError):
            route_columns.group_by_route(7)


class RouteFolderTestCase(fx.TempFolderTestCase):
    """A profile folder saved as profile mode saves it, with kept listings forgotten around."""

    def setUp(self):
        super().setUp()
        listing.clear_listing_cache(index_too=True)
        self.addCleanup(listing.clear_listing_cache, index_too=True)
        self.addCleanup(routes.forget)
        routes.forget()
        self.seq = 0

    def save(self, path="/work", elapsed=5.0, start=None, method="GET", **fields):
        """Save one profile (file, then index line) and return its id."""
        self.seq += 1
        start = START + self.seq if start is None else start
        name = fx.fake_name(method=method, start_ms=int(start * 1000), seq=self.seq,
                            elapsed=int(elapsed))
        fx.write_raw(self.folder, name, {})
        index.append_index(self.folder, fx.index_entry(
            name, method=method, path=path, time=start, elapsed_ms=elapsed, **fields))
        return name

    def settle(self):
        """Date the folder and index an hour back, as for a folder nobody is writing to."""
        an_hour_ago = time.time() - 3600
        for path in (os.path.join(self.folder, index.INDEX_NAME), self.folder):
            os.utime(path, (an_hour_ago, an_hour_ago))

    def by_route(self, **filters):
        """Return the summaries keyed by (method, route)."""
        return {(item["method"], item["path"]): item
                for item in routes.route_summaries(self.folder, **filters)}


class RouteSummaryTest(RouteFolderTestCase):
    """Each route's count, median, p95, slowest, fastest and newest profiles."""

    def setUp(self):
        super().setUp()
        generator = random.Random(3)
        self.saved = {}  # (method, path) -> [(elapsed, start, id)]
        for number in range(130):
            method, path = generator.choice((("GET", "/a"), ("GET", "/b"), ("POST", "/a")))
            elapsed = round(generator.uniform(1, 500), 3)
            start = START + generator.randint(0, 10_000) + number / 1000
            profile_id = self.save(path, elapsed, start, method)
            self.saved.setdefault((method, path), []).append((elapsed, start, profile_id))

    def test_each_route_against_an_independent_computation(self):
        summaries = routes.route_summaries(self.folder)
        self.assertEqual({(s["method"], s["path"]) for s in summaries}, set(self.saved))
        for summary in summaries:
            saved = self.saved[(summary["method"], summary["path"])]
            times = [elapsed for elapsed, _start, _id in saved]
            newest_first = sorted(saved, key=lambda item: item[1], reverse=True)
            with self.subTest(route=(summary["method"], summary["path"])):
                self.assertEqual(summary["count"], len(saved))
                self.assertEqual(summary["median_ms"], statistics.median(times))
                self.assertEqual(summary["p95_ms"], nearest_rank_p95(times))
                self.assertEqual((summary["max_ms"], summary["min_ms"]), (max(times), min(times)))
                self.assertAlmostEqual(summary["total_ms"], sum(times))
                self.assertEqual(summary["slowest_id"], max(saved)[2])
                self.assertEqual(summary["fastest_id"], min(saved)[2])
                self.assertEqual((summary["newest_id"], summary["previous_id"]),
                                 (newest_first[0][2], newest_first[1][2]))
                self.assertEqual(summary["unprofiled"], 0)
        totals = [summary["total_ms"] for summary in summaries]
        self.assertEqual(totals, sorted(totals, reverse=True))  # most time first

    def test_equal_times_and_unknown_moments(self):
        """Equal elapsed times are told apart by id; a line without a time counts as oldest."""
        tied = [self.save("/tied", 7.0, start) for start in (START, None, START + 5)]
        index.append_index(self.folder, fx.index_entry(tied[1], method="GET", path="/tied",
                                                      time=None, elapsed_ms=7.0))
        summary = self.by_route()[("GET", "/tied")]
        self.assertEqual((summary["fastest_id"], summary["slowest_id"]), (min(tied), max(tied)))
        self.assertEqual((summary["newest_id"], summary["previous_id"]), (tied[2], tied[0]))
        self.assertEqual((summary["count"], summary["median_ms"]), (3, 7.0))

    def test_filters_keep_the_lists_routes(self):
        self.assertEqual(set(self.by_route(method="post")), {("POST", "/a")})
        self.assertEqual(set(self.by_route(path_contains="B")), {("GET", "/b")})

    def test_a_new_profile_is_added_without_building_again(self):
        """After a save the kept table follows the new index line and equals a fresh build."""
        self.settle()
        routes.route_summaries(self.folder)
        self.save("/b", 999.5)
        self.save("/c", 3.0)
        with mock.patch.object(routes, "RouteTable", wraps=routes.RouteTable) as built:
            kept = routes.route_summaries(self.folder)
        self.assertEqual(built.call_count, 0)
        listing.clear_listing_cache(index_too=True)
        routes.forget()
        self.assertEqual(kept, routes.route_summaries(self.folder))
        self.assertEqual(self.by_route()[("GET", "/b")]["max_ms"], 999.5)

    def test_right_after_a_listing_the_folder_is_not_scanned_again(self):
        """The list page's summary reuses the catalog its listing just brought up to date."""
        self.settle()
        listing.list_profiles(self.folder)
        routes.route_summaries(self.folder, listed=True)
        self.save("/b", 999.5)
        with fx.counting_scans() as scandir:
            listing.list_profiles(self.folder)
            summaries = routes.route_summaries(self.folder, listed=True)
        self.assertEqual(scandir.call_count, 0)
        self.assertEqual(next(s for s in summaries if s["path"] == "/b")["max_ms"], 999.5)

    def test_removal_and_replacement_build_again(self):
        self.settle()
        routes.route_summaries(self.folder)
        slowest = self.by_route()[("GET", "/b")]["slowest_id"]
        FolderRetention(self.folder, max_files=1000)._remove(slowest)  # pylint: disable=protected-access  # the saving path
        after_removal = self.by_route()[("GET", "/b")]
        self.assertEqual(after_removal["count"], len(self.saved[("GET", "/b")]) - 1)
        self.assertNotEqual(after_removal["slowest_id"], slowest)
        fastest = after_removal["fastest_id"]
        index.append_index(self.folder, fx.index_entry(fastest, path="/b", elapsed_ms=10_000.0))
        replaced = self.by_route()[("GET", "/b")]
        self.assertEqual((replaced["count"], replaced["max_ms"], replaced["slowest_id"]),
                         (after_removal["count"], 10_000.0, fastest))


class RouteFieldsTest(RouteFolderTestCase):
    """Rules group paths; requests served unprofiled are counted; odd records are survived."""

    def test_unprofiled_counts_join_their_route_or_stand_alone(self):
        self.save("/a", 4.0)
        counts = {("GET", "/a"): 3, ("POST", "/never"): 2}
        with mock.patch.object(index, "unprofiled_counts", return_value=counts) as read:
            summaries = self.by_route()
        read.assert_called_once_with(self.folder)
        self.assertEqual(summaries[("GET", "/a")]["unprofiled"], 3)
        never = summaries[("POST", "/never")]
        self.assertEqual((never["count"], never["unprofiled"], never["median_ms"],
                          never["newest_id"], never["slowest_id"]), (0, 2, None, None, None))

    def test_placeholder_counts_nothing(self):
        self.assertEqual(index.unprofiled_counts(self.folder), {})

    def test_a_rule_groups_its_paths_and_their_unprofiled_requests(self):
        first = self.save("/items/1", 2.0, rule="/items/<int:id>")
        second = self.save("/items/2", 6.0, rule="/items/<int:id>")
        self.save("/plain", 1.0, endpoint="")
        with mock.patch.object(index, "unprofiled_counts",
                               return_value={("GET", "/items/3"): 1, ("GET", "/items/1"): 4}):
            summaries = self.by_route()
        group = summaries[("GET", "/items/<int:id>")]
        self.assertEqual((group["count"], group["median_ms"], group["fastest_id"],
                          group["slowest_id"]), (2, 4.0, first, second))
        self.assertNotIn(("GET", "/items/1"), summaries)
        self.assertEqual(group["unprofiled"], 4)
        self.assertEqual(summaries[("GET", "/items/3")]["unprofiled"], 1)  # no profile names it
        self.assertIn(("GET", "/plain"), summaries)  # an empty endpoint is no route
        self.assertEqual(listing.route_profiles(self.folder, "get", "/items/<int:id>"),
                         [first, second])

    def test_unknown_times_methods_and_paths(self):
        """A record without a time counts but has no percentile; one without a route is left out."""
        self.save("/a", 8.0)
        untimed = fx.fake_name(slug="a", seq=999)
        fx.write_raw(self.folder, untimed, {})
        index.append_index(self.folder, fx.index_entry(untimed, path="/a", elapsed_ms=None))
        fx.write_raw(self.folder, "foreign.prof", {})  # no method or path known
        only_untimed = fx.fake_name(slug="u", seq=998)
        fx.write_raw(self.folder, only_untimed, {})
        index.append_index(self.folder, fx.index_entry(only_untimed, path="/u", elapsed_ms=None))
        summaries = self.by_route()
        self.assertEqual((summaries[("GET", "/u")]["count"], summaries[("GET", "/u")]["max_ms"]),
                         (1, None))
        summary = summaries[("GET", "/a")]
        self.assertEqual((summary["count"], summary["timed"], summary["median_ms"]), (2, 1, 8.0))
        self.assertEqual((summary["fastest_id"], summary["previous_id"] is not None),
                         (None, True))
        self.assertEqual(len(routes.route_summaries(self.folder)), 2)

    def test_missing_folder_has_no_routes(self):
        self.assertEqual(routes.route_summaries(os.path.join(self.folder, "missing")), [])


class ComparePairTest(RouteFolderTestCase):
    """A profile's default partner: the previous of its route, else the next one."""

    def test_previous_else_next_else_none(self):
        first = self.save("/a", start=START + 1)
        self.save("/b", start=START + 2)
        second = self.save("/a", start=START + 3)
        third = self.save("/a", start=START + 4)
        alone = self.save("/alone", start=START + 5)
        self.assertEqual(routes.compare_pair(self.folder, third), (second, third))
        self.assertEqual(routes.compare_pair(self.folder, second), (first, second))
        self.assertEqual(routes.compare_pair(self.folder, first), (first, second))
        self.assertIsNone(routes.compare_pair(self.folder, alone))

    def test_a_profile_of_no_known_route_has_no_partner(self):
        fx.write_raw(self.folder, "foreign.prof", {})
        self.save("/a")
        self.assertIsNone(routes.compare_pair(self.folder, "foreign.prof"))
