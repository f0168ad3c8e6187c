"""Tests for the count of requests served unprofiled, kept beside the profile folder's index."""
import json
import os
import tempfile
import unittest
from unittest import mock

from tracker_07.profiles import index, unprofiled


class UnprofiledTestCase(unittest.TestCase):
    """Counts per method and path that any process reading the folder sees."""

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="tracker-unprofiled-")

    def note(self, method, path, times=1):
        """Count ``times`` unprofiled requests."""
        for _ in range(times):
            unprofiled.note_unprofiled(self.folder, method, path, "busy", 1_700_000_000.0)

    def test_counts_per_method_and_path(self):
        self.assertEqual(index.unprofiled_counts(self.folder), {})
        self.note("GET", "/words/fast", 3)
        self.note("POST", "/words/fast")
        self.assertEqual(index.unprofiled_counts(self.folder),
                         {("GET", "/words/fast"): 3, ("POST", "/words/fast"): 1})
        self.note("GET", "/words/fast")  # a later line is read, not an old answer kept
        self.assertEqual(index.unprofiled_counts(self.folder)[("GET", "/words/fast")], 4)

    def test_the_index_and_its_readers_never_see_them(self):
        self.note("GET", "/a")
        self.assertEqual(index.read_index(self.folder), [])
        self.assertEqual(index.indexed_records(self.folder), [])

    def test_damaged_lines_are_skipped(self):
        self.note("GET", "/a")
        with open(os.path.join(self.folder, unprofiled.UNPROFILED_NAME), "a",
                  encoding="ascii") as side:
            side.write('{"method": "GET"\n[1]\n{"method": "GET", "path": "/a", "count": true}\n'
                       '{"method": "GET", "path": "/a", "count": 2}\n')
        self.assertEqual(index.unprofiled_counts(self.folder), {("GET", "/a"): 3})

    def test_compaction_keeps_the_counts(self):
        self.note("GET", "/a", 5)
        self.note("GET", "/b", 2)
        self.assertFalse(unprofiled.compact_unprofiled(self.folder))  # short: left as it is
        self.assertTrue(unprofiled.compact_unprofiled(self.folder, min_lines=2))
        with open(os.path.join(self.folder, unprofiled.UNPROFILED_NAME), encoding="ascii") as side:
            lines = [json.loads(line) for line in side]
        self.assertEqual(len(lines), 2)
        self.assertEqual(index.unprofiled_counts(self.folder), {("GET", "/a"): 5, ("GET", "/b"): 2})

    def test_compaction_leaves_a_file_another_process_appends_to(self):
        self.note("GET", "/a", 3)
        real_getsize = os.path.getsize

        def grown(path):  # another process appends (it does not share this process's lock)
            with open(path, "a", encoding="ascii") as side:
                side.write('{"method":"GET","path":"/a"}\n')
            return real_getsize(path)

        with mock.patch("os.path.getsize", side_effect=grown):
            self.assertFalse(unprofiled.compact_unprofiled(self.folder, min_lines=2))
        self.assertEqual(index.unprofiled_counts(self.folder), {("GET", "/a"): 4})
        self.assertEqual([name for name in os.listdir(self.folder) if name.endswith(".tmp")], [])
        self.assertFalse(unprofiled.compact_unprofiled(os.path.join(self.folder, "none")))


if __name__ == "__main__":
    unittest.main()
