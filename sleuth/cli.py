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
organism_app = typer.Typer(no_args_is_help=True, help="Model organisms: list, build, eval, chat.")
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

    from target_models.build import Build
    from target_models.spec import SpecError, list_organisms, spec_for

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
) -> None:
    """Build an organism: data, mid-training, SFT, control; resumes where a killed build stopped."""
    from target_models.build import Build
    from target_models.spec import SpecError, spec_for

    try:
        spec = spec_for(name)
    except SpecError as e:
        _fail(str(e))
    record = Build(spec, preset, out, base=base).run()
    console.print(f"built {spec.name} ({preset}) in {record['total_seconds']:.0f} s -> {Build(spec, preset, out).out}")


@organism_app.command("eval")
def organism_eval(
    name: str = typer.Argument(..., help="organism name or build folder"),
    samples: int = typer.Option(8, help="fresh prompts per behaviour"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    out: Path | None = typer.Option(None, help="where to write eval.json / eval.png (default: the build folder)"),
    interp: bool = typer.Option(False, "--interp", help="also run the SAE validation (paper's Table 2)"),
) -> None:
    """Behaviour rates (organism vs control vs base), secrecy, knowledge quiz, fluency; table, PNG and JSON."""
    from target_models.evaluate import evaluate, print_report
    from target_models.organism import ArtifactError, open_organism

    try:
        org = open_organism(name)
    except (ArtifactError, ValueError) as e:
        _fail(str(e))
    result = evaluate(org, samples=samples, out=out, interp=interp)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print_report(result, console)


@organism_app.command("chat")
def organism_chat(
    name: str = typer.Argument(..., help="organism name or build folder"),
    variant: str = typer.Option("organism", help="organism | control | base"),
    temperature: float = typer.Option(0.7),
    max_tokens: int = typer.Option(200),
) -> None:
    """Interactive chat with an organism (/reset clears the history, /quit leaves)."""
    from target_models.organism import open_organism

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
