"""Errors raised by the tasks package.

    TaskError
     ├── UnknownTaskError       get_task() got a name that is neither registered nor "module:ATTR"
     ├── TaskSettingsError      a search recorded calibrated settings its task cannot take
     ├── DataIntegrityError     shipped or prepared task data does not match its recorded checksum
     │    └── ChecksumError     a downloaded source's bytes differ from the plan's checksum
     └── PrepareError           preparing a task on this machine failed, or has not been done
          ├── NotPreparedError  the task must be prepared first (the message gives the command)
          ├── DiskSpaceError    not enough free disk for the download and build (nothing fetched)
          ├── DownloadError     a source could not be fetched (partial bytes kept for a resume)
          └── BuildError        the plan's build step failed (verified sources kept for a retry)
"""

from __future__ import annotations


class TaskError(Exception):
    """Base class of every error this package raises."""


class UnknownTaskError(TaskError, LookupError):
    """No task by that name; the message lists the known ones."""


class TaskSettingsError(TaskError):
    """A search recorded settings from calibration (`SearchConfig.calibrated_env`) that its task cannot take."""


class DataIntegrityError(TaskError):
    """A data file's sha256 differs from the one the task records."""


class ChecksumError(DataIntegrityError):
    """A downloaded file's checksum differs from the plan's; the message names both."""


class PrepareError(TaskError):
    """Preparing a task on this machine failed, or is still to be done."""


class NotPreparedError(PrepareError):
    """The task is not prepared; the message says the exact command and the disk it needs."""


class DiskSpaceError(PrepareError):
    """Too little free disk where the task would be prepared; nothing was downloaded."""


class DownloadError(PrepareError):
    """A source could not be fetched; running the same command again resumes it."""


class BuildError(PrepareError):
    """The plan's build step failed; the verified sources stay, and the next prepare retries it."""
