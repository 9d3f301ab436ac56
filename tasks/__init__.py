"""Task environments: the contract (tasks.base), the registry, and one folder per task."""

from tasks.base import Task
from tasks.exceptions import DataIntegrityError, TaskError, UnknownTaskError
from tasks.registry import TASKS, describe_task, get_task, list_tasks

__all__ = [
    "TASKS",
    "DataIntegrityError",
    "Task",
    "TaskError",
    "UnknownTaskError",
    "describe_task",
    "get_task",
    "list_tasks",
]
