"""Tracker's unittest suites: run with ``python -m unittest discover tracker_07/tests``."""
