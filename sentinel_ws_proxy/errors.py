"""Errors shown to the user as one line (exit status 2): cheap to import anywhere."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, or a file or peer that cannot be used: the message is one line for the
    user, and the command line prints it as `sentinel-ws: error: ...` with exit status 2,
    never a traceback. The library raises it; only the command line catches it."""


class RecordingError(UserError):
    """A recording file that cannot be used; the message is shown as it is."""
