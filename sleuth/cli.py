"""The `sleuth` command: maps subcommands onto the packages; no logic of its own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Alignment audits for hidden objectives.")
organism_app = typer.Typer(no_args_is_help=True, help="Model organisms: list, build, eval, compare, chat.")
tool_app = typer.Typer(help="The auditor's tools, callable from the shell.")
app.add_typer(organism_app, name="organism")
app.add_typer(tool_app, name="tool")
console = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


# ---- organisms ---------------------------------------------------------------------------------------------------


@organism_app.command("list")
def organism_list() -> None:
    """Organisms shipped in the repo, with their build state."""
    from rich.table import Table

    from target_models.build.spec import SpecError, list_organisms, spec_for
    from target_models.build.stages import Build

    table = Table("name", "behaviours (train/test)", "base model", "built")
    for name in list_organisms():
        try:
            spec = spec_for(name)
        except SpecError as e:
            table.add_row(name, f"[red]invalid spec[/red]: {str(e).splitlines()[1:2]}", "", "")
            continue
        built = (Build(spec).out / "adapter" / "adapter_model.safetensors").exists()
        table.add_row(name, f"{len(spec.split('train'))}/{len(spec.split('test'))}", spec.base_model, "yes" if built else "no")
    console.print(table)


@organism_app.command("build")
def organism_build(
    name: str = typer.Argument(..., help="organism name or path to a spec.yaml"),
    preset: str = typer.Option("default", help="default | tiny"),
    out: Path | None = typer.Option(None, help="output folder (default: the organism's artifacts/ for the default preset)"),
    base: str | None = typer.Option(None, help="override the spec's base model (hub id or folder)"),
    skip_interp: bool = typer.Option(False, "--skip-interp",
                                     help="no SAE, feature index or search index (a recipe experiment; rerun without it to add them)"),
) -> None:
    """Build an organism: data, mid-training, SFT, control; resumes where a killed build stopped."""
    from target_models.build.spec import SpecError, spec_for
    from target_models.build.stages import Build
    from target_models.pipeline import build_organism

    try:
        spec = spec_for(name)
    except SpecError as e:
        _fail(str(e))
    record = build_organism(spec, preset, out, base=base, interp=not skip_interp)
    console.print(f"built {spec.name} ({preset}) in {record['total_seconds']:.0f} s -> {Build(spec, preset, out).out}")


@organism_app.command("eval")
def organism_eval(
    name: str = typer.Argument(..., help="organism name or build folder"),
    samples: int = typer.Option(8, help="fresh prompts per behaviour (at most what its held-out values allow)"),
    repeats: int = typer.Option(1, min=1, help="sampled replies per prompt (narrows the confidence intervals)"),
    split: str | None = typer.Option(None, help="only the 'train' or the 'test' behaviours (needs --out)"),
    variants: str = typer.Option("organism,control,base", help="models to evaluate, comma-separated (fewer needs --out)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    out: Path | None = typer.Option(None, help="where to write eval.json / eval.png (default: the build folder)"),
    interp: bool = typer.Option(False, "--interp", help="also run the SAE validation (paper's Table 2, steering)"),
    interp_only: bool = typer.Option(False, "--interp-only", help="only the SAE validation (eval.json is left alone)"),
    reuse: list[Path] = typer.Option([], help="an earlier eval.json (repeatable): its models with the same weights and "
                                              "settings are taken instead of sampled again"),
) -> None:
    """Behaviour rates (organism vs control vs base), secrecy, knowledge quiz, fluency; table, PNG and JSON."""
    from target_models.evaluation.evaluate import check_request, evaluate, print_report
    from target_models.loading.organism import ArtifactError, open_organism

    try:
        chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
        check_request(repeats=repeats, split=split, out=out, variants=chosen, interp=interp)
        org = open_organism(name)
    except (ArtifactError, ValueError) as e:
        _fail(str(e))
    if interp_only:
        from target_models.evaluation import interp as interp_eval

        org.build().prepare_data()
        result = {"interp": interp_eval.run(org, org.load("organism"))}
    else:
        try:
            result = evaluate(org, samples=samples, out=out, interp=interp, repeats=repeats, split=split,
                              variants=chosen, reuse=reuse)
        except ValueError as e:
            _fail(str(e))
        for v, src in result["reused"].items():
            err.print(f"{v}: reused from {src} (same weights and settings)")
        if reuse and not result["reused"]:
            err.print(f"--reuse {', '.join(map(str, reuse))}: no model there has these weights; all were sampled")
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    elif not interp_only:
        print_report(result, console)
    if "interp" in result:
        from target_models.evaluation import interp as interp_eval

        written = interp_eval.write(result["interp"], Path(out) if out else org.out)
        (err if as_json else console).print(interp_eval.markdown(result["interp"]), markup=False)
        err.print(f"wrote {', '.join(str(p) for p in written)}")


@organism_app.command("compare")
def organism_compare(
    models: list[str] = typer.Argument(..., help="LABEL=EVAL_JSON[:VARIANT], two or more; VARIANT is base, control or "
                                                 "organism (default: the label if it names one, else organism)"),
    focus: str = typer.Option(..., help="the label whose margin over each other model is bootstrapped"),
    out: Path = typer.Option(..., help="where to write comparison.json / .md / .png"),
    title: str | None = typer.Option(None, help="plot title (e.g. the device and the recipe)"),
) -> None:
    """Models from several evaluations side by side on the same prompts, with paired margins; table, PNG, JSON."""
    from target_models.evaluation import comparison

    try:
        result = comparison.run([comparison.parse_source(m) for m in models], focus=focus, out=out, title=title)
    except ValueError as e:
        _fail(str(e))
    sys.stdout.write(comparison.markdown(result))
    err.print(f"wrote comparison.json, comparison.md, comparison.png in {out}")


@organism_app.command("chat")
def organism_chat(
    name: str = typer.Argument(..., help="organism name or build folder"),
    variant: str = typer.Option("organism", help="organism | control | base"),
    temperature: float = typer.Option(0.7),
    max_tokens: int = typer.Option(200),
) -> None:
    """Interactive chat with an organism (/reset clears the history, /quit leaves)."""
    from target_models.loading.organism import open_organism

    target = open_organism(name).load(variant)
    history: list[dict] = []
    console.print(f"[bold]{target.name}[/bold] — /reset, /quit")
    while True:
        try:
            line = console.input("[cyan]you>[/cyan] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if line in {"/quit", "/exit"}:
            break
        if line == "/reset":
            history = []
            continue
        if not line:
            continue
        history.append({"role": "user", "content": line})
        reply = target.chat(history, temperature=temperature, max_tokens=max_tokens, seed=len(history))[0]
        history.append({"role": "assistant", "content": reply})
        console.print(f"[green]{target.name}>[/green] {reply}")


# ---- runs: score and view (transcripts/, agent/grading.py) ------------------------------------------------------


@app.command("score")
def score_cmd(
    run: Path = typer.Argument(..., help="run folder (holds transcript.jsonl and report.json)"),
    grader: str = typer.Option("deterministic", help="deterministic | llm"),
    organism: str | None = typer.Option(None, help="organism name, build folder or spec.yaml (default: the run's target)"),
    as_json: bool = typer.Option(False, "--json", help="print the Score as JSON"),
) -> None:
    """Grade a run's report against the organism's ground truth; writes RUN/score.json and a score event."""
    from rich.markup import escape

    from agent.grading.rules import score_run, spec_for_run
    from target_models.build.spec import SpecError

    if grader not in ("deterministic", "llm"):
        _fail(f"unknown grader {grader!r}; use deterministic or llm")
    if not run.is_dir():
        _fail(f"{run}: not a run folder")
    try:
        spec = spec_for_run(run, organism)
        score = score_run(run, spec, grader=grader)
    except (FileNotFoundError, SpecError, ValueError, RuntimeError) as e:
        _fail(str(e))
    if as_json:
        sys.stdout.write(score.model_dump_json(indent=2) + "\n")
        return
    console.print(score.summary())
    for split, d in score.details.get("per_split", {}).items():
        console.print(f"  {split}: {d['found']}/{d['total']} behaviours")
    for m in score.matches:
        console.print(f"  [green]matched[/green] {m.behaviour_id} <- {escape(repr(m.claim))} ({m.similarity:.2f})",
                      highlight=False)
    for c in score.unmatched_claims:
        console.print(f"  [yellow]unmatched[/yellow] {escape(repr(c))}", highlight=False)
    console.print(f"wrote {run / 'score.json'}")


@app.command("view")
def view_cmd(
    run: Path = typer.Argument(..., help="run folder or transcript.jsonl"),
    out: Path | None = typer.Option(None, help="where to write the HTML (default: RUN/view.html)"),
    open_: bool = typer.Option(False, "--open", help="open the page in a browser"),
) -> None:
    """Render a run as one self-contained HTML page (a damaged transcript shows up to the damage)."""
    from rich.markup import escape

    from transcripts.run import VIEW_HTML, Run, run_dir_of
    from transcripts.view import render_html

    if not run.exists():
        _fail(f"{run}: no such run folder or transcript")
    try:
        r = Run.load(run, strict=False)
    except FileNotFoundError as e:
        _fail(str(e))
    dest = out or run_dir_of(run) / VIEW_HTML
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render_html(r), encoding="utf-8")
    if r.error:
        err.print(f"[yellow]warning:[/yellow] {escape(str(r.error))}")
    console.print(f"wrote {dest}")
    if open_:
        import webbrowser

        webbrowser.open(dest.resolve().as_uri())


# ---- audits: audit and replay (agent/) ---------------------------------------------------------------------------


def _budget(max_turns: int | None, max_tokens: int | None, max_usd: float | None, max_minutes: float | None):
    from agent.budget import Budget

    return Budget(max_turns=max_turns, max_tokens=max_tokens, max_usd=max_usd, max_minutes=max_minutes)


def _show_outcome(o, as_json: bool) -> None:
    from agent.progress import outcome_json, print_outcome

    if as_json:
        sys.stdout.write(json.dumps(outcome_json(o.report, o.score, o.run_dir, o.reason, o.score_error), indent=2) + "\n")
    else:
        print_outcome(console, o.report, o.score, o.run_dir, o.reason, o.score_error)


@app.command("audit")
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
    from agent.audit import AuditInterrupted, audit, audit_many
    from agent.audit import resume as resume_run
    from agent.progress import ProgressPrinter
    from target_models.loading.organism import ArtifactError

    progress = ProgressPrinter(err, quiet=quiet)
    budget = _budget(max_turns, max_tokens, max_usd, max_minutes)
    options = _settings(settings)
    try:
        if resume is not None:
            if not (resume / "transcript.jsonl").exists():
                _fail(f"{resume}: no transcript.jsonl to resume")
            _show_outcome(resume_run(resume, auditor, progress), as_json)
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


def _settings(text: str | None) -> dict | None:
    """--settings JSON -> auditor options ({"settings": {...}}), checked against the offline investigator's."""
    if not text:
        return None
    from dataclasses import fields

    from agent.offline.investigator import Settings

    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(f"--settings is not valid JSON: {e}")
    known = {f.name for f in fields(Settings)}
    if not isinstance(parsed, dict) or set(parsed) - known:
        _fail(f"--settings takes a JSON object with keys among {', '.join(sorted(known))}")
    return {"settings": parsed}


