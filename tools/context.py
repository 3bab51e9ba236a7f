"""The ToolContext of an audit or a shell call: load only what the chosen tools need, which each tool declares.

A grep from the shell must not wait for model weights; an audit with `chat` alone must not regenerate datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from target_models.interp.bundle import LazySAEBundle, SAEBundle
from target_models.loading.references import datasets_for, load_target, organism_of
from target_models.targets.protocol import Target
from tools.base import Need, ToolContext


def load_context(ref: str | None, needs: Iterable[Need], *, seed: int = 0, run_dir: Path | None = None,
                 datasets: str | None = None) -> ToolContext:
    """A context for tools that need `needs`, on the target `ref` (an organism, NAME:variant, URL or base model).
    Datasets are the organism's own, or those of `datasets` (an organism or a folder: e.g. to search an organism's
    data while auditing a remote copy of it). A need that `ref` cannot meet raises ValueError naming it."""
    needs = set(needs)
    ctx = ToolContext(run_dir=run_dir, seed=seed)
    if needs & {"target", "internals", "sae"}:
        if not ref:
            raise ValueError("these tools talk to a model: give a target (organism, NAME:control, URL or base model)")
        ctx.target = load_target(ref)
        if "sae" in needs:
            ctx.sae = sae_for(ref, ctx.target)
    if "datasets" in needs:
        ctx.datasets = _datasets(ref, datasets)
    return ctx


def _datasets(ref: str | None, datasets: str | None) -> Mapping[str, Path]:
    if datasets:
        return datasets_for(datasets)
    if ref and organism_of(ref) is not None:
        return datasets_for(ref)
    return {}


def sae_for(ref: str, target: Target) -> SAEBundle | LazySAEBundle | None:
    """The SAE of the organism `ref` names (any variant), loaded on first use; None for a target without weights
    or an organism without an SAE."""
    org = organism_of(ref) if target.has_internals else None
    return None if org is None else SAEBundle.lazy_for_organism(org)
