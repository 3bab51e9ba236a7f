"""Checks an audit makes before it loads anything heavy (the target, torch): a refusal must come in under two
seconds, not after a model load. Light imports only (the
transcript layer, the spec)."""

from __future__ import annotations

import os
from pathlib import Path

from target_models.build.spec import list_organisms
from target_models.targets.aliases import SMOLLM2
from transcripts.log import TranscriptError, check_unlocked
from transcripts.run import TRANSCRIPT


def check_new_run(run_dir: Path) -> None:
    """`run_dir` may take a new run: no live writer, and no run already there."""
    transcript = Path(run_dir) / TRANSCRIPT
    check_unlocked(transcript)
    if transcript.exists() and transcript.stat().st_size > 0:
        raise TranscriptError(transcript, None, "this folder already holds a run; continue it with "
                              f"`sleuth audit --resume {run_dir}` or choose another --out")


def check_resumable(run_dir: Path) -> None:
    """`run_dir` holds a run that no live process is writing."""
    transcript = Path(run_dir) / TRANSCRIPT
    if not transcript.exists():
        raise FileNotFoundError(f"{run_dir}: no transcript.jsonl to resume")
    check_unlocked(transcript)


def check_target(ref: str) -> None:
    """`ref` names something `load_target` can load, judged without loading it: a URL, an organism (name or build
    folder, optionally `:organism`/`:control`/`:base`), the shipped base model's alias, a local folder, or a hub
    id already in the local Hugging Face cache (nothing is downloaded at run time)."""
    if ref.startswith(("http://", "https://")):
        return
    head, sep, tail = ref.rpartition(":")
    name = head if sep and tail in ("organism", "control", "base") else ref
    if name in list_organisms() or (Path(name) / "build.json").exists() or Path(name).exists() or name == SMOLLM2:
        return
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" /
                                                                     "huggingface")) / "hub")
    if "/" in name and (hub / f"models--{name.replace('/', '--')}").is_dir():
        return
    raise ValueError(f"unknown target {ref!r}: not an organism ({', '.join(list_organisms())}, or a build folder), "
                     f"a URL, {SMOLLM2!r}, a local folder, or a hub id in the local Hugging Face cache")