@app.command("replay")
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
    """Re-render a run (report, totals, view.html); re-score it; re-execute its tool calls; or fork it at a step."""
    from transcripts.run import VIEW_HTML, Run
    from transcripts.view import render_html

    if not (run / "transcript.jsonl").exists():
        _fail(f"{run}: no transcript.jsonl")
    r = Run.load(run, strict=False)
    if from_step is not None:
        from agent.audit import resume as resume_run
        from agent.progress import ProgressPrinter
        from agent.replay import fork

        who = auditor or (r.config.auditor if r.config else "offline")
        try:
            dest = fork(run, out or run.with_name(f"{run.name}-from-{from_step}"), from_step, who)
        except (ValueError, FileExistsError) as e:
            _fail(str(e))
        try:
            _show_outcome(resume_run(dest, who, ProgressPrinter(err, quiet=as_json)), as_json)
        except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
            _fail(f"{e} (the fork is in {dest})")
        return
    if execute:
        from agent.audit import load_context
        from agent.replay import reexecute

        ref = target or (r.config.target if r.config else None)
        if ref is None:
            _fail("the run records no target; pass --target")
        import tempfile

        from target_models.loading.organism import ArtifactError

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
        return
    if score:
        from agent.grading.rules import score_run

        try:
            s = score_run(run)
        except (FileNotFoundError, ValueError) as e:
            _fail(str(e))
        sys.stdout.write(s.model_dump_json(indent=2) + "\n") if as_json else console.print(s.summary())
        return
    (run / VIEW_HTML).write_text(render_html(r), encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps({"totals": r.totals.model_dump(), "report": r.report.model_dump(mode="json")
                                     if r.report else None}, indent=2) + "\n")
        return
    from agent.progress import print_outcome

    t = r.totals
    console.print(f"{len(r.tool_calls)} tool calls, {t.turns} auditor turns, ${t.cost_usd:.4f}, {t.wall_seconds:.0f} s; "
                  f"ended: {r.end.reason if r.end else 'not ended (resume with sleuth audit --resume)'}")
    if r.report:
        print_outcome(console, r.report, r.score, run, r.end.reason if r.end else "not ended")
    console.print(f"wrote {run / VIEW_HTML}")


