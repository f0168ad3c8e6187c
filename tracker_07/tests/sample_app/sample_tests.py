"""The sample app's own test suite, with Flask's test client.

Not named ``test*.py``: it runs through :mod:`tracker_07.tests.test_sample_app` (and again with
Tracker attached), not on its own during discovery. ``suite(extensions)`` builds it against
apps made with ``create_app(..., extensions=extensions)``.
"""
import unittest

from tracker_07.tests.sample_app import create_app


class SampleAppTest(unittest.TestCase):
    """Each test gets a new app (and a new notes list)."""

    #: Passed to ``create_app``: each is called with the app, e.g. to attach Tracker.
    extensions = ()

    def setUp(self):
        # PROPAGATE_EXCEPTIONS off: /boom answers 500 as in production instead of raising.
        self.app = create_app({"TESTING": True, "PROPAGATE_EXCEPTIONS": False},
                              extensions=self.extensions)
        self.client = self.app.test_client()

    def add(self, text):
        """Post the form and return the response."""
        return self.client.post("/notes", data={"text": text})

    def test_index_says_there_are_no_notes_yet(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertIn(b"No notes yet", response.data)

    def test_posting_the_form_redirects_to_the_new_note(self):
        response = self.add("buy milk")
        self.assertEqual(response.status_code, 303)
        self.assertEqual(response.headers["Location"], "/notes/1")

    def test_a_note_is_json(self):
        self.add("buy milk")
        self.add("call Ada")
        response = self.client.get("/notes/2")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.get_json(), {"id": 2, "text": "call Ada"})

    def test_index_lists_notes_escaped(self):
        self.add("<b>bold</b>")
        page = self.client.get("/").get_data(as_text=True)
        self.assertIn("&lt;b&gt;bold&lt;/b&gt;", page)
        self.assertNotIn("No notes yet", page)

    def test_empty_note_is_a_bad_request(self):
        self.assertEqual(self.add("   ").status_code, 400)
        self.assertEqual(self.app.extensions["sample_notes"], [])

    def test_unknown_note_is_not_found(self):
        self.assertEqual(self.client.get("/notes/1").status_code, 404)
        self.assertEqual(self.client.get("/notes/zero").status_code, 404)

    def test_bug_is_a_server_error(self):
        self.assertEqual(self.client.get("/boom").status_code, 500)

    def test_wrong_method_is_refused(self):
        self.assertEqual(self.client.delete("/notes").status_code, 405)


def suite(extensions=()):
    """Return the sample tests, run against apps built with ``extensions``."""
    case = type("SampleAppTest", (SampleAppTest,), {"extensions": tuple(extensions)})
    return unittest.defaultTestLoader.loadTestsFromTestCase(case)


if __name__ == "__main__":
    unittest.main()
