"""A stale saved listing brought up to date by what changed since: what a scan gives, no scan."""
import contextlib
import os
import unittest
from unittest import mock

from tracker_07.profiles import index, listing, listing_cache, listing_update, routes
from tracker_07.profiles.errors import NotAFolder
from tracker_07.profiles.retention import FolderRetention
from tracker_07.tests import profile_fixtures as fx
from tracker_07.tests.test_profiles_listing_cache import START, ListingCacheTestCase


class CatchUpTest(ListingCacheTestCase):
    """A new process after another one changed the folder since the listing was saved."""

    def caught_up(self, **options):
        """List in a new process: page, summaries, scans, folder reads by name, lines parsed."""
        self.new_process()
        with mock.patch.object(listing_update.os, "listdir", wraps=os.listdir) as listdir, \
                mock.patch.object(index, "parse_index_lines",
                                  wraps=index.parse_index_lines) as parse:
            page, summaries, scans = self.listed(**options)
        parsed = sum(len(call.args[0]) for call in parse.call_args_list)
        return page, summaries, scans, listdir.call_count, parsed

    def assert_as_scanned(self, page, summaries, **options):
        """The same page and route figures as a full scan of the folder in a new process."""
        self.new_process()
        os.remove(self.cache_path)
        scanned_page, scanned_summaries, scans = self.listed(**options)
        self.assertEqual(scans, 1)
        self.assertEqual(page, scanned_page)
        self.assertEqual(len(summaries), len(scanned_summaries))
        for summary, scanned in zip(summaries, scanned_summaries):
            self.assertAlmostEqual(summary["total_ms"], scanned["total_ms"])
            self.assertEqual(dict(summary, total_ms=None), dict(scanned, total_ms=None))

    def remove_by_retention(self, route, pick=min):
        """Remove one profile of a route as retention in another process does; return its id."""
        saved = self.saved[route]
        doomed = pick(saved, key=lambda name: saved[name][1])
        FolderRetention(self.folder, max_files=1000)._remove(doomed)  # pylint: disable=protected-access  # the saving path
        del saved[doomed]
        if not saved:
            del self.saved[route]
        return doomed

    def test_profiles_saved_since(self):
        """Only the new lines are parsed; the folder is read by name once, never scanned."""
        for route, elapsed in ((("GET", "/b"), 0.5), (("GET", "/b"), 10_000.0),
                               (("PUT", "/new"), 3.0)):
            self.save(route, elapsed)
        page, summaries, scans, name_reads, parsed = self.caught_up()
        self.assertEqual((scans, name_reads, parsed), (0, 1, 3))
        self.assert_exact(page, summaries)
        self.assert_as_scanned(page, summaries)

    def test_files_removed_since_by_retention_in_another_process(self):
        """The oldest of a route and the slowest of another gone: no line parsed, exact."""
        self.remove_by_retention(("GET", "/a"))
        slowest = max(self.saved[("POST", "/a")], key=lambda name: self.saved[("POST", "/a")][name])
        os.remove(os.path.join(self.folder, slowest))
        del self.saved[("POST", "/a")][slowest]
        page, summaries, scans, name_reads, parsed = self.caught_up()
        self.assertEqual((scans, name_reads, parsed), (0, 1, 0))
        self.assert_exact(page, summaries)
        self.assert_as_scanned(page, summaries)

    def test_profiles_saved_and_removed_since_in_every_sort_order(self):
        """Both at once, a route emptied by retention, and its newest removed with older left
        (the routes are built again then): every sort order as a scan's."""
        for _ in range(3):
            self.save(("PUT", "/new"), 5.0)
        self.save(("GET", "/b"), 0.75)
        for _ in range(3):
            self.remove_by_retention(("PUT", "/new"))
        self.assertNotIn(("PUT", "/new"), self.saved)
        self.remove_by_retention(("GET", "/a"))
        page, summaries, scans, _reads, parsed = self.caught_up()
        self.assertEqual((scans, parsed), (0, 4))
        self.assert_exact(page, summaries)
        self.assert_as_scanned(page, summaries)
        for sort in listing.SORT_KEYS:
            for descending in (True, False):
                self.settle()
                self.new_process()
                self.listed(sort=sort, descending=descending)  # saved again, with this order
                self.remove_by_retention(("POST", "/a"), pick=max)  # its newest; older remain
                self.save(("GET", "/b"))
                with self.subTest(sort=sort, descending=descending):
                    page, summaries, scans, _reads, parsed = self.caught_up(
                        sort=sort, descending=descending)
                    self.assertEqual((scans, parsed), (0, 1))
                    self.assert_exact(listing.list_profiles(self.folder, per_page=100),
                                      summaries)
                    self.assert_as_scanned(page, summaries, sort=sort, descending=descending)

    def test_a_file_added_by_hand_without_an_index_line(self):
        """Read from its name, as a scan reads it; a stock Werkzeug name gets its file's time."""
        start_ms = int(START * 1000) + 7
        by_hand = fx.fake_name(method="POST", slug="a", start_ms=start_ms, seq=950, elapsed=64)
        fx.write_raw(self.folder, by_hand, {})
        self.saved[("POST", "/a")][by_hand] = (64.0, start_ms / 1000, start_ms)
        fx.write_raw(self.folder, "GET.stock.12ms.1700000003.prof", {})
        os.mkdir(os.path.join(self.folder, "not-a-file.prof"))
        fx.write_raw(self.folder, ".hidden.prof", {})  # not a profile name, even with a line:
        index.append_index(self.folder, fx.index_entry(".hidden.prof", path="/b"))
        page, summaries, scans, name_reads, parsed = self.caught_up()
        self.assertEqual((scans, name_reads, parsed), (0, 1, 1))
        self.assertIn(by_hand, [item["id"] for item in page.items])
        self.assertFalse({"not-a-file.prof", ".hidden.prof"} & {item["id"] for item in page.items})
        self.assertEqual(page.total, 63)
        self.assert_as_scanned(page, summaries)

    def test_an_index_compacted_since_is_scanned(self):
        """A rewritten index (a new file) is not an appended one: the folder is scanned."""
        self.remove_by_retention(("GET", "/b"))
        index.rewrite_index(self.folder)
        page, summaries, scans, name_reads, _parsed = self.caught_up()
        self.assertEqual((scans, name_reads), (1, 0))
        self.assert_exact(page, summaries)

    def test_an_index_cut_or_edited_before_the_saved_end_is_scanned(self):
        """The same file cut short, or changed within its saved part and then appended to."""
        index_path = os.path.join(self.folder, index.INDEX_NAME)
        with open(index_path, "rb") as file:
            content = file.read()
        for changed in (content[:-40], content.replace(b'"POST"', b'"PUTS"') + b"\n"):
            with self.subTest(changed=len(changed)):
                with open(index_path, "r+b") as file:
                    file.write(changed)
                    file.truncate()
                _page, _summaries, scans, name_reads, _parsed = self.caught_up()
                self.assertEqual((scans, name_reads), (1, 0))
                with open(index_path, "wb") as file:
                    file.write(content)
                os.remove(self.cache_path)
                self.settle()
                self.new_process()
                self.listed()  # saved again from the original index

    def test_a_half_written_last_line(self):
        """A line still being written is left for later (its file is read from its name), and
        a damaged whole line is skipped, as a scan does; once the line ends it is followed."""
        name = self.save(("GET", "/b"), 2.0)
        index_path = os.path.join(self.folder, index.INDEX_NAME)
        with open(index_path, "rb") as file:
            content = file.read()
        last = content[content.rstrip(b"\n").rfind(b"\n") + 1:]
        with open(index_path, "wb") as file:
            file.write(content[:-len(last)] + b"{damaged\n" + last[:25])
        page, summaries, scans, _reads, parsed = self.caught_up()
        self.assertEqual((scans, parsed), (0, 1))
        record = next(item for item in page.items if item["id"] == name)
        self.assertEqual((record["indexed"], record["status"]), (False, None))
        self.assert_exact(page, summaries)
        with open(index_path, "ab") as file:
            file.write(last[25:])
        page, summaries, scans = self.listed()
        record = next(item for item in page.items if item["id"] == name)
        self.assertEqual((scans, record["indexed"], record["status"]), (0, True, 200))
        self.assert_exact(page, summaries)

    def test_a_new_file_gone_before_it_is_read(self):
        """A file listed, then removed before its ``lstat``: not shown, nothing else lost."""
        fx.write_raw(self.folder, "vanishing.prof", {})
        with mock.patch.object(listing_update.os, "lstat", side_effect=FileNotFoundError):
            page, summaries, scans, _reads, _parsed = self.caught_up()
        self.assertEqual(scans, 0)
        self.assertNotIn("vanishing.prof", [item["id"] for item in page.items])
        self.assert_exact(page, summaries)

    def test_profiles_of_unknown_route_or_time_removed_since(self):
        """A file named by hand (no method, no path) and a line without elapsed time, both
        saved with the listing and removed since: counted out exactly."""
        untimed = fx.fake_name(slug="b", seq=960)
        fx.write_raw(self.folder, untimed, {})
        index.append_index(self.folder, fx.index_entry(untimed, path="/b", elapsed_ms=None))
        fx.write_raw(self.folder, "custom.prof", {})
        self.settle()
        self.new_process()
        self.listed()  # saved with both
        for name in (untimed, "custom.prof"):
            os.remove(os.path.join(self.folder, name))
        page, summaries, scans, _reads, _parsed = self.caught_up()
        self.assertEqual(scans, 0)
        self.assert_exact(page, summaries)
        self.assert_as_scanned(page, summaries)

    def test_an_index_read_again_meanwhile_is_scanned(self):
        """If reading the new lines did not extend the saved records, the folder is scanned."""
        self.save(("GET", "/b"), 2.0)
        with mock.patch.object(listing_update.index, "indexed_records",
                               side_effect=lambda folder: list(index.read_index(folder))):
            page, summaries, scans, name_reads, _parsed = self.caught_up()
        self.assertEqual((scans, name_reads), (1, 1))
        self.assert_exact(page, summaries)

    def test_a_folder_replaced_or_gone(self):
        """Another folder in its place, or none: nothing of the saved listing is shown."""
        self.save(("GET", "/b"), 2.0)
        self.new_process()
        with mock.patch.object(listing_update.os, "listdir", side_effect=FileNotFoundError):
            self.assertEqual(listing.list_profiles(self.folder).total, 0)
        self.new_process()
        with mock.patch.object(listing_update.os, "listdir", side_effect=NotADirectoryError):
            with self.assertRaises(NotAFolder):
                listing.list_profiles(self.folder)


