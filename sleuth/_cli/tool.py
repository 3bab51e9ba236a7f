"""`sleuth tool list` and `sleuth tool NAME --args JSON`: the auditor's tools from the shell (tools/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from sleuth._cli.common import _fail, console
from tools.registry import TOOLSETS  # names the tool commands; tool modules keep heavy imports (torch) inside functions

tool_app = typer.Typer(help="The auditor's tools, callable from the shell.")


def _tool_ctx(name: str, target: str | None, datasets: str | None, run_dir: Path | None, seed: int):
    """Only what the tool needs (it says so itself): a grep must not wait for model weights to load."""
    # imported here: keeps `sleuth --help` fast (tools.context loads torch)
    from tools.context import load_context
    from tools.registry import REGISTRY

    needs = set(REGISTRY[name].needs)
    if needs & {"target", "internals", "sae"} and not target:
        raise ValueError(f"{name} talks to a model: pass --target (organism, NAME:control, URL or base model)")
    ctx = load_context(target, needs, seed=seed, run_dir=run_dir, datasets=datasets)
    if "datasets" in needs and not ctx.datasets:  # neither --datasets nor an organism target
        raise ValueError(f"{name} searches datasets: pass --target ORGANISM or --datasets (organism or folder)")
    return ctx


def _call_tool(name: str, args: str, target: str | None, datasets: str | None, run_dir: Path | None, seed: int,
               show_schema: bool) -> None:
    # imported here: keeps `sleuth --help` fast
    from pydantic import ValidationError

    from target_models.common.errors import UsageError
    from tools.registry import REGISTRY, call, format_validation

    t = REGISTRY.get(name)
    if t is None:
        _fail(f"tool {name!r} is not available in this installation")
    if show_schema:
        sys.stdout.write(json.dumps(t.schema(), indent=2) + "\n")
        return
    try:
        parsed = json.loads(args)
    except json.JSONDecodeError as e:
        _fail(f"--args is not valid JSON: {e}")
    if not isinstance(parsed, dict):
        _fail(f"--args must be a JSON object like '{{\"n\": 2}}', got {type(parsed).__name__}")
    try:  # bad arguments fail before a model is loaded for nothing
        t.check_args(parsed)
    except ValidationError as e:
        _fail(format_validation(name, e))
    except UsageError as e:
        _fail(str(e))
    try:
        ctx = _tool_ctx(name, target, datasets, run_dir, seed)
    except Exception as e:  # a bad --target must read as a usage error, not a traceback
        _fail(f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e))
    res = call(ctx, name, parsed)
    if res.error:
        _fail(res.error)
    sys.stdout.write(res.output.rstrip("\n") + "\n")


@tool_app.command("list")
def tool_list(toolset: str | None = typer.Option(None, help="only this toolset (chat, chat+grep, ..., all)")) -> None:
    """The tools (name, family, description); `sleuth tool NAME --schema` shows a tool's arguments."""
    # imported here: keeps `sleuth --help` fast
    from rich.markup import escape
    from rich.table import Table

    from tools.registry import REGISTRY

    if toolset is not None and toolset not in TOOLSETS:
        _fail(f"unknown toolset {toolset!r}; choose from {', '.join(TOOLSETS)}")
    names = TOOLSETS[toolset] if toolset else list(dict.fromkeys([*TOOLSETS["all"], *REGISTRY]))
    table = Table("name", "family", "description")
    for n in names:
        t = REGISTRY.get(n)
        table.add_row(n, t.family if t else "",
                      escape(" ".join(t.description.split())) if t else "[dim]not installed[/dim]")
    console.print(table)


def _tool_command(name: str):
    def run(
        args: str = typer.Option("{}", "--args", help="the tool's arguments as a JSON object"),
        target: str | None = typer.Option(None,
                                          help="organism, NAME:control|base, http(s)://server[#model] or base model"),
        datasets: str | None = typer.Option(None, help="datasets to search: organism or folder (default: --target's)"),
        run_dir: Path | None = typer.Option(None, help="run folder (memory tools keep notes and todos there)"),
        seed: int = typer.Option(0, help="sampling seed"),
        schema: bool = typer.Option(False, "--schema", help="print the tool's JSON schema and exit"),
    ) -> None:
        _call_tool(name, args, target, datasets, run_dir, seed, schema)

    run.__doc__ = f"Call the {name} tool (--schema shows its arguments)."
    return run


def _register_tool_commands() -> None:
    for n in dict.fromkeys(x for names in TOOLSETS.values() for x in names):
        tool_app.command(n)(_tool_command(n))


_register_tool_commands()
