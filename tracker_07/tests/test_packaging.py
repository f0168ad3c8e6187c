"""Tracker as an installed package: build the wheel, install it in a fresh venv, use it elsewhere.

Offline: the wheel is built with ``--no-build-isolation`` (setuptools is pinned in
requirements.txt) and installed with ``--no-index --no-deps``; Flask and the other runtime
dependencies come from this interpreter's site-packages through a ``.pth`` file, which is
processed after the new venv's own site-packages, so ``tracker_07`` resolves to the wheel.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import unittest
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: A developer's own one-file app, the way the README tells them to add Tracker.
TINY_APP = '''\
"""A developer's app with Tracker added in one line."""
import os

from flask import Flask

from tracker_07 import Tracker

HERE = os.path.dirname(os.path.abspath(__file__))
app = Flask(__name__)
app.config["TRACKER_DATABASE_URL"] = "sqlite:///" + os.path.join(HERE, "tracker.sqlite3")
app.route("/")(lambda: "Hello from a tiny app")
tracker = Tracker(app)
'''

#: Run by the new venv's python in a folder outside the repository; prints what it saw as JSON.
CHECK = '''\
import json
import sys

import tracker_07
from app import app, tracker

client = app.test_client()
pages = {url: client.get(url) for url in
         ("/", "/dashboard/", "/dashboard/static/dashboard.css")}
tracker.flush()
print(json.dumps({
    "tracker_07": tracker_07.__file__,
    "sys_path": sys.path,
    "status": {url: response.status_code for url, response in pages.items()},
    "dashboard": pages["/dashboard/"].get_data(as_text=True),
    "css": pages["/dashboard/static/dashboard.css"].get_data(as_text=True),
}))
'''


def run(command, cwd, env=None):
    """Run a command and return its stdout; a failure shows the command's whole output."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{command} exited with {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result.stdout


def copy_sources(target):
    """Copy what the wheel is built from, so the build's own folders stay out of the repo."""
    shutil.copy(os.path.join(REPO_ROOT, "pyproject.toml"), target)
    shutil.copy(os.path.join(REPO_ROOT, "README.md"), target)
    shutil.copytree(os.path.join(REPO_ROOT, "tracker_07"), os.path.join(target, "tracker_07"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".venv*", "*.so"))


class InstalledPackageTest(unittest.TestCase):
    """One wheel build and venv for the class: about ten seconds."""

    @classmethod
    def setUpClass(cls):
        """Build the wheel, make a venv that sees only it and this venv's dependencies."""
        cls.tmp = tempfile.mkdtemp(prefix="tracker-packaging-")
        source, wheels, cls.venv = (os.path.join(cls.tmp, name)
                                    for name in ("source", "wheels", "venv"))
        cls.elsewhere = os.path.join(cls.tmp, "elsewhere")
        os.makedirs(source)
        os.makedirs(cls.elsewhere)
        copy_sources(source)
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--no-index", "-q", "-w", wheels, source], cwd=cls.tmp)
        (wheel,) = os.listdir(wheels)
        cls.wheel = os.path.join(wheels, wheel)
        run([sys.executable, "-m", "venv", "--without-pip", cls.venv], cwd=cls.tmp)
        cls.python = os.path.join(cls.venv, "bin", "python")
        run([sys.executable, "-m", "pip", "--python", cls.python, "install", "--no-index",
             "--no-deps", "-q", cls.wheel], cwd=cls.tmp)
        site_packages = run([cls.python, "-c", "import sysconfig; print(sysconfig.get_path("
                             "'purelib'))"], cwd=cls.tmp).strip()
        with open(os.path.join(site_packages, "zz-test-dependencies.pth"), "w",
                  encoding="utf-8") as pth:
            pth.write(sysconfig.get_path("purelib") + "\n")
        with open(os.path.join(cls.elsewhere, "app.py"), "w", encoding="utf-8") as file:
            file.write(TINY_APP)
        cls.env = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTHON", "FLASK_", "TRACKER_"))}
        cls.env["PYTHONDONTWRITEBYTECODE"] = "1"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def in_venv(self, *args):
        """Run the new venv's python in a folder outside the repository."""
        return run([self.python, *args], cwd=self.elsewhere, env=self.env)

    def test_wheel_carries_templates_and_static_files_but_not_the_tests(self):
        with zipfile.ZipFile(self.wheel) as wheel:
            names = set(wheel.namelist())
        for name in ("tracker_07/__init__.py", "tracker_07/static/demo.css",
                     "tracker_07/static/landscape.png", "tracker_07/dashboard/static/dashboard.css",
                     "tracker_07/dashboard/templates/dashboard/profile.html",
                     "tracker_07/main/templates/main/index.html"):
            self.assertIn(name, names)
        self.assertFalse([name for name in names if name.startswith("tracker_07/tests/")])
        # The sampling engine's C tick, the list's reader, the tracking writer's rows.
        for module in ("profiles/_tick", "profiles/_listing", "tracking/_rows"):
            compiled = [name for name in names if name.startswith(f"tracker_07/{module}.")
                        and name.endswith(".so")]
            self.assertEqual(len(compiled), 1, names)

    def test_installed_package_serves_its_pages_outside_the_repository(self):
        seen = json.loads(self.in_venv("-c", CHECK))
        self.assertTrue(seen["tracker_07"].startswith(self.venv + os.sep), seen["tracker_07"])
        self.assertNotIn(REPO_ROOT, seen["sys_path"])
        self.assertEqual(set(seen["status"].values()), {200}, seen["status"])
        self.assertIn('id="endpoint-filters"', seen["dashboard"])  # endpoints.html in base.html
        self.assertIn("</html>", seen["dashboard"])
        with open(os.path.join(REPO_ROOT, "tracker_07", "dashboard", "static", "dashboard.css"),
                  encoding="utf-8") as css:
            self.assertEqual(seen["css"], css.read())

    def test_flask_command_lists_the_tracker_groups(self):
        commands = self.in_venv("-m", "flask", "--app", "app", "--help")
        listed = [line.split()[0] for line in commands.split("Commands:", 1)[1].splitlines()
                  if line.strip()]
        self.assertIn("profiles", listed)
        self.assertIn("tracker", listed)


if __name__ == "__main__":
    unittest.main()