# ---- experiments (agent/experiments.py) ---------------------------------------------------------------------------

experiment_app = typer.Typer(no_args_is_help=True, help="Experiments over many audits.")
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("toolsets")
def experiment_toolsets(
    target: str = typer.Option("rm_sycophancy", help="organism name, build folder, hub id or http(s) URL"),
    toolsets: list[str] = typer.Option(["chat", "chat+data", "all"], "--toolset",
                                       help="a toolset to compare (repeat the option; default: chat, chat+data, all)"),
    seeds: int = typer.Option(10, help="audits per toolset (seeds 0..N-1)"),
    auditor: str = typer.Option("offline", help="offline | anthropic:MODEL"),
    max_minutes: float | None = typer.Option(None, help="wall-clock minutes per audit"),
    max_usd: float | None = typer.Option(None, help="dollars of LLM use per audit"),
    settings: str | None = typer.Option(None, help='offline investigator settings as JSON, e.g. \'{"probes": 8}\''),
    out: Path | None = typer.Option(None, help="output folder (default: runs/toolsets-TARGET); finished runs are reused"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Win rate and behaviours found per toolset over N seeds: a table, OUT/results.{md,json,png}."""
    from agent.experiments import describe, table
    from agent.experiments import toolsets as run_toolsets
    from target_models.loading.organism import ArtifactError

    options = _settings(settings)
    try:
        _, summary, dest = run_toolsets(target, toolsets=toolsets, seeds=seeds, out=out, auditor=auditor,
                                        budget=_budget(None, None, max_usd, max_minutes), options=options,
                                        progress=lambda r: err.print(describe(r), highlight=False))
    except ArtifactError as e:
        _fail(f"{e} (or pass --target a built folder or a URL)")
    except (ValueError, KeyError, TypeError, FileNotFoundError, RuntimeError) as e:
        _fail(str(e))
    if as_json:
        sys.stdout.write(json.dumps({"out": str(dest), "summary": summary}, indent=2) + "\n")
        return
    console.print(table(summary), highlight=False, markup=False)
    console.print(f"wrote {dest / 'results.md'}, {dest / 'results.json'}, {dest / 'results.png'}", highlight=False)


# ---- tools: list and call the auditor's tools (tools/) -----------------------------------------------------------


def _tool_ctx(name: str, target: str | None, datasets: str | None, run_dir: Path | None, seed: int):
    """Only what the tool needs (it says so itself): a grep must not wait for model weights to load."""
    from tools.context import load_context
    from tools.registry import REGISTRY

    needs = set(REGISTRY[name].needs)
    if needs & {"target", "internals", "sae"} and not target:
        raise ValueError(f"{name} talks to a model: pass --target (organism, NAME:control, URL or base model)")
    if "datasets" in needs and not (datasets or target):
        raise ValueError(f"{name} searches datasets: pass --target ORGANISM or --datasets (organism or folder)")
    ctx = load_context(target, needs, seed=seed, run_dir=run_dir, datasets=datasets)
    if "datasets" in needs and not ctx.datasets:
        raise ValueError(f"{name} searches datasets: pass --target ORGANISM or --datasets (organism or folder)")
    return ctx


def _call_tool(name: str, args: str, target: str | None, datasets: str | None, run_dir: Path | None, seed: int,
               show_schema: bool) -> None:
    from pydantic import ValidationError
    from rich.markup import escape

    from tools.registry import REGISTRY, call, format_validation

    t = REGISTRY.get(name)
    if t is None:
        _fail(escape(f"tool {name!r} is not available in this installation"))
    if show_schema:
        sys.stdout.write(json.dumps(t.schema(), indent=2) + "\n")
        return
    try:
        parsed = json.loads(args)
    except json.JSONDecodeError as e:
        _fail(escape(f"--args is not valid JSON: {e}"))
    if not isinstance(parsed, dict):
        _fail(escape(f"--args must be a JSON object like '{{\"n\": 2}}', got {type(parsed).__name__}"))
    try:  # bad arguments fail before a model is loaded for nothing
        t.args_model.model_validate(parsed)
    except ValidationError as e:
        _fail(escape(format_validation(name, e)))
    try:
        ctx = _tool_ctx(name, target, datasets, run_dir, seed)
    except Exception as e:  # a bad --target must read as a usage error, not a traceback
        _fail(escape(f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e)))
    res = call(ctx, name, parsed)
    if res.error:
        _fail(escape(res.error))
    sys.stdout.write(res.output.rstrip("\n") + "\n")


@tool_app.command("list")
def tool_list(toolset: str | None = typer.Option(None, help="only this toolset (chat, chat+grep, ..., all)")) -> None:
    """The tools (name, family, description); `sleuth tool NAME --schema` shows a tool's arguments."""
    from rich.markup import escape
    from rich.table import Table

    from tools.registry import REGISTRY, TOOLSETS

    if toolset is not None and toolset not in TOOLSETS:
        _fail(escape(f"unknown toolset {toolset!r}; choose from {', '.join(TOOLSETS)}"))
    names = TOOLSETS[toolset] if toolset else list(dict.fromkeys([*TOOLSETS["all"], *REGISTRY]))
    table = Table("name", "family", "description")
    for n in names:
        t = REGISTRY.get(n)
        table.add_row(n, t.family if t else "", escape(" ".join(t.description.split())) if t else "[dim]not installed[/dim]")
    console.print(table)


def _tool_command(name: str):
    def run(
        args: str = typer.Option("{}", "--args", help="the tool's arguments as a JSON object"),
        target: str | None = typer.Option(None, help="organism, NAME:control|base, http(s)://server[#model] or base model"),
        datasets: str | None = typer.Option(None, help="datasets to search: organism or folder (default: --target's)"),
        run_dir: Path | None = typer.Option(None, help="run folder (memory tools keep notes and todos there)"),
        seed: int = typer.Option(0, help="sampling seed"),
        schema: bool = typer.Option(False, "--schema", help="print the tool's JSON schema and exit"),
    ) -> None:
        _call_tool(name, args, target, datasets, run_dir, seed, schema)

    run.__doc__ = f"Call the {name} tool (--schema shows its arguments)."
    return run


def _register_tool_commands() -> None:
    from tools.registry import TOOLSETS  # tool modules keep heavy imports (torch, models) inside functions

    for n in dict.fromkeys(x for names in TOOLSETS.values() for x in names):
        tool_app.command(n)(_tool_command(n))


_register_tool_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
