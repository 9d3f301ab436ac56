"""The search application the MCP servers serve: plain, synchronous code (no MCP).

The runtime of an opened search, its creation and calibration, workspaces, the submission
pipeline, trees and views, evaluation jobs, and the evaluator worker of a serve process.
Modules import one way (no cycles, checked by tests/test_layout.py): the runtime is handed to
the views and the pipeline; the runtime hands its parts (store, backend, task) down.
"""
