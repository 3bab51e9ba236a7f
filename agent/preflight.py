"""Checks an audit makes before it loads anything heavy (the target, torch): a refusal must come in under two
seconds, not after a model load. Light imports only (the
transcript layer, reference names)."""

from __future__ import annotations

from pathlib import Path

from target_models.loading.names import check_reference
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
    """`ref` names something an audit can load (see target_models.loading.names.check_reference)."""
    check_reference(ref)
