"""The errors a saved profile or the profile folder can raise, shared by every reader of them.

Their messages name profile ids and never server paths, since the dashboard shows them.
"""


class ProfileError(Exception):
    """Base class of the errors a saved profile can raise."""


class ProfileNotFound(ProfileError):
    """The id is not a safe profile name, or no such file is directly in the folder."""


class CorruptProfile(ProfileError):
    """The file exists but is not readable pstats data."""


class NotAFolder(ProfileError):
    """PROFILER_DIR names a file (or a path through one), so no profile can be listed."""

    def __init__(self, folder):
        super().__init__("PROFILER_DIR is not a folder: point it to a folder, "
                         "or move the file that has its name.")
        #: The configured folder, for messages only the server's operator sees (the CLI).
        self.folder = folder


class MixedEngines(CorruptProfile):
    """Profiles of both engines asked to be merged: cProfile's call totals and sampled
    wall-time stacks measure different things, so they are not added up."""
