"""The types every tool module shares, apart from the registry so that helper modules can use them without
importing the registry (which imports every tool module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from target_models.common.errors import UsageError

MAX_OUTPUT_CHARS = 6000


class ToolError(UsageError):
    """Raised inside a tool for a problem the caller can fix; the message goes back to the agent verbatim (as does
    any UsageError a lower layer raises)."""


@dataclass
class ToolContext:
    """What tools may see: the target, the datasets an auditor may search, the run folder (memory), the SAE.
    Never the spec, the ground truth or the provenance file."""

    target: Any
    datasets: dict[str, Path] = field(default_factory=dict)
    run_dir: Path | None = None
    sae: Any = None
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    name: str
    output: str
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def text(self) -> str:
        return f"ERROR: {self.error}" if self.error else self.output
