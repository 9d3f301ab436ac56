"""Exceptions raised inside the evaluator service.

Inside the service, components raise; `evaluate` turns everything into an `Outcome` at its
boundary (a crash, an overrun or a harness failure is a status, never an exception).

    EvaluatorError
    ├── IsolationUnavailableError   (no bubblewrap / user namespaces, and no explicit opt-out)
    ├── SandboxError                (the sandbox could not be set up or verified)
    ├── TaskConfigError             (a task's run plan or limits cannot be executed)
    ├── CalibrationError            (no calibration run produced a score)
    └── BackendError
        ├── JobNotFoundError
        └── SlotRequestError        (a request for more slots or GPUs than the pool has)
"""

from __future__ import annotations


class EvaluatorError(Exception):
    """Base of every evaluator error."""


class IsolationUnavailableError(EvaluatorError):
    """Sandboxing is missing; the message says how to fix it or how to opt out."""


class SandboxError(EvaluatorError):
    pass


class TaskConfigError(EvaluatorError):
    pass


class CalibrationError(EvaluatorError):
    pass


class BackendError(EvaluatorError):
    pass


class JobNotFoundError(BackendError):
    pass


class SlotRequestError(BackendError):
    pass
