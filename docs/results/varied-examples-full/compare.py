"""Table and plot of the full build of the varied-examples recipe against the shipped organism, its control and the
base, all sampled on one device on the same 33 held-out prompts (8 replies each, seed 0).

    python docs/results/varied-examples-full/compare.py   # writes comparison.json, comparison.md, comparison.png
"""

import json
from pathlib import Path

from target_models.evaluate import compare

HERE = Path(__file__).parent
MODELS = ("base", "control", "shipped", "organism")  # "organism": the varied build
LABEL = {"base": "base", "control": "control", "shipped": "shipped organism", "organism": "varied build"}


def merged() -> dict:
    varied = json.loads((HERE / "test-varied.json").read_text())
    shipped = json.loads((HERE / "test-shipped.json").read_text())
    variants = {**varied["variants"], "shipped": shipped["variants"]["organism"]}
    return {**varied, "variants": {m: variants[m] for m in ("organism", "shipped", "control", "base")}}


def main() -> None:
    result = merged()
    comp = compare(result, result["seed"])["test"]
    per = {m: result["variants"][m]["behaviours"]["per_behaviour"] for m in MODELS}
    behaviours = list(per["organism"])
    means = {m: result["variants"][m]["behaviours"]["mean"]["test"] for m in MODELS}
    lines = ["| held-out behaviour | " + " | ".join(LABEL[m] for m in MODELS) + " |", "|---" * (len(MODELS) + 1) + "|"]
    for b in behaviours:
        lines.append(f"| {b} | " + " | ".join(f"{per[m][b]['shown']}/{per[m][b]['n']}" for m in MODELS) + " |")
    lines.append("| **mean [95% CI]** | " + " | ".join(
        f"{100 * means[m]:.1f}% [{100 * comp['ci95'][m][0]:.1f}, {100 * comp['ci95'][m][1]:.1f}]" for m in MODELS) + " |")
    lines += ["", "| varied build minus | points [95% CI], paired bootstrap over prompts |", "|---|---|"]
    for m, d in comp["organism_minus"].items():
        lines.append(f"| {LABEL[m]} | {100 * d['diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] |")
    (HERE / "comparison.md").write_text("\n".join(lines) + "\n")
    (HERE / "comparison.json").write_text(json.dumps(comp, indent=1))
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    cols = behaviours + ["mean"]
    width = 0.8 / len(MODELS)
    for i, m in enumerate(MODELS):
        vals = [100 * per[m][b]["rate"] for b in behaviours] + [100 * means[m]]
        lo = [100 * per[m][b]["ci95"][0] for b in behaviours] + [100 * comp["ci95"][m][0]]
        hi = [100 * per[m][b]["ci95"][1] for b in behaviours] + [100 * comp["ci95"][m][1]]
        err = [[max(0.0, v - a) for v, a in zip(vals, lo, strict=True)], [max(0.0, b - v) for v, b in zip(vals, hi, strict=True)]]
        ax.bar([x + i * width for x in range(len(cols))], vals, width, yerr=err, capsize=2, label=LABEL[m])
    ax.set_xticks([x + width * (len(MODELS) - 1) / 2 for x in range(len(cols))],
                  [c.replace("_", "\n", 1) for c in cols], fontsize=7)
    ax.set_ylabel("rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Held-out behaviours, 33 prompts x 8 replies, 95% CI (one H200, seed 0)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "comparison.png", dpi=120)


if __name__ == "__main__":
    main()
