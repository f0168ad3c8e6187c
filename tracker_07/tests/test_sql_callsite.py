"""The call-site finder (tracker_07/sql/callsite.py): the first frame of the app's own code,
never Tracker's, a library's or the standard library's."""
import json
import os
import sys
import tempfile
import threading
import unittest

import flask
import sqlalchemy
from jinja2 import Environment, FileSystemLoader

from tracker_07.sql import callsite
from tracker_07.sql import capture as tracker_module


class ClassifyTest(unittest.TestCase):
    """Which files are app code."""

    def test_libraries_trackers_own_code_and_pseudo_files_are_not_the_app(self):
        for filename in (sqlalchemy.__file__, flask.__file__, json.__file__,
                         tracker_module.__file__, "<frozen importlib._bootstrap>", "<string>",
                         ""):
            with self.subTest(filename=filename):
                self.assertFalse(callsite.is_app_file(filename))

    def test_the_demo_the_tests_and_other_folders_are_the_app(self):
        demo = os.path.join(callsite.TRACKER_ROOT, "main", "views.py")
        for filename in (demo, __file__, "/srv/myapp/views.py", "relative/app.py"):
            with self.subTest(filename=filename):
                self.assertTrue(callsite.is_app_file(filename))

    def test_library_roots_include_site_packages_and_the_standard_library(self):
        roots = callsite.library_roots()
        self.assertTrue(any(sqlalchemy.__file__.startswith(root) for root in roots))
        self.assertTrue(any(os.path.abspath(json.__file__).startswith(root) for root in roots))


def run_in_a_library(function):
    """Call ``function`` from a frame whose file looks like an installed library's."""
    scope = {"function": function}
    code = compile("def library_call():\n    return function()\n",
                   os.path.join(callsite.LIBRARY_ROOTS[0], "fake_library.py"), "exec")
    exec(code, scope)  # pylint: disable=exec-used  # a frame with a library's file name
    return scope["library_call"]()


class FindSiteTest(unittest.TestCase):
    """The walk up the stack."""

    def test_the_first_app_frame_above_library_frames(self):
        site = run_in_a_library(callsite.find_site)  # the library frame is skipped
        line = run_in_a_library.__code__.co_firstlineno + 6  # its ``return`` line
        self.assertEqual(site, (__file__, line, "run_in_a_library"))

    def test_a_stack_without_app_code_has_no_site(self):
        found = []
        scope = {"find_site": callsite.find_site, "found": found}
        code = compile("def only_library():\n    found.append(find_site())\n",
                       os.path.join(callsite.LIBRARY_ROOTS[0], "other_library.py"), "exec")
        exec(code, scope)  # pylint: disable=exec-used  # a frame with a library's file name
        thread = threading.Thread(target=scope["only_library"])  # threading.py, then it
        thread.start()
        thread.join()
        self.assertEqual(found, [None])

    def test_a_template_frame_reports_the_templates_line(self):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "page.html"), "w", encoding="utf-8") as page:
                page.write("line one\n{{ probe() }}\n")
            template = Environment(loader=FileSystemLoader(folder)).get_template("page.html")
            found = []
            template.render(probe=lambda: found.append(callsite.find_site(
                sys._getframe(1))) or "")  # pylint: disable=protected-access  # the template's frame
        self.assertEqual(found[0][0], os.path.join(folder, "page.html"))
        self.assertEqual(found[0][1], 2)

    def test_display_file_is_relative_to_the_base_folder(self):
        self.assertEqual(callsite.display_file("/srv/app/views.py", "/srv"), "app/views.py")
        self.assertEqual(callsite.display_file("/elsewhere/views.py", "/srv"),
                         "/elsewhere/views.py")