class RoutesWithRulesTest(ListingCacheTestCase):
    """Profiles grouped under their rule: a path no profile has any more is not kept."""

    def setUp(self):
        super().setUp()
        self.rule_ids = []
        for number in range(2):
            name = fx.fake_name(slug=f"user.{number}", seq=700 + number,
                                start_ms=int(START * 1000) + number)
            fx.write_raw(self.folder, name, {})
            index.append_index(self.folder, fx.index_entry(
                name, path=f"/user/{number}", rule="/user/<id>", time=START + number / 1000,
                elapsed_ms=3.0 + number))
            self.rule_ids.append(name)
        self.settle()
        self.new_process()
        self.listed()

    def test_a_path_whose_profiles_are_gone(self):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.folder, self.rule_ids[0]))
        self.new_process()
        with mock.patch.object(listing_update.os, "listdir", wraps=os.listdir) as listdir:
            page, summaries, scans = self.listed()
        self.assertEqual((scans, listdir.call_count), (0, 1))
        _kept, path_routes = routes.route_table(self.folder, listed=True)
        self.assertEqual(path_routes, {("GET", "/user/1"): "/user/<id>"})
        rule = next(summary for summary in summaries if summary["path"] == "/user/<id>")
        self.assertEqual((rule["count"], rule["newest_id"], rule["previous_id"]),
                         (1, self.rule_ids[1], None))
        self.new_process()
        os.remove(self.cache_path)
        self.assertEqual(self.listed()[:2], (page, summaries))


