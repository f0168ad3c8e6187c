"""Retention of saved profiles: by count and by age, at start-up and as profiles are saved."""
import os
import shutil
import tempfile
import time
import unittest
from unittest import mock

from tracker_07.profiles import (catalog, files, index, index_cache, listing, listing_cache,
                                 listing_update)
from tracker_07.profiles.retention import FolderRetention, save_listing
from tracker_07.tests import profile_fixtures as fx
from tracker_07.tests.base import ProfiledAppTestCase
from tracker_07.tests.test_profiles_listing_cache import START, ListingCacheTestCase


def save_fake_profile(folder, path, start_time):
    """Write a small real profile with an index record dated ``start_time``."""
    def name():
        return files.profile_filename("GET", path, 1.0, start_time)
    profile_id = files.write_stats(folder, name, {("~", 0, "<f>"): (1, 1, 0.0, 0.0, {})})
    index.append_index(folder, {"id": profile_id, "method": "GET", "path": path, "status": 200,
                                "elapsed_ms": 1.0, "time": start_time})
    return profile_id


class FolderRetentionTestCase(unittest.TestCase):
    """The policy itself, on a folder of profiles with known times."""

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="tracker-retention-")
        self.addCleanup(shutil.rmtree, self.folder, True)
        now = time.time()
        self.ids = [save_fake_profile(self.folder, f"/p{day}", now - day * 86400 - 60)
                    for day in range(5)]  # newest first: 0, 1, 2, 3, 4 days old

    def remaining(self):
        """Return the ids still in the folder, as the list sees them."""
        return {record["id"] for record in listing.catalog_records(self.folder)}

    def test_keeps_the_newest(self):
        removed = FolderRetention(self.folder, max_files=2).apply()
        self.assertEqual(set(removed), set(self.ids[2:]))
        self.assertEqual(self.remaining(), set(self.ids[:2]))

    def test_removes_the_old(self):
        FolderRetention(self.folder, days=2.5).apply()
        self.assertEqual(self.remaining(), set(self.ids[:3]))

    def save(self, retention, path, started=None):
        """Save one more profile the way profile mode does, and tell the retention."""
        started = time.time() if started is None else started
        profile_id = save_fake_profile(self.folder, path, started)
        return profile_id, retention.note_saved(profile_id, started)

    def test_each_save_over_the_limit_removes_the_oldest_without_reading_the_index(self):
        retention = FolderRetention(self.folder, max_files=3)
        retention.apply()
        self.assertEqual(self.remaining(), set(self.ids[:3]))
        expected = list(self.ids[:3])
        with mock.patch.object(listing, "catalog_records", side_effect=AssertionError), \
                mock.patch.object(index, "read_index", side_effect=AssertionError):
            for number in range(4):
                new_id, thread = self.save(retention, f"/new{number}")
                self.assertIsNone(thread)
                expected = [new_id] + expected[:2]
                on_disk = {name for name in os.listdir(self.folder) if name.endswith(".prof")}
                self.assertEqual(on_disk, set(expected))
        self.assertEqual(retention.removed, 2 + 4)

    def test_age_limit_applies_as_profiles_are_saved(self):
        retention = FolderRetention(self.folder, days=2.5)
        retention.apply()
        self.assertEqual(self.remaining(), set(self.ids[:3]))
        one_day_later = time.time() + 86400
        with mock.patch("tracker_07.profiles.retention.time.time", return_value=one_day_later):
            new_id, _ = self.save(retention, "/new", one_day_later)
        self.assertEqual(self.remaining(), {new_id, *self.ids[:2]})

    def test_dead_index_lines_are_compacted_in_the_background(self):
        retention = FolderRetention(self.folder, max_files=2)
        retention.apply()
        with mock.patch("tracker_07.profiles.retention.MIN_DEAD_LINES", 2):
            self.save(retention, "/a")
            _, thread = self.save(retention, "/b")
        thread.join(10)
        with open(os.path.join(self.folder, index.INDEX_NAME), encoding="ascii") as lines:
            self.assertEqual(len(lines.readlines()), 2)

    def test_a_rescan_catches_what_another_process_saved(self):
        retention = FolderRetention(self.folder, max_files=2, rescan_every=2)
        retention.apply()
        now = time.time()
        newest = save_fake_profile(self.folder, "/other-process", now + 1)
        self.save(retention, "/mine", now + 0.5)
        self.assertEqual(len(self.remaining()), 3)  # this process did not know the other file
        mine, thread = self.save(retention, "/mine-again", now + 2)
        thread.join(10)
        self.assertEqual(self.remaining(), {mine, newest})

    def test_a_file_that_cannot_be_removed_is_a_warning(self):
        retention = FolderRetention(self.folder, max_files=5)
        retention.apply()
        with mock.patch("tracker_07.profiles.retention.os.remove",
                        side_effect=PermissionError(13, "denied")), \
                self.assertLogs("tracker_07.profiles.retention", "WARNING") as logs:
            self.save(retention, "/new")
        self.assertIn("Could not remove old profile", logs.output[0])
        self.assertEqual(retention.removed, 0)

    def test_a_file_already_gone_is_not_counted(self):
        retention = FolderRetention(self.folder, max_files=5)
        retention.apply()
        os.remove(os.path.join(self.folder, self.ids[4]))
        self.save(retention, "/new")
        self.assertEqual(retention.removed, 0)

    def test_a_failing_compaction_is_a_warning(self):
        retention = FolderRetention(self.folder)
        with mock.patch.object(index, "rewrite_index", side_effect=OSError(28, "No space")), \
                self.assertLogs("tracker_07.profiles.retention", "WARNING") as logs:
            retention.compact()
        self.assertIn("Could not compact", logs.output[0])

    def test_one_prune_at_a_time(self):
        retention = FolderRetention(self.folder, max_files=1)
        with retention._running:  # pylint: disable=protected-access  # a prune is running
            self.assertEqual(retention.apply(), [])
        self.assertEqual(len(self.remaining()), 5)

    def test_a_file_in_the_folders_place_is_a_warning(self):
        not_a_folder = os.path.join(self.folder, self.ids[0])
        with self.assertLogs("tracker_07.profiles.retention", "WARNING") as logs:
            self.assertEqual(FolderRetention(not_a_folder, max_files=1).apply(), [])
        self.assertIn("PROFILER_DIR is not a folder", logs.output[0])

    def test_a_failing_prune_is_a_warning(self):
        retention = FolderRetention(self.folder, max_files=1)
        with mock.patch.object(listing, "prune", side_effect=PermissionError(13, "denied")), \
                self.assertLogs("tracker_07.profiles.retention", "WARNING") as logs:
            self.assertEqual(retention.apply(), [])
        self.assertIn("Could not prune old profiles", logs.output[0])


