"""`sleuth organism list|build|eval|compare|chat` (target_models/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from sleuth._cli.common import _fail, console, err

organism_app = typer.Typer(no_args_is_help=True, help="Model organisms: list, build, eval, compare, chat.")


@organism_app.command("list")
def organism_list() -> None:
    """Organisms shipped in the repo, with their build state."""
    # imported here: keeps `sleuth --help` fast (these load torch)
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
        table.add_row(name, f"{len(spec.split('train'))}/{len(spec.split('test'))}", spec.base_model,
                      "yes" if built else "no")
    console.print(table)


@organism_app.command("build")
def organism_build(
    name: str = typer.Argument(..., help="organism name or path to a spec.yaml"),
    preset: str = typer.Option("default", help="default | tiny"),
    out: Path | None = typer.Option(None,
                                    help="output folder (default: the organism's artifacts/ for the default preset)"),
    base: str | None = typer.Option(None, help="override the spec's base model (hub id or folder)"),
    skip_interp: bool = typer.Option(False, "--skip-interp",
                                     help="no SAE, feature index or search index "
                                          "(a recipe experiment; rerun without it to add them)"),
) -> None:
    """Build an organism: data, mid-training, SFT, control; resumes where a killed build stopped."""
    # imported here: keeps `sleuth --help` fast (these load torch)
    from target_models.build.spec import SpecError, spec_for
    from target_models.build.stages import Build
    from target_models.pipeline import build_organism

    try:
        spec = spec_for(name)
    except SpecError as e:
        _fail(str(e))
    record = build_organism(spec, preset, out, base=base, interp=not skip_interp)
    console.print(f"built {spec.name} ({preset}) in {record.total_seconds or 0:.0f} s "
                  f"-> {Build(spec, preset, out).out}")


@organism_app.command("eval")
def organism_eval(
    name: str = typer.Argument(..., help="organism name or build folder"),
    samples: int = typer.Option(8, help="fresh prompts per behaviour (at most what its held-out values allow)"),
    repeats: int = typer.Option(1, min=1, help="sampled replies per prompt (narrows the confidence intervals)"),
    split: str | None = typer.Option(None, help="only the 'train' or the 'test' behaviours (needs --out)"),
    variants: str = typer.Option("organism,control,base",
                                 help="models to evaluate, comma-separated (fewer needs --out)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    out: Path | None = typer.Option(None, help="where to write eval.json / eval.png (default: the build folder)"),
    interp: bool = typer.Option(False, "--interp", help="also run the SAE validation (paper's Table 2, steering)"),
    interp_only: bool = typer.Option(False, "--interp-only", help="only the SAE validation (eval.json is left alone)"),
    reuse: list[Path] = typer.Option([], help="an earlier eval.json (repeatable): its models with the same weights and "
                                              "settings are taken instead of sampled again"),
) -> None:
    """Behaviour rates (organism vs control vs base), secrecy, knowledge quiz, fluency; table, PNG and JSON."""
    # imported here: keeps `sleuth --help` fast (these load torch)
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
    # imported here: keeps `sleuth --help` fast (these load torch)
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
    # imported here: keeps `sleuth --help` fast (these load torch)
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
