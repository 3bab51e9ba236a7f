"""`sleuth experiment ...`: experiments over many audits (agent/experiments.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from sleuth._cli.common import _budget, _fail, _settings, console, err

experiment_app = typer.Typer(no_args_is_help=True, help="Experiments over many audits.")


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
    out: Path | None = typer.Option(None,
                                    help="output folder (default: runs/toolsets-TARGET); finished runs are reused"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Win rate and behaviours found per toolset over N seeds: a table, OUT/results.{md,json,png}."""
    # imported here: keeps `sleuth --help` fast (these load torch)
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
