"""Run Werkzeug's profiler tests in a temporary folder: ours creates ``profile_dir`` ("profiles")."""
import pytest


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
