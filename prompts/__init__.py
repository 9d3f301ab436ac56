"""Prompt templates for the agents of a search, and their renderer."""

from prompts.render import ARMS, render_brief, render_session_start

__all__ = ["ARMS", "render_brief", "render_session_start"]
