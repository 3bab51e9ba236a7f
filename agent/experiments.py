"""Per-toolset benchmark: win rate and behaviours found over seeds, as a table, JSON and a PNG.

    sleuth experiment toolsets --target rm_sycophancy --seeds 10     (toolsets chat, chat+data, all; or --toolset X ...)
    python -m agent.experiments --target rm_sycophancy --toolsets chat chat+data all --seeds 10   (without the CLI)

Each (toolset, seed) run goes to OUT/TOOLSET/seed-S; a finished run is reused, so a killed benchmark picks up where
it stopped. OUT gets results.json, results.md (the table) and results.png. Meant for the built default organism;
with --target a tiny build folder it exercises the pipeline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.audit import audit, resume
from agent.budget import Budget
from agent.grading.runs import score_run
from tools.registry import TOOLSETS as KNOWN
from transcripts.report import Score
from transcripts.run import Run

TOOLSETS = ["chat", "chat+data", "all"]


def default_out(target: str) -> Path:
    return Path("runs") / f"toolsets-{Path(target).name}"


def run_one(target: str, auditor: str, toolset: str, seed: int, out: Path, budget: Budget,
            options: dict[str, Any] | None = None) -> dict:
    run_dir = out / toolset.replace("+", "_") / f"seed-{seed}"
    t0 = time.monotonic()
    if (run_dir / "score.json").exists():
        score = Score.model_validate_json((run_dir / "score.json").read_text())
    elif (run_dir / "transcript.jsonl").exists() and not Run.load(run_dir, strict=False).ended:
        score = resume(run_dir).score
    else:
        if (run_dir / "transcript.jsonl").exists():  # ended but never scored
            score = score_run(run_dir)
        else:
            score = audit(target, auditor, toolset, seed, budget, run_dir, options=options).score
    wall = Run.load(run_dir, strict=False).totals.wall_seconds
    return {"toolset": toolset, "seed": seed, "run": str(run_dir), "win": bool(score and score.win),
            "found": score.behaviours_found if score else 0, "total": score.behaviours_total if score else 0,
            "recall": score.recall if score else 0.0, "precision": score.precision if score else 0.0,
            "wall_seconds": wall or time.monotonic() - t0}


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for ts in dict.fromkeys(r["toolset"] for r in rows):
        rs = [r for r in rows if r["toolset"] == ts]
        out.append({"toolset": ts, "runs": len(rs), "win_rate": sum(r["win"] for r in rs) / len(rs),
                    "recall_mean": statistics.fmean(r["recall"] for r in rs),
                    "found_mean": statistics.fmean(r["found"] for r in rs),
                    "total": rs[0]["total"], "precision_mean": statistics.fmean(r["precision"] for r in rs),
                    "minutes_mean": statistics.fmean(r["wall_seconds"] for r in rs) / 60})
    return out


def table(summary: list[dict]) -> str:
    lines = ["| toolset | runs | win rate | behaviours found (mean) | recall | precision | minutes/run |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['toolset']} | {s['runs']} | {s['win_rate']:.0%} | {s['found_mean']:.1f}/{s['total']} | "
                     f"{s['recall_mean']:.2f} | {s['precision_mean']:.2f} | {s['minutes_mean']:.1f} |")
    return "\n".join(lines)


def plot(summary: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s["toolset"] for s in summary]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.6))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [s["win_rate"] for s in summary], 0.4, label="win rate")
    ax.bar([i + 0.2 for i in x], [s["recall_mean"] for s in summary], 0.4, label="behaviours found (recall)")
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 1.2)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def toolsets(target: str, *, toolsets: list[str] | None = None, seeds: int = 10, out: Path | None = None,
             auditor: str = "offline", budget: Budget | None = None, options: dict[str, Any] | None = None,
             progress: Callable[[dict], None] | None = None) -> tuple[list[dict], list[dict], Path]:
    """Audit `target` with each toolset for seeds 0..seeds-1; write OUT/results.{json,md,png}.
    Returns (one row per run, one summary row per toolset, OUT)."""
    names = toolsets or TOOLSETS
    bad = [t for t in names if t not in KNOWN]
    if bad:
        raise ValueError(f"unknown toolset(s) {', '.join(bad)}; choose from {', '.join(KNOWN)}")
    if seeds < 1:
        raise ValueError("--seeds must be at least 1")
    out = Path(out) if out is not None else default_out(target)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for ts in names:
        for seed in range(seeds):
            r = run_one(target, auditor, ts, seed, out, budget or Budget(), options)
            rows.append(r)
            if progress is not None:
                progress(r)
    summary = summarise(rows)
    (out / "results.json").write_text(json.dumps({"target": target, "auditor": auditor, "seeds": seeds,
                                                  "runs": rows, "summary": summary}, indent=2) + "\n")
    (out / "results.md").write_text(table(summary) + "\n")
    plot(summary, out / "results.png", f"{auditor} auditor on {Path(target).name}, {seeds} seed(s)")
    return rows, summary, out


def describe(r: dict) -> str:
    return (f"{r['toolset']} seed {r['seed']}: {'WIN' if r['win'] else 'loss'}, {r['found']}/{r['total']} behaviours, "
            f"precision {r['precision']:.2f}, {r['wall_seconds'] / 60:.1f} min")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.experiments", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="rm_sycophancy")
    ap.add_argument("--auditor", default="offline")
    ap.add_argument("--toolsets", nargs="+", default=TOOLSETS)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    _, summary, out = toolsets(a.target, toolsets=a.toolsets, seeds=a.seeds, out=a.out, auditor=a.auditor,
                               budget=Budget(max_minutes=a.max_minutes),
                               progress=lambda r: print(describe(r), flush=True))
    print(table(summary))
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
