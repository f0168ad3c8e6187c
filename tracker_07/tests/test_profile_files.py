"""Naming, writing and indexing ``.prof`` files."""
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
