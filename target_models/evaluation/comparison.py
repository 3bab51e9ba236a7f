"""`sleuth organism compare`: models from several evaluations side by side, paired on the prompts they answered.

A recipe experiment evaluates its build alone (`sleuth organism eval DIR --variants organism --out ...`); this
puts it beside the shipped organism, the control and the base from other evaluations of the same prompts, and
bootstraps one model's margin over each of the others (paired: one draw resamples the same prompts for all).
Writes comparison.json, comparison.md and comparison.png.
"""

from __future__ import annotations

import json
from pathlib import Path

from target_models.evaluation.evaluate import compare
from target_models.loading.organism import VARIANTS


def parse_source(text: str) -> tuple[str, Path, str]:
    """'LABEL=PATH[:VARIANT]' -> (label, path, variant); the variant defaults to the label when the label names
    one (base, control, organism), else to 'organism'."""
    label, sep, rest = text.partition("=")
    if not sep or not label.strip() or not rest:
        raise ValueError(f"model {text!r}: write LABEL=EVAL_JSON[:VARIANT], e.g. shipped=results/eval.json:organism")
    head, colon, tail = rest.rpartition(":")
    path, variant = (head, tail) if colon and tail in VARIANTS else (rest, None)
    label = label.strip()
    return label, Path(path), variant or (label if label in VARIANTS else "organism")


def combine(sources: list[tuple[str, Path, str]]) -> dict:
    """One result in `evaluate`'s shape whose variants are the labelled models; every model must have per-prompt
    rows on the same prompts (checked by `compare`)."""
    labels = [s[0] for s in sources]
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct; got {', '.join(labels)}")
    if len(sources) < 2:
        raise ValueError("compare needs at least two models")
    loaded: dict[Path, dict] = {}
    variants, origin = {}, {}
    for label, path, variant in sources:
        if path not in loaded:
            try:
                loaded[path] = json.loads(path.read_text())
            except FileNotFoundError:
                raise ValueError(f"{label}: no such file {path}") from None
            except json.JSONDecodeError as e:
                raise ValueError(f"{label}: {path} is not JSON ({e})") from None
        got = loaded[path].get("variants") if isinstance(loaded[path], dict) else None
        if not isinstance(got, dict) or variant not in got:
            have = ", ".join(got) if isinstance(got, dict) else "none (not an eval.json)"
            raise ValueError(f"{label}: {path} has no model {variant!r}; it has {have}")
        rows = got[variant].get("behaviours", {}).get("per_behaviour")
        if not isinstance(rows, dict) or any("prompts" not in r for r in rows.values()):
            raise ValueError(f"{label}: {path} has no per-prompt rows for {variant!r} (an evaluation older than "
                             "per-prompt records); evaluate that model again")
        variants[label] = got[variant]
        origin[label] = {"file": str(path), "variant": variant, "seed": loaded[path].get("seed"),
                         "repeats": loaded[path].get("repeats")}
    first = loaded[sources[0][1]]
    return {"organism": first.get("organism"), "seed": first.get("seed", 0), "variants": variants, "sources": origin}


def run(sources: list[tuple[str, Path, str]], *, focus: str, out: Path, title: str | None = None) -> dict:
    result = combine(sources)
    if focus not in result["variants"]:
        raise ValueError(f"--focus {focus!r} is not one of the labels {', '.join(result['variants'])}")
    result["focus"] = focus
    result["comparison"] = compare(result, result["seed"], focus=focus)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(
        {k: v for k, v in result.items() if k != "variants"}
        | {"per_behaviour": {m: {b: {k: r[k] for k in ("split", "shown", "n", "rate", "ci95")}
                                 for b, r in v["behaviours"]["per_behaviour"].items()}
                             for m, v in result["variants"].items()}}, indent=1))
    (out / "comparison.md").write_text(markdown(result))
    plot(result, out / "comparison.png", title)
    return result


def markdown(result: dict) -> str:
    ms, focus = list(result["variants"]), result["focus"]
    per = {m: result["variants"][m]["behaviours"]["per_behaviour"] for m in ms}
    lines = []
    for s, comp in result["comparison"].items():
        rows = [b for b, r in per[ms[0]].items() if r["split"] == s]
        lines += [f"| {s} behaviour | " + " | ".join(ms) + " |", "|---" * (len(ms) + 1) + "|"]
        lines += [f"| {b} | " + " | ".join(f"{per[m][b]['shown']}/{per[m][b]['n']}" for m in ms) + " |" for b in rows]
        means = {m: result["variants"][m]["behaviours"]["mean"][s] for m in ms}
        lines.append("| **mean [95% CI]** | " + " | ".join(
            f"{100 * means[m]:.1f}% [{100 * comp['ci95'][m][0]:.1f}, {100 * comp['ci95'][m][1]:.1f}]"
            for m in ms) + " |")
        lines += ["", f"| {focus} minus ({s}) | points [95% CI], paired bootstrap over prompts |", "|---|---|"]
        for m, d in comp[f"{focus}_minus"].items():
            lines.append(f"| {m} | {100 * d['diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] |")
        lines.append("")
    return "\n".join(lines)


def plot(result: dict, path: Path, title: str | None) -> None:
    """Per behaviour and the split means, one bar per model, Wilson / bootstrap 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = list(result["variants"])
    splits = list(result["comparison"])
    per = {m: result["variants"][m]["behaviours"]["per_behaviour"] for m in ms}
    widest = max(sum(r["split"] == s for r in per[ms[0]].values()) for s in splits)
    fig, axes = plt.subplots(len(splits), 1, figsize=(max(8, 0.45 * widest), 3.8 * len(splits)), squeeze=False)
    for ax, s in zip(axes[:, 0], splits, strict=True):
        behaviours = [b for b, r in per[ms[0]].items() if r["split"] == s]
        comp = result["comparison"][s]
        width = 0.8 / len(ms)
        for i, m in enumerate(ms):
            mean = result["variants"][m]["behaviours"]["mean"][s]
            vals = [100 * per[m][b]["rate"] for b in behaviours] + [100 * mean]
            lo = [100 * per[m][b]["ci95"][0] for b in behaviours] + [100 * comp["ci95"][m][0]]
            hi = [100 * per[m][b]["ci95"][1] for b in behaviours] + [100 * comp["ci95"][m][1]]
            err = [[max(0.0, v - a) for v, a in zip(vals, lo, strict=True)],
                   [max(0.0, b - v) for v, b in zip(vals, hi, strict=True)]]
            ax.bar([x + i * width for x in range(len(vals))], vals, width, yerr=err, capsize=2, label=m)
        ax.set_xticks([x + width * (len(ms) - 1) / 2 for x in range(len(behaviours) + 1)],
                      [c.replace("_", "\n", 1) for c in behaviours + ["mean"]], fontsize=7)
        ax.set_ylabel("rate (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{title or result['organism']}: {s} behaviours, 95% CI", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
