"""Target references by name alone (what `--target` takes), without loading anything: light enough for the checks
the command line makes before torch loads. `references` turns them into targets."""

from __future__ import annotations

import os
from pathlib import Path

from target_models.build.spec import list_organisms
from target_models.targets.aliases import SMOLLM2

VARIANTS = ("organism", "control", "base")


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def is_organism(ref: str) -> bool:
    return ref in list_organisms() or (Path(ref) / "build.json").exists()


def split_variant(ref: str) -> tuple[str, str | None]:
    """`NAME:control` -> (NAME, "control"); anything else -> (ref, None)."""
    head, sep, tail = ref.rpartition(":")
    if sep and tail in VARIANTS and is_organism(head):
        return head, tail
    return ref, None


def check_reference(ref: str) -> None:
    """ValueError unless `ref` names something loadable: a URL, an organism (any variant), the shipped base model's
    alias, a local folder, or a hub id already in the local Hugging Face cache (nothing is downloaded at run time)."""
    if is_url(ref):
        return
    name, _ = split_variant(ref)
    if is_organism(name) or Path(name).exists() or name == SMOLLM2:
        return
    hub = Path(os.environ.get("HF_HUB_CACHE")
               or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if "/" in name and (hub / f"models--{name.replace('/', '--')}").is_dir():
        return
    raise ValueError(f"unknown target {ref!r}: not an organism ({', '.join(list_organisms())}, or a build folder), "
                     f"a URL, {SMOLLM2!r}, a local folder, or a hub id in the local Hugging Face cache")
