"""A revision of this repository checked out beside the working tree, for before/after runs."""
import contextlib
import os
import subprocess
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def checkout(revision):
    """``revision`` in a temporary git worktree (removed afterwards); yields its folder."""
    folder = tempfile.mkdtemp(prefix="bench-baseline-")
    subprocess.run(["git", "-C", REPO_ROOT, "worktree", "add", "--detach", folder, revision],
                   check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", REPO_ROOT, "worktree", "remove", "--force", folder],
                       check=False, capture_output=True)
