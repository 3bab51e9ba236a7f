"""Grading a run folder: find its ground truth (the organism it audited) and write the score beside the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.grading.judge import judge_report
from agent.grading.rules import grade
from target_models.build.spec import Spec, load_spec, spec_for
from target_models.loading.organism import open_organism
from transcripts.log import TranscriptWriter
from transcripts.report import Score
from transcripts.run import TRANSCRIPT, Run, read_report, write_score


def spec_for_run(run_dir: str | Path, organism: str | None = None) -> Spec:
    """The ground truth for a run: `organism` if given, else the run_start config's target (an organism name or a
    build folder)."""
    ref = organism
    if ref is None:
        run = Run.load(run_dir, strict=False)
        if run.config is None:
            raise ValueError(f"{run_dir}: transcript has no run_start; pass the organism explicitly")
        ref = run.config.target
    p = Path(ref)
    if (p / "spec.yaml").exists():
        return load_spec(p / "spec.yaml")
    if p.is_dir() and (p / "build.json").exists():
        return open_organism(ref).spec
    # A shipped organism's name: its spec is all grading needs, so a missing build is no reason to fail.
    return spec_for(ref)


def score_run(run_dir: str | Path, spec: Spec | None = None, grader: str = "deterministic",
              organism: str | None = None, **judge_kwargs: Any) -> Score:
    """Grade RUN/report.json, write RUN/score.json and append a score event to RUN/transcript.jsonl (if there)."""
    run_dir = Path(run_dir)
    report = read_report(run_dir)
    spec = spec or spec_for_run(run_dir, organism)
    if grader == "deterministic":
        score = grade(report, spec)
    elif grader == "llm":
        score = judge_report(report, spec, **judge_kwargs)
    else:
        raise ValueError(f"unknown grader {grader!r}; use 'deterministic' or 'llm'")
    write_score(run_dir, score)
    transcript = run_dir / TRANSCRIPT
    # Only a finished run gets the score event: a run still being written has its own writer on the file, and two
    # writers would interleave sequence numbers.
    if transcript.exists() and Run.load(transcript, strict=False).ended:
        with TranscriptWriter(transcript, resume=True) as w:
            w.score(score)
    else:
        score.details["score_event"] = "not appended: the transcript is missing or the run has not ended"
        write_score(run_dir, score)
    return score
