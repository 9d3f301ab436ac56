"""Exceptions raised by the servers package (outside the MCP edge).

    ServerError
    ├── IdentityError          (no caller identity, or a name not in the search's roster)
    ├── HiddenError            (the search's arm hides this: lineage off)
    ├── RequestError           (an argument the rules refuse: a bad hypothesis, an unknown name, a
    │                           rebase target that is not kept, a job that is not yours)
    └── WorkspaceError         (an agent's mistake on its workspace; the message says what to do)
        ├── WorkspacePathError (absolute, '..', symlink escape, not editable, not found)
        ├── WorkspaceLimitError(a file, the workspace or a read over its stated limit)
        └── EditError          (old text absent or ambiguous, or no change)

Every message is written for the agent: it names the limit or the mistake and the next step.
Tools turn these into `fastmcp.exceptions.ToolError` (see `servers/_edge.py`).
"""


class ServerError(Exception):
    """Base of every servers error."""


class IdentityError(ServerError):
    pass


class HiddenError(ServerError):
    pass


class RequestError(ServerError):
    pass


class WorkspaceError(ServerError):
    pass


class WorkspacePathError(WorkspaceError):
    pass


class WorkspaceLimitError(WorkspaceError):
    pass


class EditError(WorkspaceError):
    pass