class RouteDiscardTest(unittest.TestCase):
    """A route told to forget a profile it does not hold asks to be built again."""

    @staticmethod
    def route():
        """A route of four profiles."""
        route = routes.Route("GET", "/a")
        route.add((1.0, 2.0, 3.0, 4.0), ("a", "b", "c", "d"), (1.0, 2.0, 3.0, 4.0))
        return route

    def test_a_time_it_does_not_hold(self):
        route = self.route()
        self.assertTrue(route.discard([(1.0, "a", 1.0)]))
        self.assertEqual((route.count, route.total_ms, route.newest),
                         (3, 9.0, [(4.0, "d"), (3.0, "c")]))
        self.assertFalse(route.discard([(9.0, "z", 9.0)]))
        self.assertFalse(self.route().discard([(4.0, "d", 4.0)]))  # its newest; the next unknown


class LoadTest(ListingCacheTestCase):
    """Which saved listings count as stale but usable."""

    def test_a_saved_listing_of_a_folder_without_an_index_is_not_caught_up(self):
        signature = listing.folder_signature(self.folder)
        saved_key = (signature[1], signature[2], None)
        self.assertFalse(listing_cache._appended_since(saved_key, signature))  # pylint: disable=protected-access  # the rule itself
        self.assertFalse(listing_cache._appended_since(("x",), signature))  # pylint: disable=protected-access  # the rule itself
        self.assertTrue(listing_cache._appended_since(signature[1:], signature))  # pylint: disable=protected-access  # the rule itself
