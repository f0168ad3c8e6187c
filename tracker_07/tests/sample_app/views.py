"""The notes blueprint: a page, a form, a JSON view with a URL variable, and a bug."""
from flask import (Blueprint, abort, current_app, jsonify, redirect, render_template_string,
                   request, url_for)

bp = Blueprint("notes", __name__)

PAGE = """<!doctype html>
<title>Notes</title>
<form method="post" action="{{ url_for('notes.add') }}">
  <input name="text"> <button>Add</button>
</form>
<ul>{% for note in notes %}<li>{{ note }}</li>{% else %}<li>No notes yet</li>{% endfor %}</ul>
"""


def notes():
    """Return this app's notes (kept in memory: each app has its own list)."""
    return current_app.extensions["sample_notes"]


@bp.route("/")
def index():
    """List the notes under a form that adds one."""
    return render_template_string(PAGE, notes=notes())


@bp.route("/notes", methods=["POST"])
def add():
    """Add the form's note and show it; an empty note is a 400."""
    text = request.form.get("text", "").strip()
    if not text:
        abort(400, "a note needs some text")
    notes().append(text)
    return redirect(url_for("notes.note", note_id=len(notes())), code=303)


@bp.route("/notes/<int:note_id>")
def note(note_id):
    """Return one note as JSON; 404 for an id that was never given out."""
    if not 1 <= note_id <= len(notes()):
        abort(404)
    return jsonify(id=note_id, text=notes()[note_id - 1])


@bp.route("/boom")
def boom():
    """Fail the way real code does, for the 500 path."""
    raise RuntimeError("the sample app's deliberate bug")
