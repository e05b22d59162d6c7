"""Errors shown to the user as one line (exit status 2): cheap to import anywhere."""

from __future__ import annotations


class RecordingError(Exception):
    """A recording file that cannot be used; the message is shown as it is."""
