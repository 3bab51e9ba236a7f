"""The types every tool module shares, apart from the registry so that helper modules can use them without
importing the registry (which imports every tool module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from target_models.common.errors import UsageError

if TYPE_CHECKING:
    from target_models.interp.bundle import LazySAEBundle, SAEBundle
    from target_models.targets.protocol import Target

MAX_OUTPUT_CHARS = 6000


class ToolError(UsageError):
    """Raised inside a tool for a problem the caller can fix; the message goes back to the agent verbatim (as does
    any UsageError a lower layer raises)."""


# What a tool can need from its context. Each tool declares its needs where it is defined (`@tool(..., needs=...)`);
# `tools.context` derives a toolset's needs from them and loads only that.
Need = Literal["target", "internals", "datasets", "sae"]
NEEDS: tuple[Need, ...] = ("target", "internals", "datasets", "sae")


@dataclass
class ToolContext:
    """What tools may see: the target, the datasets an auditor may search, the run folder (memory), the SAE.
    Never the spec, the ground truth or the provenance file."""

    target: Target | None = None
    datasets: Mapping[str, Path] = field(default_factory=dict)
    run_dir: Path | None = None
    sae: SAEBundle | LazySAEBundle | None = None
    seed: int = 0
    # Sampling calls made so far: tools.chat.next_seed derives each call's seed from the run's seed and this count.
    # The agent loop records it with every tool result, and resume, re-execution and forks restore it.
    sample_calls: int = 0
    cache: dict[str, Any] = field(default_factory=dict)

    def has(self, need: Need) -> bool:
        """Whether this context can serve a tool that needs `need`."""
        if need == "target":
            return self.target is not None
        if need == "internals":
            return bool(getattr(self.target, "has_internals", False))
        if need == "datasets":
            return bool(self.datasets)
        return self.sae is not None


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
