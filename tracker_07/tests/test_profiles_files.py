"""Naming, writing and finding ``.prof`` files."""
import os
import shutil
import tempfile
import unittest

from tracker_07.profiles import files
from tracker_07.profiles.errors import NotAFolder
from tracker_07.tests import profile_fixtures as fx


class ProfileFilesTestCase(unittest.TestCase):
    """File names are unique, safe and readable back; only real profile files are found."""

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="tracker-files-")
        self.addCleanup(shutil.rmtree, self.folder, True)

    def test_names_are_unique_and_parse_back(self):
        names = {files.profile_filename("get", "/user/42", 12.4, 1_700_000_000.123)
                 for _ in range(50)}
        self.assertEqual(len(names), 50)
        parsed = files.parse_filename(sorted(names)[0])
        self.assertEqual((parsed["method"], parsed["path"], parsed["elapsed_ms"], parsed["time"]),
                         ("GET", "/user/42", 12.0, 1_700_000_000.123))
        self.assertIsNone(files.parse_filename("../etc/passwd"))

    def test_slugs_are_safe(self):
        self.assertEqual(files.path_slug("/"), "root")
        self.assertEqual(files.path_slug("/../../etc/passwd"), "etc.passwd")
        self.assertEqual(files.path_slug("/a\x00b/ü"), "a_b")
        self.assertEqual(len(files.path_slug("/" + "x" * 500)), files.MAX_SLUG_LENGTH)
        self.assertEqual(files.parse_filename(files.profile_filename("GET", "/", 1, 1))["path"],
                         "/")

    def test_an_existing_file_is_never_overwritten(self):
        with open(os.path.join(self.folder, "taken.prof"), "wb") as file:
            file.write(b"first")
        names = iter(["taken.prof", "free.prof"])
        self.assertEqual(files.write_stats(self.folder, lambda: next(names), {}), "free.prof")
        with open(os.path.join(self.folder, "taken.prof"), "rb") as file:
            self.assertEqual(file.read(), b"first")

    def test_safe_names(self):
        """Tracker ids and plain names are safe; anything with separators is not."""
        self.assertTrue(files.is_safe_name(fx.fake_name()))
        self.assertTrue(files.is_safe_name("GET.a b.3ms.1700000000.prof"))
        bad_names = ("a/b.prof", "..prof", "a\nb.prof", "x.prof\n", "x" * 300 + ".prof", b"x.prof")
        for name in bad_names:
            self.assertFalse(files.is_safe_name(name), name)

    def test_profile_entries(self):
        """Only safe, regular ``.prof`` files count; a missing folder has none."""
        fx.write_raw(self.folder, "a.prof", {})
        fx.write_raw(self.folder, ".hidden.prof", {})
        fx.write_raw(self.folder, "notes.txt", b"x")
        os.mkdir(os.path.join(self.folder, "dir.prof"))
        self.assertEqual(list(files.profile_entries(self.folder)), ["a.prof"])
        self.assertEqual(files.profile_entries(os.path.join(self.folder, "nope")), {})

    def test_a_file_in_the_folders_place_is_not_a_folder(self):
        """A file where the folder should be raises NotAFolder, whose message has no path."""
        path = fx.write_raw(self.folder, "plain-file", b"x")
        for folder in (path, os.path.join(path, "below")):
            with self.subTest(folder=folder), self.assertRaises(NotAFolder) as caught:
                files.profile_entries(folder)
            self.assertEqual(caught.exception.folder, folder)
            self.assertIn("PROFILER_DIR is not a folder", str(caught.exception))
            self.assertNotIn(self.folder, str(caught.exception))


if __name__ == "__main__":
    unittest.main()
