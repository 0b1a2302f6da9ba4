"""Errors of the CWL support: an unsupported feature (exit 33) or a permanent failure."""

from __future__ import annotations

UNSUPPORTED_EXIT = 33


class CwlError(Exception):
    """The document, the job or a step's run breaks the CWL spec (a permanent failure)."""


class Unsupported(CwlError):
    """A feature this implementation does not support (cwl-runner exit 33)."""
