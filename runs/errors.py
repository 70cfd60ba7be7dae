"""The one exception the CLI turns into a single error line and exit code 2."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad user input (recipe, override, name, path): the message names the bad value and the valid choices."""


class SweepError(RuntimeError):
    """Some cells of a sweep failed; every other cell's row is on disk and a re-run retries only the failed ones."""
