"""Errors the CLI reports as one clear line and a non-zero exit, never a traceback."""


class UserError(Exception):
    """Something the operator can fix: a bad path, a bad value, a missing stack or endpoint."""
