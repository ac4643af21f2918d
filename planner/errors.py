"""Errors a user can cause (bad file, bad number, infeasible budget).

The CLI prints a `FerretError` as one line and exits non-zero; anything else is a bug and is
allowed to raise with a traceback.
"""


class FerretError(Exception):
    """A user-facing error whose message is complete on its own (names the file or field)."""


class ValidationError(FerretError, ValueError):
    """A profile, plan or configuration that violates its contract."""
