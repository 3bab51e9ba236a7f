"""The one error type for a problem the caller can fix. Its message is written for whoever called: a person at the
shell, or an auditor reading a tool's result verbatim (the tool registry passes it through unchanged)."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input the caller can correct (an unknown dataset, an empty prompt, a missing optional package)."""
