"""Errors raised by the tasks package.

    TaskError
     ├── UnknownTaskError     get_task() got a name that is neither registered nor "module:ATTR"
     └── DataIntegrityError   shipped or prepared task data does not match its recorded checksum
"""

from __future__ import annotations


class TaskError(Exception):
    """Base class of every error this package raises."""


class UnknownTaskError(TaskError, LookupError):
    """No task by that name; the message lists the known ones."""


class DataIntegrityError(TaskError):
    """A data file's sha256 differs from the one the task records."""
