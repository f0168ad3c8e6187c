"""Retention of saved profiles: by count and by age, at start-up and as profiles are saved."""
import os
import shutil
import tempfile
import time
import unittest
from unittest import mock

from tracker_07.profiles import files, index, listing
from tracker_07.profiles.retention import FolderRetention
from tracker_07.tests.base import ProfiledAppTestCase


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
