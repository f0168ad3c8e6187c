"""Naming, writing and finding ``.prof`` files."""
import itertools
import os
import shutil
import tempfile
import unittest
from unittest import mock

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

    def test_sampled_profiles_share_the_names(self):
        name = files.profile_filename("GET", "/a", 3.2, 1_700_000_000.5, files.SAMPLED_SUFFIX)
        self.assertTrue(name.endswith(".speedscope.json"))
        self.assertEqual(files.parse_filename(name)["path"], "/a")
        self.assertTrue(files.is_sampled(name) and files.is_safe_name(name))
        self.assertTrue(files.is_safe_name("mine.speedscope.json"))
        self.assertFalse(files.is_safe_name("mine.json") or files.is_sampled("a.prof"))
        fx.write_raw(self.folder, name, b"{}")
        fx.write_raw(self.folder, "other.json", b"{}")
        self.assertEqual(list(files.profile_entries(self.folder)), [name])

    def test_slugs_are_safe(self):
        self.assertEqual(files.path_slug("/"), "root")
        self.assertEqual(files.path_slug("/../../etc/passwd"), "etc.passwd")
        self.assertEqual(files.path_slug("/a\x00b/ü"), "a_b")
        self.assertEqual(len(files.path_slug("/" + "x" * 500)), files.MAX_SLUG_LENGTH)
        self.assertEqual(files.parse_filename(files.profile_filename("GET", "/", 1, 1))["path"],
                         "/")

    def test_reserve_takes_the_first_free_name_and_creates_it_empty(self):
        with open(os.path.join(self.folder, "a.prof"), "wb") as file:
            file.write(b"first")
        folder = os.path.join(self.folder, "new")
        self.assertEqual(files.reserve(folder, ["a.prof"]), "a.prof")  # a new folder is created
        self.assertEqual(files.reserve(self.folder, files.numbered("a.prof")), "a-2.prof")
        self.assertEqual(os.path.getsize(os.path.join(self.folder, "a-2.prof")), 0)
        with open(os.path.join(self.folder, "a.prof"), "rb") as file:
            self.assertEqual(file.read(), b"first")
        with self.assertRaises(FileExistsError):
            files.reserve(self.folder, ["a.prof", "a-2.prof"])

    def test_numbered_variants_go_before_the_extension(self):
        variants = files.numbered("GET.a.12ms.1700000000.prof")
        self.assertEqual([next(variants) for _ in range(3)],
                         ["GET.a.12ms.1700000000.prof", "GET.a.12ms.1700000000-2.prof",
                          "GET.a.12ms.1700000000-3.prof"])
        self.assertEqual(list(itertools.islice(files.numbered("plain"), 2)), ["plain", "plain-2"])

    def test_safe_name_makes_one_plain_name_in_the_folder(self):
        cases = {
            "GET.a.b.12ms.1700000000.prof": "GET.a.b.12ms.1700000000.prof",
            "2026-11-27:07:53:20.GET.foo_bar.0ms.prof": "2026-11-27:07:53:20.GET.foo_bar.0ms.prof",
            "../../etc/passwd": "_.._etc_passwd",
            "/tmp/abs.prof": "_tmp_abs.prof",
            "a\\..\\b.prof": "a_.._b.prof",
            "x\x00y\nz.prof": "x_y_z.prof",
            "..": "profile",
            ".": "profile",
            "": "profile",
            ".hidden.prof": "hidden.prof",
        }
        for name, expected in cases.items():
            with self.subTest(name=name):
                self.assertEqual(files.safe_name(name), expected)

    def test_safe_name_shortens_long_names_before_the_extension(self):
        for name in ("é" * 300 + ".prof", "x" * 300 + ".prof", "x." + "y" * 300):
            with self.subTest(name=name[:10]):
                safe = files.safe_name(name)
                self.assertLessEqual(len(safe.encode()), files.MAX_FORMATTED_NAME_BYTES
                                     + files.MAX_EXTENSION_BYTES)
                self.assertEqual(safe.endswith(".prof"), name.endswith(".prof"))
                with open(os.path.join(self.folder, safe + "-999"), "xb"):
                    pass  # the file system takes it, with room for a number

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

    def test_safe_names_of_many_names_agree_with_one_by_one(self):
        """The quick check of a whole folder's names keeps exactly the names one by one keeps."""
        plain = [fx.fake_name(seq=number) for number in range(5)]
        plain += ["a b.speedscope.json", "é.prof"]
        odd = ["..prof", ".hidden.prof", "a\\b.prof", "x\x7f.prof", "x" * 300 + ".prof", "n.txt",
               "a/b.prof"]
        for names in (plain, plain + odd[:1], plain + odd[2:3], plain + odd[3:4],
                      plain + odd[4:5], plain + odd[5:6], odd[6:] + plain, ["n.txt"]):
            with self.subTest(names=names[-1][:20]):
                expected = [name for name in names if files.is_safe_name(name)]
                if "a/b.prof" in names:
                    expected.insert(0, "b.prof")  # as ever: a listing's names hold no "/"
                self.assertEqual(files.safe_names(names), expected)

    def test_profile_entries(self):
        """Only safe, regular ``.prof`` files count; a missing folder has none."""
        fx.write_raw(self.folder, "a.prof", {})
        fx.write_raw(self.folder, ".hidden.prof", {})
        fx.write_raw(self.folder, "notes.txt", b"x")
        os.mkdir(os.path.join(self.folder, "dir.prof"))
        self.assertEqual(list(files.profile_entries(self.folder)), ["a.prof"])
        self.assertEqual(files.profile_entries(os.path.join(self.folder, "nope")), {})
        self.assertEqual(files.profile_names(self.folder), {"a.prof"})
        self.assertEqual(files.profile_names(os.path.join(self.folder, "nope")), set())

    def test_a_file_in_the_folders_place_is_not_a_folder(self):
        """A file (or a pipe: never waited on) where the folder should be raises NotAFolder,
        whose message has no path."""
        path = fx.write_raw(self.folder, "plain-file", b"x")
        pipe = os.path.join(self.folder, "pipe")
        os.mkfifo(pipe)
        for folder in (path, os.path.join(path, "below"), pipe):
            for read in (files.profile_entries, files.profile_names):
                with self.subTest(folder=folder, read=read.__name__), \
                        self.assertRaises(NotAFolder) as caught:
                    read(folder)
                self.assertEqual(caught.exception.folder, folder)
                self.assertIn("PROFILER_DIR is not a folder", str(caught.exception))
                self.assertNotIn(self.folder, str(caught.exception))

    def test_names_read_through_the_folders_descriptor_close_it(self):
        """Reading the names in Python leaves no descriptor open, even when the scan fails."""
        fx.write_raw(self.folder, "a.prof", {})
        opened = []
        real_open = os.open

        def recording_open(*args, **kwargs):
            opened.append(real_open(*args, **kwargs))
            return opened[-1]

        with mock.patch.object(files, "_listing", None), \
                mock.patch.object(files.os, "open", recording_open), \
                mock.patch.object(files.os, "close", wraps=os.close) as close:
            self.assertEqual(files.profile_names(self.folder), {"a.prof"})
            with mock.patch.object(files, "_sift", side_effect=PermissionError), \
                    self.assertRaises(PermissionError):
                files.profile_names(self.folder)
        self.assertEqual(len(opened), 2)
        self.assertEqual([call.args[0] for call in close.call_args_list], opened)


if __name__ == "__main__":
    unittest.main()
