"""Naming, writing and indexing ``.prof`` files."""
import itertools
import json
import os
import shutil
import tempfile
import threading
import unittest

from tracker_07.profiles import catalog, files


class ProfileFilesTestCase(unittest.TestCase):
    """File names are unique, safe and readable back; the index survives damage."""

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

    def test_damaged_index_lines_are_skipped(self):
        good = {"id": files.profile_filename("GET", "/a", 1, 1), "path": "/a"}
        files.append_index(self.folder, good)
        with open(os.path.join(self.folder, files.INDEX_NAME), "a", encoding="ascii") as index:
            index.write('{"id": "../escape.prof"}\nnot json\n[1, 2]\n{"id": 3')
        self.assertEqual(files.read_index(self.folder), [good])

    def test_long_paths_are_cut_in_the_index(self):
        files.append_index(self.folder, {"id": "x", "path": "/" + "p" * 5000})
        with open(os.path.join(self.folder, files.INDEX_NAME), encoding="ascii") as index:
            record = json.loads(index.readline())
        self.assertEqual(len(record["path"]), files.MAX_INDEXED_PATH_LENGTH)

    def test_missing_index_is_empty(self):
        self.assertEqual(files.read_index(os.path.join(self.folder, "nowhere")), [])


if __name__ == "__main__":
    unittest.main()


class IndexRewriteRaceTestCase(unittest.TestCase):
    """Appends from this process's request threads are never lost to a rewrite of the index."""

    def test_appends_during_rewrites(self):
        folder = tempfile.mkdtemp(prefix="tracker-race-")
        self.addCleanup(shutil.rmtree, folder, True)
        names = []

        def append_many():
            for number in range(300):
                name = files.write_stats(
                    folder, lambda n=number: files.profile_filename("GET", f"/{n}", 1, 1), {})
                files.append_index(folder, {"id": name, "path": f"/{number}"})
                names.append(name)

        writer = threading.Thread(target=append_many)
        writer.start()
        while writer.is_alive():
            catalog.rewrite_index(folder)
        writer.join()
        self.assertEqual(sorted(r["id"] for r in files.read_index(folder)), sorted(names))
