"""Grading a run folder: find its ground truth (the organism it audited) and write the score beside the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.grading.judge import judge_report
from agent.grading.rules import grade
from target_models.build.spec import Spec, load_spec, spec_for
from target_models.loading.organism import open_organism
from transcripts.log import TranscriptError, TranscriptWriter
from transcripts.report import Score
from transcripts.run import TRANSCRIPT, Run, read_report, write_score


def spec_for_run(run_dir: str | Path, organism: str | None = None) -> Spec:
    """The ground truth for a run: `organism` if given, else the run_start config's target (an organism name or a
    build folder)."""
    ref = organism
    if ref is None:
        run = Run.load(run_dir, strict=False)
        if run.config is None:
            why = f" ({run.error})" if run.error is not None else ""
            raise ValueError(f"{run.path}: transcript has no run_start{why}; pass the organism explicitly")
        ref = run.config.target
    p = Path(ref)
    if (p / "spec.yaml").exists():
        return load_spec(p / "spec.yaml")
    if p.is_dir() and (p / "build.json").exists():
        return open_organism(ref).spec
    # A shipped organism's name: its spec is all grading needs, so a missing build is no reason to fail.
    return spec_for(ref)


@dataclass
class Scored:
    """What scoring a run folder did: the score, where it was written, and why the transcript got no score event
    (None when it got one). `damage` is set when the transcript could not be appended to: damaged (path, 1-based line,
    reason) or being written by another process."""

    score: Score
    path: Path
    damage: TranscriptError | None = None


def grade_run(run_dir: str | Path, spec: Spec | None = None, grader: str = "deterministic",
              organism: str | None = None, **judge_kwargs: Any) -> Scored:
    """Grade RUN/report.json, append a score event to RUN/transcript.jsonl when the run has ended and its log is
    intact, then write RUN/score.json (via a temporary file and a rename, once the score is complete). A damaged
    transcript is never appended to (nor cut): the score is written all the same and the damage is in `.damage`."""
    run_dir = Path(run_dir)
    report = read_report(run_dir)
    spec = spec or spec_for_run(run_dir, organism)
    if grader == "deterministic":
        score = grade(report, spec)
    elif grader == "llm":
        score = judge_report(report, spec, **judge_kwargs)
    else:
        raise ValueError(f"unknown grader {grader!r}; use 'deterministic' or 'llm'")
    damage = _append_score_event(run_dir / TRANSCRIPT, score)
    return Scored(score, write_score(run_dir, score), damage)


def _append_score_event(transcript: Path, score: Score) -> TranscriptError | None:
    """Append `score` to a finished, intact transcript; otherwise note in score.details why not (and return the
    transcript's damage, if that is why)."""
    run = Run.load(transcript, strict=False) if transcript.exists() else None
    if run is not None and run.error is not None:
        score.details["score_event"] = f"not appended: the transcript is damaged ({run.error})"
        return run.error
    # Only a finished run gets the score event: a run still being written has its own writer on the file, and two
    # writers would interleave sequence numbers.
    if run is None or not run.ended:
        score.details["score_event"] = "not appended: the transcript is missing or the run has not ended"
        return None
    try:
        with TranscriptWriter(transcript, resume=True) as w:
            w.score(score)
    except TranscriptError as e:  # locked by a live writer, or damaged since it was read
        score.details["score_event"] = f"not appended: {e}"
        return e
    return None


def score_run(run_dir: str | Path, spec: Spec | None = None, grader: str = "deterministic",
              organism: str | None = None, **judge_kwargs: Any) -> Score:
    """Grade RUN/report.json, write RUN/score.json and append a score event to RUN/transcript.jsonl (if there and
    intact); see grade_run, which also says whether the transcript was damaged."""
    return grade_run(run_dir, spec, grader, organism, **judge_kwargs).score
