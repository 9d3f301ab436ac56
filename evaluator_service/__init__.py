"""The evaluator: runs trials in isolation, times them from outside, scores and labels them."""

from evaluator_service.base import Backend, JobInfo, get_backend
from evaluator_service.calibrate import Calibration, calibrate_into, calibrate_on
from evaluator_service.evaluate import evaluate, prepare_data
from evaluator_service.exceptions import (
    BackendError,
    CalibrationError,
    EvaluatorError,
    IsolationUnavailableError,
    JobNotFoundError,
    SandboxError,
    SlotRequestError,
    TaskConfigError,
)
from evaluator_service.models import OUTCOME_STATUSES, Outcome, TrialSpec
from evaluator_service.sandbox import PhaseRun, RunSpec, Sandbox, SandboxConfig
from evaluator_service.slots import Lease, SlotPool

__all__ = [
    "OUTCOME_STATUSES",
    "Backend",
    "BackendError",
    "Calibration",
    "CalibrationError",
    "EvaluatorError",
    "IsolationUnavailableError",
    "JobInfo",
    "JobNotFoundError",
    "Lease",
    "Outcome",
    "PhaseRun",
    "RunSpec",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SlotPool",
    "SlotRequestError",
    "TaskConfigError",
    "TrialSpec",
    "calibrate_into",
    "calibrate_on",
    "evaluate",
    "get_backend",
    "prepare_data",
]
