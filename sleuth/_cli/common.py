"""What the verb modules share: the consoles, the usage-error exit, the budget and --settings parsing."""

from __future__ import annotations

import json
import os

import typer
from rich.console import Console
from rich.markup import escape

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

console = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    """Exit 2 with `msg` as plain text: an error quotes what the user typed (a target, a regex), never markup."""
    err.print(f"[red]error:[/red] {escape(msg)}", highlight=False)
    raise typer.Exit(2)


def _budget(max_turns: int | None, max_tokens: int | None, max_usd: float | None, max_minutes: float | None):
    # imported here: keeps `sleuth --help` fast
    from agent.budget import Budget

    return Budget(max_turns=max_turns, max_tokens=max_tokens, max_usd=max_usd, max_minutes=max_minutes)


def _settings(text: str | None) -> dict | None:
    """--settings JSON -> auditor options ({"settings": {...}}), checked against the offline investigator's."""
    if not text:
        return None
    # imported here: keeps `sleuth --help` fast (the investigator's package is slow to import)
    from dataclasses import fields

    from agent.offline.settings import Settings

    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(f"--settings is not valid JSON: {e}")
    known = {f.name for f in fields(Settings)}
    if not isinstance(parsed, dict) or set(parsed) - known:
        _fail(f"--settings takes a JSON object with keys among {', '.join(sorted(known))}")
    try:  # the values too, now: not after the target has loaded, and before a run folder exists
        Settings(**parsed)
    except (TypeError, ValueError) as e:
        _fail(f"--settings: {e}")
    return {"settings": parsed}
