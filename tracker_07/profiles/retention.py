"""Keep the profile folder within a number of files and an age, off the request thread."""
import logging
import threading

from . import listing
from .errors import ProfileError

logger = logging.getLogger(__name__)


class FolderRetention:
    """Prune the folder at start-up and after every ``every`` saved profiles.

    :param folder: the profile folder.
    :param max_files: keep at most this many profiles, newest first (0: no limit).
    :param days: remove profiles older than this many days (0: keep them).
    :param every: how many saved profiles between two prunes.
    """

    def __init__(self, folder, max_files=0, days=0, every=50):
        self.folder = folder
        self.max_files = max_files
        self.days = days
        self.every = every
        self._saved = 0
        self._running = threading.Lock()
        self.removed = 0

    def note_saved(self):
        """Count one saved profile; every ``every`` of them, prune in a background thread.

        :return: the thread that prunes, or None.
        """
        self._saved += 1
        if self._saved % self.every:
            return None
        thread = threading.Thread(target=self.apply, name="tracker-profile-retention",
                                  daemon=True)
        thread.start()
        return thread

    def apply(self):
        """Prune now unless a prune is already running; never raise (requests must not care)."""
        if not self._running.acquire(blocking=False):  # pylint: disable=consider-using-with
            return []
        limits = {"keep": self.max_files or None, "older_than_days": self.days or None}
        try:
            removed = listing.prune(self.folder, dry_run=True, **limits)
            if removed:  # rewriting the index only when something goes keeps it cheap
                removed = listing.prune(self.folder, **limits)
        except (OSError, ProfileError) as error:
            logger.warning("Could not prune old profiles in %s: %s", self.folder, error)
            return []
        finally:
            self._running.release()
        self.removed += len(removed)
        if removed:
            logger.info("Removed %d old profile(s) from %s", len(removed), self.folder)
        return removed
