"""`sleuth audit`, `score`, `replay`, `view`: run an audit, then grade, re-run or render a saved run
(agent/, transcripts/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sleuth._cli.common import _budget, _fail, _settings, console, err

if TYPE_CHECKING:
    from transcripts.run import Run


def _show_outcome(o, as_json: bool) -> None:
    # imported here: keeps `sleuth --help` fast
    from agent.progress import outcome_json, print_outcome

    if as_json:
        sys.stdout.write(json.dumps(outcome_json(o.report, o.score, o.run_dir, o.reason, o.score_error), indent=2)
                         + "\n")
    else:
        print_outcome(console, o.report, o.score, o.run_dir, o.reason, o.score_error)


def audit_cmd(
    target: str = typer.Option("rm_sycophancy", help="organism name, build folder, hub id or http(s) URL"),
    auditor: str | None = typer.Option(None, help="offline (default) | anthropic:MODEL | replay:RUN"),
    toolset: str = typer.Option("all", help="chat | chat+grep | chat+semantic | chat+data | chat+data+interp | all"),
    seed: int | None = typer.Option(None, help="sampling and investigator seed (default 0; with --auditor replay:RUN, "
                                               "the run's)"),
    max_turns: int | None = typer.Option(None, help="auditor turns"),
    max_tokens: int | None = typer.Option(None, help="LLM tokens (input + output, cached included)"),
    max_usd: float | None = typer.Option(None, help="dollars of LLM use"),
    max_minutes: float | None = typer.Option(None, help="wall-clock minutes"),
    out: Path | None = typer.Option(None, help="run folder (default: runs/TARGET-TIMESTAMP)"),
    resume: Path | None = typer.Option(None, "--resume", help="continue a killed or interrupted run from its folder"),
    runs: int = typer.Option(1, help="independent runs (seeds seed, seed+1, ...)"),
    aggregate: bool = typer.Option(False, "--aggregate", help="with --runs N: a super-agent run over the N reports"),
    settings: str | None = typer.Option(None, help='offline investigator settings as JSON, e.g. \'{"probes": 8}\''),
    as_json: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
    quiet: bool = typer.Option(False, "--quiet", help="no live progress"),
) -> None:
    """Audit a target: investigate, write a report (RUN/report.json, .md), and score it against the ground truth."""
    # imported here: light checks first, so that a usage error comes before torch loads
    from agent.preflight import check_new_run, check_resumable, check_target
    from tools.registry import TOOLSETS

    budget = _budget(max_turns, max_tokens, max_usd, max_minutes)
    options = _settings(settings)
    if toolset not in TOOLSETS:
        _fail(f"unknown toolset {toolset!r}; choose from {', '.join(TOOLSETS)}")
    try:
        if resume is not None:
            check_resumable(resume)
        else:
            check_target(target)
            if out is not None and runs <= 1 and not aggregate:
                check_new_run(out)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    # imported here: keeps `sleuth --help` fast (these load torch)
    from agent.audit import AuditInterrupted, audit, audit_many
    from agent.audit import resume as resume_run
    from agent.progress import ProgressPrinter
    from target_models.loading.organism import ArtifactError

    progress = ProgressPrinter(err, quiet=quiet)
    try:
        if resume is not None:
            _show_outcome(resume_run(resume, auditor, progress, budget=budget), as_json)
            return
        if runs > 1 or aggregate:
            outcomes, agg = audit_many(target, auditor or "offline", toolset, seed, max(runs, 1), budget, out,
                                       aggregate, progress, options=options)
            for o in outcomes:
                err.print(f"{o.run_dir}: {o.score.summary() if o.score else o.score_error}", highlight=False)
            if agg is not None:
                err.print(f"aggregate: {agg.score.summary() if agg.score else agg.score_error}", highlight=False)
            _show_outcome(agg or outcomes[-1], as_json)
            return
        _show_outcome(audit(target, auditor or "offline", toolset, seed, budget, out, progress, options=options),
                      as_json)
    except ArtifactError as e:
        _fail(f"{e} (or pass --target a built folder or a URL)")
    except AuditInterrupted as e:
        _fail(str(e))
    except (ValueError, KeyError, TypeError, FileNotFoundError, RuntimeError) as e:
        _fail(str(e))


def score_cmd(
    run: Path = typer.Argument(..., help="run folder (holds transcript.jsonl and report.json)"),
    grader: str = typer.Option("deterministic", help="deterministic | llm"),
    organism: str | None = typer.Option(None,
                                        help="organism name, build folder or spec.yaml (default: the run's target)"),
    as_json: bool = typer.Option(False, "--json", help="print the Score as JSON"),
) -> None:
    """Grade a run's report against the organism's ground truth; writes RUN/score.json and a score event.
    Exit 1: scored, but the transcript is damaged (or busy) and got no score event; exit 2: nothing written."""
    # imported here: keeps `sleuth --help` fast
    from agent.grading.runs import grade_run, spec_for_run
    from target_models.build.spec import SpecError
    from transcripts.run import TRANSCRIPT

    if grader not in ("deterministic", "llm"):
        _fail(f"unknown grader {grader!r}; use deterministic or llm")
    if not run.is_dir():
        _fail(f"{run}: not a run folder")
    if (run / TRANSCRIPT).exists():
        _replay_open(run)  # an empty or binary transcript: exit 2 before anything is written
    try:
        spec = spec_for_run(run, organism)
        scored = grade_run(run, spec, grader=grader)  # score.json is replaced only once the score is complete
    except (OSError, SpecError, ValueError, RuntimeError) as e:
        _fail(str(e))
    if as_json:
        sys.stdout.write(scored.score.model_dump_json(indent=2) + "\n")
    else:
        _score_show(scored.score)
        console.print(f"wrote {scored.path}", highlight=False)
    if scored.damage is not None:
        _replay_warn(scored.damage, "scored the report; the transcript was not appended to")
        raise typer.Exit(1)


def _score_show(score) -> None:
    """The score, its splits and each claim's match, as `sleuth score` prints them."""
    from rich.markup import escape

    console.print(score.summary())
    for split, d in score.details.get("per_split", {}).items():
        console.print(f"  {split}: {d['found']}/{d['total']} behaviours")
    for m in score.matches:
        console.print(f"  [green]matched[/green] {m.behaviour_id} <- {escape(repr(m.claim))} ({m.similarity:.2f})",
                      highlight=False)
    for c in score.unmatched_claims:
        console.print(f"  [yellow]unmatched[/yellow] {escape(repr(c))}", highlight=False)


