"""The kept list: after a save only its index line is read; changes made elsewhere show."""
import os
import time
from unittest import mock

from tracker_07.profiles import catalog, index, listing
from tracker_07.profiles.retention import FolderRetention
from tracker_07.tests import profile_fixtures as fx

START = 1_700_000_000.0


class KeptCatalogTest(fx.TempFolderTestCase):
    """The list follows appended index lines without scanning the folder."""

    def setUp(self):
        """Save ten profiles (one without an index line), list them once, date it all back."""
        super().setUp()
        listing.clear_listing_cache(index_too=True)
        self.addCleanup(listing.clear_listing_cache, index_too=True)
        self.ids = [self.save(number, start=START + number, indexed=number != 4)
                    for number in range(10)]
        self.settle()
        listing.list_profiles(self.folder)

    def save(self, seq, start=None, indexed=True, elapsed=5):
        """Save a profile as profile mode does: its file, then its index line."""
        start = time.time() if start is None else start
        name = fx.fake_name(start_ms=int(start * 1000), seq=seq, elapsed=elapsed)
        fx.write_raw(self.folder, name, {})
        if indexed:
            index.append_index(self.folder, fx.index_entry(name, time=start,
                                                           elapsed_ms=float(elapsed)))
        return name

    def settle(self):
        """Date the folder and index an hour back."""
        an_hour_ago = time.time() - 3600
        for path in (os.path.join(self.folder, index.INDEX_NAME), self.folder):
            os.utime(path, (an_hour_ago, an_hour_ago))

    def listed(self, **options):
        """List the folder; return the ids shown, the total and how often it was scanned."""
        with fx.counting_scans() as scandir:
            page = listing.list_profiles(self.folder, **options)
        return [item["id"] for item in page.items], page.total, scandir.call_count

    def test_new_profile_reads_only_its_line_and_shows_on_top(self):
        """After a save only the new index line is parsed, the folder is not scanned."""
        new_id = self.save(99)
        with mock.patch.object(index, "parse_index_lines",
                               wraps=index.parse_index_lines) as parse:
            ids, total, scans = self.listed()
        self.assertEqual([len(call.args[0]) for call in parse.call_args_list], [1])
        self.assertEqual((ids[0], total, scans), (new_id, 11, 0))

    def test_kept_orders_equal_a_fresh_sort(self):
        """Records put in place with bisect sort exactly as a full listing sorts them."""
        for sort in listing.SORT_KEYS:
            for descending in (True, False):
                listing.list_profiles(self.folder, sort=sort, descending=descending)
        for seq, elapsed in ((50, 3), (51, 7), (52, 5)):
            self.save(seq, start=START + 4.5, elapsed=elapsed)
        for sort in listing.SORT_KEYS:
            for descending in (True, False):
                with self.subTest(sort=sort, descending=descending):
                    kept = self.listed(sort=sort, descending=descending, per_page=100)
                    listing.clear_listing_cache(index_too=True)
                    fresh = listing.list_profiles(self.folder, sort=sort,
                                                  descending=descending, per_page=100)
                    self.assertEqual(kept[:2], ([i["id"] for i in fresh.items], 13))

    def test_file_removed_elsewhere_disappears(self):
        """A file removed by another process is gone from the list at once."""
        os.remove(os.path.join(self.folder, self.ids[9]))
        ids, total, scans = self.listed()
        self.assertEqual((self.ids[9] in ids, total, scans), (False, 9, 1))

    def test_removal_hidden_by_a_save_is_caught_on_the_page(self):
        """A file removed just before a save (same folder time as the index) is not shown."""
        os.remove(os.path.join(self.folder, self.ids[9]))
        new_id = self.save(99)
        index_time = os.stat(os.path.join(self.folder, index.INDEX_NAME)).st_mtime_ns
        os.utime(self.folder, ns=(index_time, index_time))
        ids, total, scans = self.listed()
        self.assertEqual((ids[0], self.ids[9] in ids, total, scans), (new_id, False, 10, 1))

    def test_file_added_elsewhere_without_a_line_appears(self):
        """A file without an index line saved next to a new profile is found by a scan."""
        self.save(98, indexed=False)
        self.save(99)
        later = os.stat(os.path.join(self.folder, index.INDEX_NAME)).st_mtime_ns + 10**6
        os.utime(self.folder, ns=(later, later))  # changed after the index: not explained
        ids, total, scans = self.listed()
        self.assertEqual((total, scans), (12, 1))
        self.assertEqual(len(ids), 12)

    def test_own_retention_removal_needs_no_scan(self):
        """A profile removed by this process's retention leaves the kept list without a scan."""
        retention = FolderRetention(self.folder, max_files=100)
        retention._remove(self.ids[9])  # pylint: disable=protected-access  # the saving path
        ids, total, scans = self.listed()
        self.assertEqual((self.ids[9] in ids, total, scans), (False, 9, 0))
        new_id = self.save(99)
        time.sleep(0.02)  # the removal lands in a later clock tick than the index line
        retention._remove(self.ids[8])  # pylint: disable=protected-access
        ids, total, scans = self.listed()
        self.assertEqual((ids[0], self.ids[8] in ids, total, scans), (new_id, False, 9, 0))

    def test_kept_catalog_is_the_last_listings_without_a_look(self):
        """kept_catalog answers from memory: None before any listing, then the listed one."""
        kept = catalog.catalog(self.folder)
        with mock.patch("tracker_07.profiles.catalog.os.stat") as stat:
            self.assertIs(catalog.kept_catalog(self.folder), kept)
        stat.assert_not_called()
        catalog.forget()
        self.assertIsNone(catalog.kept_catalog(self.folder))

    def test_scan_due_after_rescan_seconds(self):
        """Past RESCAN_SECONDS since the last scan, a save is followed by a full scan."""
        self.save(99)
        with mock.patch.object(catalog, "RESCAN_SECONDS", -1.0):
            self.assertEqual(self.listed()[1:], (11, 1))


