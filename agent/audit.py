"""Starting, resuming and finishing an audit run: the run folder, the transcript, the loop, the report files.

`run_audit` takes a built auditor and tool context (tests and the super-agent use it directly); `audit` and
`resume` resolve names (target, auditor, toolset) the way the CLI passes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from agent import prompts
from agent.auditor import AuditState
from agent.budget import Budget, Spent
from agent.factory import make_auditor
from agent.grading.runs import score_run
from agent.history import entries_from_events
from agent.loop import AuditLoop, LoopResult, Progress, recorded_sample_counter, restore_sample_counter
from agent.preflight import check_new_run, check_resumable
from agent.superagent import load_reports, make_super
from target_models.loading.names import split_variant
from target_models.loading.organism import ArtifactError
from target_models.loading.references import organism_of
from tools import context, registry
from tools.base import ToolContext
from transcripts.log import TranscriptWriter
from transcripts.report import Report, Score
from transcripts.run import REPORT_JSON, SCORE_JSON, TRANSCRIPT, Run, read_score, write_report

DEFAULT_TARGET = "rm_sycophancy"


class AuditInterrupted(RuntimeError):
    """The run stopped for a reason outside it (an API down after all retries); it can be resumed."""


@dataclass
class Outcome:
    run_dir: Path
    report: Report
    reason: str
    score: Score | None = None
    score_error: str | None = None


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("sleuth", "anthropic", "langgraph", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def run_audit(auditor: Any, ctx: Any, tools: list[dict], run_dir: Path, *, config: dict[str, Any],
              budget: Budget | None = None, task: str = prompts.TASK, seed: int = 0,
              progress: Progress | None = None, resume: bool = False, resume_note: str = "") -> LoopResult:
    """Run (or, with resume=True, continue) one audit into run_dir/transcript.jsonl; writes report.json/.md."""
    run_dir = Path(run_dir)
    budget = budget or Budget()
    writer = TranscriptWriter(run_dir / TRANSCRIPT, resume=resume)
    try:
        state = AuditState(task=task, tools=tools, budget=budget, seed=seed, target_name=str(config.get("target", "")))
        seconds_before = 0.0
        loop_kw: dict[str, Any] = {}
        if writer.events:
            run = Run(writer.events, writer.path)
            if run.ended and run.end.reason != "interrupted":
                raise RuntimeError(f"{run_dir}: the run already ended ({run.end.reason}); nothing to resume")
            state.history = entries_from_events(writer.events)
            totals = run.compute_totals()
            tokens = totals.input_tokens + totals.output_tokens + totals.cache_read + totals.cache_write
            state.spent = Spent(turns=totals.turns, tokens=tokens, usd=totals.cost_usd)
            seconds_before = totals.wall_seconds
            state.nudged = any(n.kind == "nudge" for n in run.notes)
            loop_kw["known_steps"] = {p.id: p.step for p in run.pending_tool_calls if p.step is not None}
            restore_sample_counter(ctx, recorded_sample_counter(writer.events))  # sampling carries on where it was
            writer.note(f"resumed after {len(run.tool_calls)} tool calls{resume_note}", kind="resume")
            first = next((e.text for e in state.history if e.kind == "user"), None)
            if first is None:
                writer.auditor_message("user", task)
                state.history = entries_from_events(writer.events)
        else:
            extra = auditor.run_config() if hasattr(auditor, "run_config") else {}
            writer.run_start({**config, "seed": seed, "budgets": budget.as_dict(), "versions": _versions(),
                              "auditor_config": extra})
            writer.auditor_message("user", task)
            state.history = entries_from_events(writer.events)
        loop = AuditLoop(auditor, ctx, state, writer, progress=progress, seconds_before=seconds_before)
        loop.known_steps.update(loop_kw.get("known_steps", {}))
        try:
            result = loop.run()
        except KeyboardInterrupt:
            writer.run_end("interrupted", message="interrupted by the user; `sleuth audit --resume` continues")
            raise
        except Exception as e:
            # An API that stayed down through every retry leaves a run worth resuming later; anything else is a bug.
            resumable = type(e).__module__.startswith("anthropic")
            writer.run_end("interrupted" if resumable else "error", message=f"{type(e).__name__}: {e}")
            if resumable:
                raise AuditInterrupted(f"{run_dir}: the auditor's API failed ({type(e).__name__}: {e}); continue with "
                                       f"`sleuth audit --resume {run_dir}`") from e
            raise
        writer.run_end(result.reason, message=loop.stop_reason)
    finally:
        writer.close()  # however the run stops, the next writer (a resume) must find the run unlocked
    write_report(run_dir, result.report)
    return result


# ---- names -> objects ------------------------------------------------------------------------------------------------


def toolset_schemas(toolset: str | list[str], ctx: ToolContext | None = None) -> list[dict]:
    """Schemas of a named toolset (or of a list of tool names, as a run's config records them). With a context, only
    the tools whose needs it meets (see tools.registry.usable)."""
    names = registry.TOOLSETS[toolset] if isinstance(toolset, str) else list(toolset)
    tools = registry.usable(names, ctx) if ctx is not None else [registry.REGISTRY[n] for n in names
                                                                   if n in registry.REGISTRY]
    return [t.schema() for t in tools]


def check_built(target_ref: str) -> None:
    """Fail early, with the command that fixes it, when an organism's build has not finished (no adapter yet)."""
    org = organism_of(target_ref)  # raises ArtifactError when there is no build at all
    if org is None:
        return
    _, variant = split_variant(target_ref)
    adapter = org.out / ("control_adapter" if variant == "control" else "adapter") / "adapter_model.safetensors"
    if variant != "base" and not adapter.exists():
        raise ArtifactError(f"organism {org.spec.name!r} is not built yet ({adapter} is missing); run "
                            f"`sleuth organism build {org.spec.name}`")


def load_context(target_ref: str, toolset: str | list[str], seed: int, run_dir: Path) -> tuple[ToolContext, list[dict]]:
    """The ToolContext for a target reference (loaded with what the toolset's tools need), and the schemas of the
    tools it can serve."""
    if isinstance(toolset, str) and toolset not in registry.TOOLSETS:
        raise ValueError(f"unknown toolset {toolset!r}; choose from {', '.join(registry.TOOLSETS)}")
    check_built(target_ref)
    names = registry.TOOLSETS[toolset] if isinstance(toolset, str) else list(toolset)
    # Every audit talks to its target, whatever its tools (the auditor's task is about the target).
    ctx = context.load_context(target_ref, registry.needs_of(names) | {"target"}, seed=seed, run_dir=Path(run_dir))
    return ctx, toolset_schemas(toolset, ctx)


def new_run_dir(out: Path | None, target: str) -> Path:
    if out is not None:
        return Path(out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(target).name}-{stamp}"


def score(run_dir: Path) -> tuple[Score | None, str | None]:
    """Grade a finished run with the deterministic grader; the score goes into score.json and the transcript."""
    try:
        return score_run(run_dir), None  # writes score.json and the transcript's score event
    except Exception as e:  # a grading problem must not lose the audit; the report is already on disk
        return None, f"{type(e).__name__}: {e}"


def default_seed(auditor: str) -> int:
    """0, or for a replay:RUN auditor the recorded run's seed, so that its tool calls sample as they did."""
    if auditor.startswith("replay:"):
        cfg = Run.load(auditor.removeprefix("replay:"), strict=False).config
        return cfg.seed if cfg is not None else 0
    return 0


def audit(target: str = DEFAULT_TARGET, auditor: str = "offline", toolset: str = "all", seed: int | None = None,
          budget: Budget | None = None, out: Path | None = None, progress: Progress | None = None,
          task: str = prompts.TASK, grade: bool = True, options: dict[str, Any] | None = None) -> Outcome:
    """One audit. `options` go to the auditor's constructor (e.g. {"settings": {...}} for the offline one); the
    seed defaults to default_seed(auditor)."""
    seed = default_seed(auditor) if seed is None else seed
    run_dir = new_run_dir(out, target)
    check_new_run(run_dir)  # refused now, not after loading the target
    ctx, tools = load_context(target, toolset, seed, run_dir)
    aud = make_auditor(auditor, seed=seed, **(options or {}))
    config = {"target": target, "auditor": auditor, "toolset": [t["name"] for t in tools], "toolset_name": toolset}
    res = run_audit(aud, ctx, tools, run_dir, config=config, budget=budget, task=task, seed=seed, progress=progress)
    s, err = score(run_dir) if grade else (None, None)
    return Outcome(run_dir, res.report, res.reason, s, err)


def resume(run_dir: Path, auditor: str | None = None, progress: Progress | None = None, grade: bool = True,
           budget: Budget | None = None) -> Outcome:
    """Continue a killed or interrupted run. `budget`: limits given now replace the recorded ones (the others stay).
    A run that ended but was killed before its report files or score were written is finished from its transcript."""
    run_dir = Path(run_dir)
    check_resumable(run_dir)  # refuse a live run now, not after loading the target
    run = Run.load(run_dir, strict=False)
    if run.config is None:
        raise RuntimeError(f"{run_dir}: no run_start event; cannot resume")
    if run.ended and run.end is not None and run.end.reason != "interrupted":
        return _finish_ended(run_dir, run, grade)
    cfg = run.config
    ctx, tools = load_context(cfg.target, list(cfg.toolset), cfg.seed, run_dir)
    ref = auditor or cfg.auditor
    # The recorded auditor settings (and seed) rebuild the same investigator, so a resumed run goes on as it would
    # have; another auditor kind ignores what it does not take.
    options = (cfg.model_extra or {}).get("auditor_config") or {}
    if ref.startswith("super:"):
        runs = [Path(p) for p in (cfg.model_extra or {}).get("aggregates", [])]
        aud, _ = make_super(ref.removeprefix("super:"), load_reports(runs), seed=cfg.seed, **options)
    else:
        aud = make_auditor(ref, seed=cfg.seed, **options)
    b = Budget(**{k: v for k, v in cfg.budgets.items() if k in Budget.__dataclass_fields__})
    changed = {k: v for k, v in (budget.as_dict() if budget else {}).items() if v is not None}
    b = replace(b, **changed)
    task = next((m.text() for m in run.messages if m.role == "user"), prompts.TASK)
    note = f"; budgets now {b.as_dict()}" if changed else ""
    res = run_audit(aud, ctx, tools, run_dir, config=cfg.model_dump(), budget=b, task=task, seed=cfg.seed,
                    progress=progress, resume=True, resume_note=note)
    s, err = score(run_dir) if grade else (None, None)
    return Outcome(run_dir, res.report, res.reason, s, err)


def _finish_ended(run_dir: Path, run: Run, grade: bool) -> Outcome:
    """The outputs a kill between run_end and the last file left out: report files from the transcript's report
    event, then the score. A run that ended with no report at all has nothing to finish."""
    assert run.end is not None
    if not run.reports:
        raise RuntimeError(f"{run_dir}: the run already ended ({run.end.reason}) without a report; nothing to resume")
    report = run.reports[-1]
    if not (run_dir / REPORT_JSON).exists():
        write_report(run_dir, report)
    if (run_dir / SCORE_JSON).exists() or not grade:
        s = read_score(run_dir) if (run_dir / SCORE_JSON).exists() else None
        return Outcome(run_dir, report, run.end.reason, s, None)
    s, err = score(run_dir)
    return Outcome(run_dir, report, run.end.reason, s, err)


def audit_many(target: str, auditor: str, toolset: str, seed: int | None, runs: int, budget: Budget | None,
               out: Path | None, aggregate: bool, progress: Progress | None = None,
               options: dict[str, Any] | None = None) -> tuple[list[Outcome], Outcome | None]:
    """`runs` audits with seeds seed, seed+1, ... into OUT/run-i; with aggregate, a super-agent run over their
    reports into OUT/aggregate."""
    seed = default_seed(auditor) if seed is None else seed
    base = new_run_dir(out, target)
    outcomes = [audit(target, auditor, toolset, seed + i, budget, base / f"run-{i}", progress, options=options)
                for i in range(runs)]
    if not aggregate:
        return outcomes, None
    run_dir = base / "aggregate"
    ctx, tools = load_context(target, toolset, seed, run_dir)
    aud, task = make_super(auditor, [o.report for o in outcomes], seed=seed, **(options or {}))
    config = {"target": target, "auditor": f"super:{auditor}", "toolset": [t["name"] for t in tools],
              "toolset_name": toolset, "aggregates": [str(o.run_dir) for o in outcomes]}
    res = run_audit(aud, ctx, tools, run_dir, config=config, budget=budget, task=task, seed=seed, progress=progress)
    s, err = score(run_dir)
    return outcomes, Outcome(run_dir, res.report, res.reason, s, err)
