"""MCP servers of a search: blackboard, snapshot, submission and evaluator, alone or as one suite."""

from servers.app.runtime import SearchRuntime
from servers.app.init import Baseline, InitResult, init_search, roster_names
from servers.suite import SERVERS, SPECIALIST_SERVERS, build_server, build_suite

__all__ = [
    "SERVERS",
    "SPECIALIST_SERVERS",
    "Baseline",
    "InitResult",
    "SearchRuntime",
    "build_server",
    "build_suite",
    "init_search",
    "roster_names",
]
