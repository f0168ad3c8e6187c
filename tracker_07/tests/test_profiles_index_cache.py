"""The parsed index kept on disk: used by a new process, ignored when it no longer fits."""
import marshal
import os
import shutil
from unittest import mock

from tracker_07.profiles import index, index_cache, listing
from tracker_07.tests import profile_fixtures as fx

CACHE_PATCH = mock.patch.object(index_cache, "MIN_LINES", 3)


class IndexCacheTest(fx.TempFolderTestCase):
    """A read of many lines leaves a cache that the next process reads instead of the lines."""

    def setUp(self):
        """Index four profiles and read the index once, as a first listing does."""
        super().setUp()
        delay = mock.patch.object(index_cache, "WRITE_DELAY_SECONDS", 0)
        delay.start()
        self.addCleanup(delay.stop)
        index.forget_snapshots()
        self.addCleanup(index.forget_snapshots)
        self.ids = [fx.write_profile(self.folder, start=1_700_000_000.0 + n) for n in range(4)]
        self.index_path = os.path.join(self.folder, index.INDEX_NAME)
        self.cache_path = os.path.join(self.folder, index_cache.CACHE_DIR,
                                       index_cache.CACHE_NAME)
        with CACHE_PATCH:
            self.first = index.indexed_records(self.folder)
        index_cache.wait_for_writes()

    def new_process_read(self):
        """Read the index as a new process would; return the record ids and the lines parsed."""
        index.forget_snapshots()
        with mock.patch.object(index, "parse_index_lines", wraps=index.parse_index_lines) as parse:
            records = index.indexed_records(self.folder)
        index_cache.wait_for_writes()
        return [record["id"] for record in records], len(parse.call_args.args[0])

    def test_a_new_process_parses_only_the_lines_after_the_cache(self):
        """The cached records come back equal, and only a newer line is parsed."""
        self.assertTrue(os.path.isfile(self.cache_path))
        self.assertEqual(self.new_process_read(), (self.ids, 0))
        self.assertEqual(index.indexed_records(self.folder), self.first)
        fifth = fx.write_profile(self.folder, start=1_700_000_004.0)
        self.assertEqual(self.new_process_read(), (self.ids + [fifth], 1))

    def test_a_cache_is_not_a_profile_and_leaves_the_folder_as_it_was(self):
        """The cache is not listed, and a new one leaves the folder's modification time alone
        (a changed folder makes the kept listing scan it again)."""
        before = os.stat(self.folder).st_mtime_ns
        with CACHE_PATCH:
            self.new_process_read()
            os.remove(self.cache_path)
            self.new_process_read()
        self.assertTrue(os.path.isfile(self.cache_path))
        self.assertEqual(os.stat(self.folder).st_mtime_ns, before)
        listing.clear_listing_cache()
        page = listing.list_profiles(self.folder)
        self.assertEqual(sorted(item["id"] for item in page.items), sorted(self.ids))

    def test_a_rewritten_index_is_read_whole(self):
        """After a prune's rewrite (a new file) the cache no longer fits."""
        os.remove(os.path.join(self.folder, self.ids[0]))
        index.rewrite_index(self.folder)
        self.assertEqual(self.new_process_read(), (self.ids[1:], 3))

    def test_an_index_edited_in_place_is_read_whole(self):
        """A changed last line (same file, same size) is found by the cache's tail bytes."""
        with open(self.index_path, "rb") as file:
            content = file.read()
        edited = content.replace(b'"GET"', b'"PUT"')
        self.assertEqual(len(edited), len(content))
        with open(self.index_path, "r+b") as file:
            file.write(edited)
        index.forget_snapshots()
        methods = {record["method"] for record in index.indexed_records(self.folder)}
        self.assertEqual(methods, {"PUT"})

    def test_a_damaged_or_foreign_cache_is_ignored(self):
        """Garbage, another version, or records of the wrong form: the index is parsed."""
        inode = os.stat(self.index_path).st_ino
        size = os.path.getsize(self.index_path)
        for content in (b"garbage", marshal.dumps([1, 2]),
                        marshal.dumps((0, inode, size, b"", b"", [])),
                        marshal.dumps((1, inode, size, b"", b"", ["x"])),
                        marshal.dumps((1, inode, size, b"", b"", [{"no": "id"}])),
                        marshal.dumps((1, inode, size, b"", b"", [{"id": 7}])),
                        marshal.dumps((1, inode, size, "", b"", [])),
                        marshal.dumps((1, inode + 1, size, b"", b"", [])),
                        marshal.dumps((1, inode, size + 1, b"", b"", []))):
            with self.subTest(content=content[:20]):
                with open(self.cache_path, "wb") as cache:
                    cache.write(content)
                self.assertEqual(self.new_process_read(), (self.ids, 4))

    def test_a_folder_removed_before_the_write_is_not_made_again(self):
        """The cache is written a little later; a profile folder gone by then stays gone."""
        with CACHE_PATCH, mock.patch.object(index_cache, "WRITE_DELAY_SECONDS", 0.2):
            index.forget_snapshots()
            index.indexed_records(self.folder)
            shutil.rmtree(self.folder)
            index_cache.wait_for_writes()
        self.assertFalse(os.path.exists(self.folder))

    def test_small_reads_leave_no_cache(self):
        """A read of fewer lines than MIN_LINES writes nothing."""
        os.remove(self.cache_path)
        self.assertEqual(self.new_process_read(), (self.ids, 4))
        self.assertFalse(os.path.exists(self.cache_path))

    def test_a_cache_that_cannot_be_written_is_skipped(self):
        """No room for a temporary file, or a failed replace: no cache and no temporary file."""
        os.remove(self.cache_path)
        with CACHE_PATCH, mock.patch.object(index_cache.tempfile, "mkstemp",
                                            side_effect=PermissionError("read-only")):
            self.assertEqual(self.new_process_read(), (self.ids, 4))
        with CACHE_PATCH, mock.patch.object(index_cache.os, "replace",
                                            side_effect=OSError("full")):
            self.assertEqual(self.new_process_read(), (self.ids, 4))
        self.assertEqual(os.listdir(os.path.dirname(self.cache_path)), [])