class RetentionSettingsTestCase(ProfiledAppTestCase):
    """PROFILER_MAX_FILES and PROFILER_RETENTION_DAYS reach the middleware."""

    def test_start_up_prunes_and_saving_keeps_the_limit(self):
        os.makedirs(self.profile_dir, exist_ok=True)
        for day in range(4):
            save_fake_profile(self.profile_dir, "/old", time.time() - (day + 1) * 86400)
        app = self.make_app(PROFILER_MAX_FILES=2, PROFILER_PRINT=False)
        self.assertEqual(len(self.prof_files()), 2)
        retention = app.extensions["tracker_profiler"].retention
        with mock.patch.object(retention, "note_saved", wraps=retention.note_saved) as noted:
            app.test_client().get("/index")
        noted.assert_called_once()
        self.assertEqual(len(self.prof_files()), 2)  # the oldest went as the new one came
        self.assertIn("GET.index.", " ".join(self.prof_files()))

    def test_no_limits_means_no_retention(self):
        app = self.make_app(PROFILER_MAX_FILES=0, PROFILER_RETENTION_DAYS=0)
        self.assertIsNone(app.extensions["tracker_profiler"].retention)

    def test_the_profile_configuration_keeps_ten_thousand(self):
        retention = self.app.extensions["tracker_profiler"].retention
        self.assertEqual((retention.max_files, retention.days), (10_000, 0))


