"""A tiny test task: trials take well under a second, so loops can be tested end to end."""
