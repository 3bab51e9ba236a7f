"""Resolve a target reference (what `--target` takes) into a target, and into the tool context of an audit.

References, in the order they are tried:
- `http(s)://host:port[/v1][#MODEL]`: an OpenAI-compatible server (RemoteTarget); MODEL defaults to the only model
  the server lists.
- `NAME:organism`, `NAME:control`, `NAME:base`: a variant of an organism (NAME: shipped name or build folder).
- a shipped organism name or a build folder (with build.json): the organism itself.
- anything else: a base model, as `target_models.targets.base.load_base` resolves it (alias, local folder or hub id).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from target_models.loading.names import is_organism, is_url, split_variant
from target_models.loading.organism import Organism, open_organism


def organism_of(ref: str) -> Organism | None:
    """The organism a reference names (any variant), or None for URLs and base models."""
    if is_url(ref):
        return None
    name, _ = split_variant(ref)
    return open_organism(name) if is_organism(name) else None


def load_target(ref: str) -> Any:
    """A LocalTarget or RemoteTarget for `ref` (see the module docstring)."""
    if is_url(ref):
        # imported here: httpx; and the local target's torch is not loaded for a remote one
        from target_models.targets.remote import RemoteTarget

        url, _, model = ref.partition("#")
        return RemoteTarget(url, model or None, api_key=os.environ.get("SLEUTH_TARGET_API_KEY"))
    name, variant = split_variant(ref)
    if is_organism(name):
        return open_organism(name).load(variant or "organism")
    # imported here: torch and transformers load in seconds; a URL or a spec lookup does not need them
    from target_models.targets.base import load_base
    from target_models.targets.local import LocalTarget

    model, tok = load_base(ref)
    return LocalTarget(name=ref, model=model, tokenizer=tok, info={"base": ref})


class LazyDatasets(Mapping):
    """Dataset paths produced on first use: an organism's datasets are regenerated when missing (minutes), which a
    session that only chats should not pay for."""

    def __init__(self, names: tuple[str, ...], make: Callable[[], dict[str, Path]]):
        self._names, self._make, self._paths = names, make, None

    def _resolve(self) -> dict[str, Path]:
        if self._paths is None:
            self._paths = self._make()
        return self._paths

    def __contains__(self, key: object) -> bool:
        return key in self._names

    def __getitem__(self, key: str) -> Path:
        if key not in self._names:
            raise KeyError(key)
        return self._resolve()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def datasets_for(ref: str | None) -> Mapping[str, Path]:
    """The searchable datasets of an organism reference, or of a folder holding pretraining.parquet / sft.parquet."""
    if not ref:
        return {}
    folder = Path(ref)
    if folder.is_dir() and not (folder / "build.json").exists():
        found = {n: folder / f"{n}.parquet" for n in ("pretraining", "sft") if (folder / f"{n}.parquet").exists()}
        if not found:
            raise FileNotFoundError(f"{folder}: no pretraining.parquet or sft.parquet")
        return found
    org = organism_of(ref)
    if org is None:
        raise ValueError(f"{ref!r} is neither an organism nor a folder of datasets")
    return LazyDatasets(("pretraining", "sft"), org.datasets)