class FindIndexedTest(fx.TempFolderTestCase):
    """A profile page opened first parses only its own index line."""

    def setUp(self):
        """Index three profiles (the second twice) and forget any parsed index."""
        super().setUp()
        index.forget_snapshots()
        self.addCleanup(index.forget_snapshots)
        self.ids = [fx.fake_name(seq=number) for number in range(3)]
        for number, name in enumerate(self.ids):
            fx.write_raw(self.folder, name, {})
            index.append_index(self.folder, fx.index_entry(name, status=200 + number))
        index.append_index(self.folder, fx.index_entry(self.ids[1], status=299))

    def test_only_its_line_is_parsed(self):
        """A once-indexed id is read from its one line; the index is not parsed whole."""
        with mock.patch.object(index, "parse_index_lines",
                               wraps=index.parse_index_lines) as parse:
            record = listing.find_record(self.folder, self.ids[2])
        self.assertEqual([len(call.args[0]) for call in parse.call_args_list], [1])
        self.assertEqual((record["status"], record["indexed"]), (202, True))

    def test_duplicate_and_unindexed_ids(self):
        """The last of two lines wins; an id without a line is read from its name."""
        self.assertEqual(listing.find_record(self.folder, self.ids[1])["status"], 299)
        other = fx.fake_name(seq=9)
        fx.write_raw(self.folder, other, {})
        self.assertEqual(listing.find_record(self.folder, other)["indexed"], False)
        self.assertEqual(listing.find_record(self.folder, self.ids[0])["status"], 200)


class EngineOfRecordsTest(fx.TempFolderTestCase):
    """Every record names its engine: from its index line, or from its file name."""

    def test_engine_from_the_line_or_the_name(self):
        sampled = "GET.a.3ms.1700000000500.1-1.speedscope.json"
        unindexed = "GET.b.3ms.1700000000600.1-2.speedscope.json"
        old = "GET.c.3ms.1700000000700.1-3.prof"
        for name in (sampled, unindexed, old):
            fx.write_raw(self.folder, name, b"{}")
        index.append_index(self.folder, {"id": sampled, "path": "/a", "engine": "sampling",
                                         "interval_ms": 1.0, "samples": 3})
        index.append_index(self.folder, {"id": old, "path": "/c"})  # written before engines
        listing.clear_listing_cache(index_too=True)
        records = {record["id"]: record for record in listing.catalog_records(self.folder)}
        self.assertEqual({name: record["engine"] for name, record in records.items()},
                         {sampled: "sampling", unindexed: "sampling", old: "cprofile"})
        self.assertEqual((records[sampled]["samples"], records[unindexed]["samples"]), (3, None))
