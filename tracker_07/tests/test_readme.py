"""What the README tells a newcomer to type works as it says."""
import os
import pstats
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from tracker_07 import create_app

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def readme_line(prefix):
    """The first line of the README that starts with ``prefix``."""
    with open(README, encoding="utf-8") as readme:
        for line in readme:
            if line.startswith(prefix):
                return line.split("#", 1)[0].strip()
    raise AssertionError(f"the README has no line starting with {prefix!r}")


class SnakevizExampleTestCase(unittest.TestCase):
    """The line that picks a profile for snakeviz picks one file when several match."""

    def test_the_newest_of_several_matching_profiles_is_picked(self):
        folder = tempfile.mkdtemp(prefix="tracker-readme-")
        self.addCleanup(shutil.rmtree, folder, True)
        saved = os.path.join(folder, "instance", "profiles")
        app = create_app("profile", TRACKER_ENABLED=False, PROFILER_PRINT=False,
                         PROFILER_DIR=saved)
        for _ in range(2):
            app.test_client().get("/words/slow").close()
            time.sleep(0.02)  # distinct modification times
        names = sorted(os.listdir(saved), key=lambda name: os.path.getmtime(
            os.path.join(saved, name)))
        slow = [name for name in names if re.match(r"GET\.words\.slow\..*\.prof$", name)]
        self.assertEqual(len(slow), 2)
        script = readme_line("latest=$(") + '\nprintf %s "$latest"'
        picked = subprocess.run(["bash", "-c", script], cwd=folder, check=True,
                                capture_output=True, text=True).stdout
        self.assertEqual(os.path.basename(picked), slow[-1])
        self.assertGreater(pstats.Stats(os.path.join(folder, picked)).total_calls, 0)


if __name__ == "__main__":
    unittest.main()