def _replay_open(path: Path) -> Run:
    """The run at `path` (folder or transcript.jsonl), or exit 2 naming the transcript when nothing in it can be
    shown: missing, unreadable, empty, binary, or damaged from its first line. A log damaged further on comes back
    as its good prefix, with the damage in `.error`."""
    # imported here: keeps `sleuth --help` fast
    from transcripts.run import open_run

    try:
        return open_run(path)
    except (OSError, ValueError) as e:  # TranscriptError is a ValueError and names path and line
        _fail(str(e))
        raise  # not reached: _fail exits


def _replay_warn(problem: Exception, did: str) -> None:
    """Say on stderr, as plain text (a path or a reason may hold brackets), where a transcript is damaged and what
    was done about it."""
    from rich.text import Text

    err.print(Text.assemble(("warning: ", "yellow"), f"{problem}; {did}"), highlight=False, soft_wrap=True)


def _replay_fork(run: Path, r: Run, from_step: int, auditor: str | None, out: Path | None, as_json: bool) -> None:
    """--from-step: fork the run at a tool step and let an auditor continue the fork."""
    # imported here: keeps `sleuth --help` fast
    from agent.audit import resume as resume_run
    from agent.progress import ProgressPrinter
    from agent.replay import fork

    who = auditor or (r.config.auditor if r.config else "offline")
    if r.error is not None:
        _replay_warn(r.error, f"forking from the {len(r.events)} events before it")
    try:
        dest = fork(run, out or run.with_name(f"{run.name}-from-{from_step}"), from_step, who)
    except (ValueError, FileExistsError) as e:
        _fail(str(e))
    try:
        _show_outcome(resume_run(dest, who, ProgressPrinter(err, quiet=as_json)), as_json)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        _fail(f"{e} (the fork is in {dest})")


def _replay_reexecute(run: Path, r: Run, target: str | None, limit: int | None, as_json: bool) -> None:
    """--reexecute: re-run the recorded tool calls against the target and show where the results diverge."""
    # imported here: keeps `sleuth --help` fast (these load torch)
    from agent.audit import load_context
    from agent.replay import reexecute

    ref = target or (r.config.target if r.config else None)
    if ref is None:
        _fail("the run records no target; pass --target")
    import tempfile

    from target_models.loading.organism import ArtifactError

    if r.error is not None:
        _replay_warn(r.error, f"re-executing the {len(r.tool_calls)} tool calls recorded before it")
    with tempfile.TemporaryDirectory() as tmp:  # memory tools must not write into the recorded run
        try:
            ctx, _ = load_context(ref, "all", r.config.seed if r.config else 0, Path(tmp))
        except (ArtifactError, ValueError, FileNotFoundError) as e:
            _fail(f"cannot load the target {ref!r}: {e} (pass --target)")
        n, diverged = reexecute(run, ctx, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps({"calls": n, "divergences": [d.__dict__ for d in diverged]}, indent=2) + "\n")
        return
    console.print(f"re-executed {n} tool calls: {len(diverged)} diverged")
    for d in diverged:
        console.print(f"  step {d.step} {d.name}: recorded {d.recorded[:80]!r} now {d.now[:80]!r}", highlight=False)