if __name__ == "__main__":
    unittest.main()


class ListingSavedByRetentionTest(ListingCacheTestCase):
    """Profile mode's retention saves the listing of its busy folder; a new process opening the
    list for the first time brings it up to date instead of parsing the whole index."""

    def setUp(self):
        super().setUp()
        os.remove(self.cache_path)  # the listing saved by the first listing: none from here on
        self.new_process()

    def profiles(self):
        """Every profile the folder should list: id -> its start time."""
        return {name: value[1] for saved in self.saved.values() for name, value in saved.items()}

    def forget_removed(self):
        """Drop from the expected profiles those whose file retention removed."""
        for saved in self.saved.values():
            for name in [name for name in saved if not os.path.exists(self.path(name))]:
                del saved[name]

    def path(self, name):
        """Where one profile's file is."""
        return os.path.join(self.folder, name)

    def assert_as_scanned(self, page, summaries):
        """The page and routes equal those of a full scan of the folder as it is now."""
        self.new_process()
        os.remove(self.cache_path)
        scanned_page, scanned_summaries, scans = self.listed()
        self.assertEqual(scans, 1)
        self.assertEqual((page.items, page.total), (scanned_page.items, scanned_page.total))
        self.assertEqual(summaries, scanned_summaries)

    def listed_counting_listdir(self):
        """List as :meth:`listed` does; also count the folder's name reads (a catch-up)."""
        with mock.patch.object(listing_update.os, "listdir", wraps=os.listdir) as listdir:
            page, summaries, scans = self.listed()
        return page, summaries, scans, listdir.call_count

    def test_a_rescan_saves_it_and_a_first_listing_is_exact_without_a_scan(self):
        retention = FolderRetention(self.folder, max_files=1000, rescan_every=2)
        retention.apply()  # start-up: nothing saved, not to delay the first requests
        self.assertFalse(os.path.exists(self.cache_path))
        for number in range(2):
            name = self.save()
            rescan = retention.note_saved(name, self.profiles()[name])
            self.assertEqual(rescan is None, number == 0)
        rescan.join()
        self.assertTrue(os.path.isfile(self.cache_path))
        self.new_process()
        page, summaries, scans, listdir = self.listed_counting_listdir()
        self.assertEqual((scans, listdir), (0, 1))  # never exact: brought up to date
        self.assert_exact(page, summaries)
        self.settle()  # left alone, the listing brought up to date is saved as exact
        self.new_process()
        self.listed()
        self.new_process()
        self.assertEqual(self.listed_counting_listdir()[2:], (0, 0))

    def test_profiles_saved_and_removed_at_the_cap_since(self):
        retention = FolderRetention(self.folder, max_files=len(self.profiles()))
        retention.apply()
        self.assertTrue(save_listing(self.folder))
        for _ in range(4):
            name = self.save()
            retention.note_saved(name, self.profiles()[name])
        self.forget_removed()
        self.assertEqual(len(self.profiles()), retention.max_files)
        self.new_process()
        page, summaries, scans, _listdir = self.listed_counting_listdir()
        self.assertEqual(scans, 0)
        self.assert_exact(page, summaries)
        self.assert_as_scanned(page, summaries)

    def test_profiles_saved_while_it_is_scanned(self):
        """A profile saved between the index's read and the folder's, one after both, and one
        whose index line comes after the listing is saved."""
        pending = {}

        def read_then_save(folder):
            records = read_index(folder)
            self.save(("GET", "/a"), 3.0)
            return records

        def save_file_only(folder):
            self.seq += 1
            name = fx.fake_name(slug="b", start_ms=int(START * 1000) + 77, seq=self.seq)
            fx.write_raw(self.folder, name, {})
            self.saved[("GET", "/b")][name] = (11.0, START + 0.077, int(START * 1000) + 77)
            pending[name] = fx.index_entry(name, path="/b", time=START + 0.077, elapsed_ms=11.0)
            entries = read_folder(folder)
            self.save(("POST", "/a"), 7.25)  # read neither with the index nor with the folder
            return entries

        read_index, read_folder = index.indexed_records, catalog.profile_entries
        with mock.patch.object(index, "indexed_records", side_effect=read_then_save), \
                mock.patch.object(catalog, "profile_entries", side_effect=save_file_only):
            self.assertTrue(save_listing(self.folder))
        for record in pending.values():
            index.append_index(self.folder, record)
        self.new_process()
        page, summaries, scans, _listdir = self.listed_counting_listdir()
        self.assertEqual(scans, 0)
        self.assert_exact(page, summaries)
        shown = {item["id"]: item for item in page.items}
        self.assertEqual([shown[name]["indexed"] for name in pending], [True])  # its line's data
        self.assert_as_scanned(page, summaries)

    def test_compaction_saves_the_listing_of_the_new_index(self):
        retention = FolderRetention(self.folder, max_files=1000)
        retention.apply()
        self.assertTrue(save_listing(self.folder))
        doomed = next(iter(self.saved[("POST", "/a")]))
        retention._remove(doomed)  # pylint: disable=protected-access  # a line to compact away
        del self.saved[("POST", "/a")][doomed]
        os.remove(self.cache_path)
        retention.compact()
        self.assertNotIn(doomed, "".join(fx.index_lines(self.folder)))
        self.new_process()
        page, summaries, scans, _listdir = self.listed_counting_listdir()
        self.assertEqual(scans, 0)
        self.assert_exact(page, summaries)
        self.assert_as_scanned(page, summaries)

    def test_an_index_edited_in_place_since_is_read_again(self):
        self.assertTrue(save_listing(self.folder))
        with open(os.path.join(self.folder, index.INDEX_NAME), "r+b") as index_file:
            index_file.seek(-3, os.SEEK_END)
            index_file.write(b"  ")  # the same size, one figure less: not only appended to
        self.new_process()
        self.assertEqual(self.listed()[2], 1)

    def test_nothing_is_saved_where_it_cannot_be_exact_or_is_not_worth_it(self):
        def replaced(folder):
            records = read_index(folder)
            shutil.copy(os.path.join(folder, index.INDEX_NAME), self.path("copy"))
            os.replace(self.path("copy"), os.path.join(folder, index.INDEX_NAME))
            return records

        read_index = index.indexed_records
        small = FolderRetention(self.folder, max_files=1000, rescan_every=1)
        with mock.patch.object(listing_cache, "MIN_RECORDS", 1000):
            small.apply()
            small.note_saved(self.save(), START).join()  # a rescan
            small.compact()
            self.assertFalse(save_listing(self.folder))
        with mock.patch.object(index, "indexed_records", side_effect=replaced):
            self.assertFalse(save_listing(self.folder))  # replaced while read
        self.assertFalse(save_listing(os.path.join(self.folder, "missing")))
        with mock.patch.object(index_cache.os, "mkdir", side_effect=PermissionError):
            os.rmdir(os.path.dirname(self.cache_path))
            self.assertFalse(save_listing(self.folder))  # no cache folder can be made
        fx.write_raw(self.folder, index_cache.CACHE_DIR, b"a file in its place")
        self.assertFalse(save_listing(self.folder))
        os.remove(self.path(index_cache.CACHE_DIR))
        self.assertFalse(save_listing(self.path(index.INDEX_NAME)))  # not a folder
        os.remove(os.path.join(self.folder, index.INDEX_NAME))
        self.assertFalse(save_listing(self.folder))  # no index
        index_cache.wait_for_writes()
        self.assertFalse(os.path.exists(self.cache_path))
