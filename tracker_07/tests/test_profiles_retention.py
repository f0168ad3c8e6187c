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

    def test_every_nth_save_prunes_in_the_background(self):
        retention = FolderRetention(self.folder, max_files=1, every=3)
        self.assertIsNone(retention.note_saved())
        self.assertIsNone(retention.note_saved())
        thread = retention.note_saved()
        thread.join(10)
        self.assertEqual(self.remaining(), {self.ids[0]})
        self.assertEqual(retention.removed, 4)

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
        retention.every = 1
        with mock.patch.object(retention, "note_saved", wraps=retention.note_saved) as noted:
            app.test_client().get("/index")
        noted.assert_called_once()
        deadline = time.monotonic() + 10
        while len(self.prof_files()) > 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(len(self.prof_files()), 2)
        self.assertIn("GET.index.", " ".join(self.prof_files()))

    def test_no_limits_means_no_retention(self):
        app = self.make_app(PROFILER_MAX_FILES=0, PROFILER_RETENTION_DAYS=0)
        self.assertIsNone(app.extensions["tracker_profiler"].retention)

    def test_the_profile_configuration_keeps_ten_thousand(self):
        retention = self.app.extensions["tracker_profiler"].retention
        self.assertEqual((retention.max_files, retention.days), (10_000, 0))


if __name__ == "__main__":
    unittest.main()