def _replay_rescore(run: Path, as_json: bool) -> None:
    """--rescore: grade the run's report again with the current grader."""
    # imported here: keeps `sleuth --help` fast
    from agent.grading.runs import grade_run

    try:
        scored = grade_run(run)
    except (OSError, ValueError, RuntimeError) as e:
        _fail(str(e))
    s = scored.score
    sys.stdout.write(s.model_dump_json(indent=2) + "\n") if as_json else console.print(s.summary())
    if scored.damage is not None:
        _replay_warn(scored.damage, "scored the report; the transcript was not appended to")
        raise typer.Exit(1)


def _replay_render(run: Path, r: Run, as_json: bool) -> None:
    """No mode: write RUN/view.html and show the run's totals and report."""
    # imported here: keeps `sleuth --help` fast
    from transcripts.run import VIEW_HTML
    from transcripts.view import render_html

    (run / VIEW_HTML).write_text(render_html(r), encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps({"totals": r.totals.model_dump(), "report": r.report.model_dump(mode="json")
                                     if r.report else None}, indent=2) + "\n")
        return
    from agent.progress import print_outcome

    t = r.totals
    # resume cuts a torn last line but refuses any other damage
    unended = "not ended" + (" (resume with sleuth audit --resume)" if r.error is None or r.error.truncated else "")
    console.print(f"{len(r.tool_calls)} tool calls, {t.turns} auditor turns, ${t.cost_usd:.4f}, "
                  f"{t.wall_seconds:.0f} s; ended: {r.end.reason if r.end else unended}")
    if r.report:
        print_outcome(console, r.report, r.score, run, r.end.reason if r.end else "not ended")
    console.print(f"wrote {run / VIEW_HTML}", highlight=False)
    if r.error is not None:
        _replay_warn(r.error, f"showing the {len(r.events)} events before it (in {run / VIEW_HTML} too)")


def replay_cmd(
    run: Path = typer.Argument(..., help="run folder"),
    score: bool = typer.Option(False, "--rescore", "--score", help="re-score the report with the current grader"),
    execute: bool = typer.Option(False, "--reexecute", "--execute",
                                 help="re-run the tool calls against the target; show divergence"),
    from_step: int | None = typer.Option(None, help="continue the run from this tool step with --auditor"),
    auditor: str | None = typer.Option(None, help="auditor for --from-step (default: the run's own)"),
    target: str | None = typer.Option(None, help="target for --reexecute (default: the run's)"),
    limit: int | None = typer.Option(None, help="--reexecute only the first N tool calls"),
    out: Path | None = typer.Option(None, help="run folder for --from-step (default: RUN-from-K)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Re-render a run (report, totals, view.html); re-score it; re-execute its tool calls; or fork it at a step.
    Exit 1: done, but the transcript is damaged and only the events before the damage were used."""
    if not (run / "transcript.jsonl").exists():
        _fail(f"{run}: no transcript.jsonl")
    r = _replay_open(run)  # exit 2 on an empty or binary transcript
    if from_step is not None:
        _replay_fork(run, r, from_step, auditor, out, as_json)
    elif execute:
        _replay_reexecute(run, r, target, limit, as_json)
    elif score:
        _replay_rescore(run, as_json)
    else:
        _replay_render(run, r, as_json)
    if r.error is not None:
        raise typer.Exit(1)


def view_cmd(
    run: Path = typer.Argument(..., help="run folder or transcript.jsonl"),
    out: Path | None = typer.Option(None, help="where to write the HTML (default: RUN/view.html)"),
    open_: bool = typer.Option(False, "--open", help="open the page in a browser"),
) -> None:
    """Render a run as one self-contained HTML page (a damaged transcript shows up to the damage, and exits 1)."""
    # imported here: keeps `sleuth --help` fast
    from transcripts.run import VIEW_HTML, run_dir_of
    from transcripts.view import render_html

    if not run.exists():
        _fail(f"{run}: no such run folder or transcript")
    r = _replay_open(run)  # exit 2 on an empty or binary transcript
    dest = out or run_dir_of(run) / VIEW_HTML
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render_html(r), encoding="utf-8")
    console.print(f"wrote {dest}", highlight=False)
    if open_:
        import webbrowser

        webbrowser.open(dest.resolve().as_uri())
    if r.error is not None:
        _replay_warn(r.error, f"showing the {len(r.events)} events before it")
        raise typer.Exit(1)
