"""Which line of the app's own code ran a query: the first frame that is neither Tracker's,
a library's (SQLAlchemy, Flask, Jinja, anything installed) nor the standard library's.

A frame of a Jinja template (a query run while rendering) is reported at the template's
own line.  Each file is classified once; a query then costs a walk up the stack of a
few dictionary look-ups.
"""
import os
import sys
import sysconfig

#: Tracker's package folder; its demo app and tests are app code, the rest is Tracker's.
TRACKER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
APP_FOLDERS_IN_TRACKER = tuple(TRACKER_ROOT + name + os.sep for name in ("main", "tests"))


def library_roots():
    """Folders whose files are never the app's: the standard library and installed packages."""
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(os.path.realpath(path) + os.sep)
            roots.add(os.path.abspath(path) + os.sep)
    for path in sys.path:
        if path.endswith(("site-packages", "dist-packages")):
            roots.add(os.path.abspath(path) + os.sep)
    return tuple(sorted(roots))


LIBRARY_ROOTS = library_roots()
_is_app_file = {}


def is_app_file(filename):
    """Tell whether ``filename`` (a code object's) is the app's own code (cached per file)."""
    known = _is_app_file.get(filename)
    if known is None:
        known = _is_app_file[filename] = _classify(filename)
    return known


def _classify(filename):
    """Decide, once per file, whether it is app code."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if path.startswith(TRACKER_ROOT):
        return path.startswith(APP_FOLDERS_IN_TRACKER)
    return not path.startswith(LIBRARY_ROOTS)


def find_site(frame=None):
    """Return ``(file, line, function)`` of the first app frame above ``frame``, or None.

    :param frame: where to start; by default the caller's frame.
    """
    if frame is None:
        frame = sys._getframe(1)  # pylint: disable=protected-access  # the cheapest stack walk
    known = _is_app_file
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        app = known.get(filename)
        if app is None:
            app = is_app_file(filename)
        if app:
            return filename, _line_of(frame), code.co_name
        frame = frame.f_back
    return None


def _line_of(frame):
    """The frame's line; for a compiled Jinja template, the template's own line."""
    template = frame.f_globals.get("__jinja_template__")
    if template is not None:
        return template.get_corresponding_lineno(frame.f_lineno)
    return frame.f_lineno


def display_file(filename, base=None):
    """``filename`` relative to ``base`` (the current folder) when it lies inside it."""
    base = os.path.abspath(base or os.getcwd()) + os.sep
    return filename[len(base):] if filename.startswith(base) else filename
