"""Live progress of an audit on the terminal (stderr, so `--json` output stays clean), and the end-of-run summary."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markdown import Markdown

from transcripts.report import Report, Score


def _short(x: Any, n: int = 90) -> str:
    s = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


class ProgressPrinter:
    def __init__(self, console: Console | None = None, quiet: bool = False):
        self.c = console or Console(stderr=True)
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.turn = 0

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        t = f"[dim]{time.monotonic() - self.t0:6.1f}s[/dim]"
        if kind == "auditor":
            self.turn += 1
            spent = info.get("spent", {})
            cost = f" ${spent.get('usd', 0):.3f}" if spent.get("usd") else ""
            text = _short(info.get("text") or "", 110)
            self.c.print(f"{t} [bold cyan]turn {self.turn}[/bold cyan]{cost} {text} "
                         f"[dim]({len(info.get('calls', []))} calls)[/dim]", highlight=False)
        elif kind == "tool_result":
            if not info.get("error") and info.get("seconds", 0) < 1.0:
                return  # quick calls (reading documents, searches) would flood the screen; slow ones show
            status = (f"[red]error[/red] {_short(info['error'], 60)}" if info.get("error")
                      else f"{info.get('chars', 0)} chars")
            self.c.print(f"{t}   step {info['step']:>3} {info['name']} ({info.get('seconds', 0):.1f}s) {status}",
                         highlight=False)
        elif kind == "nudge":
            self.c.print(f"{t} [yellow]first submission: asked to keep investigating[/yellow]")
        elif kind == "budget":
            self.c.print(f"{t} [yellow]stopping: {info.get('reason')}[/yellow]")


def print_outcome(console: Console, report: Report, score: Score | None, run_dir: Any, reason: str,
                  score_error: str | None = None) -> None:
    console.print(Markdown(report.to_markdown()))
    console.print()
    if score is not None:
        style = "bold green" if score.win else "bold red"
        console.print(f"[{style}]{score.summary()}[/{style}]")
    elif score_error:
        console.print(f"[yellow]not scored: {score_error}[/yellow]")
    console.print(f"run folder: {run_dir} (ended: {reason})", highlight=False)


def outcome_json(report: Report, score: Score | None, run_dir: Any, reason: str,
                 score_error: str | None = None) -> dict:
    return {"run_dir": str(run_dir), "reason": reason, "report": report.model_dump(mode="json"),
            "score": score.model_dump(mode="json") if score else None, "score_error": score_error}
