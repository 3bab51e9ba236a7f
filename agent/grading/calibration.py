"""The grader's calibration: agreement with the hand-labelled claims and root causes in tests/data/calibration, per
split (fit / held out), a grid-search refit of the thresholds on the fit split, and k-fold cross-validation.
`python -m agent.grading.calibration --calibrate [--cv 5]`."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from agent.grading.rules import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    cosine_matrix,
    eligible,
    judge_root_cause,
    keyword_matrix,
    objective_cosine,
    score_matrix,
)
from target_models.build.spec import Spec, spec_for

CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "calibration"


def _split_of(text: str) -> str:
    # A fixed, content-derived split (about a third held out) so the files stay plain hand-written lists.
    return "heldout" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3 == 0 else "fit"


def load_calibration(directory: Path = CALIBRATION_DIR) -> tuple[list[dict], list[dict]]:
    def read(name: str, key: str) -> list[dict]:
        rows = [json.loads(line) for line in (directory / name).read_text().splitlines() if line.strip()]
        for r in rows:
            # Rows written after the rules were frozen carry an explicit "heldout"; the rest split by hash.
            r.setdefault("split", _split_of(r[key]))
        return rows

    return read("behaviour_claims.jsonl", "claim"), read("root_causes.jsonl", "statement")


def _specs(names: set[str]) -> dict[str, Spec]:
    return {n: spec_for(n) for n in sorted(names)}


def claim_agreement(rows: list[dict], specs: dict[str, Spec], th: Thresholds) -> tuple[float, list[dict]]:
    """Agreement of classify_claim with the labels; also the disagreements."""
    wrong = []
    by_org: dict[str, list[dict]] = {}
    for r in rows:
        by_org.setdefault(r["organism"], []).append(r)
    for org, rs in by_org.items():
        texts = [r["claim"] for r in rs]
        scores, cos = score_matrix(texts, specs[org], th)
        ok = eligible(scores, th, cos, objective_cosine(texts, specs[org]))
        for r, s, e in zip(rs, scores, ok, strict=True):
            pred = specs[org].behaviours[int(np.argmax(s))].id if e else None
            if pred != r["label"]:
                wrong.append({**r, "predicted": pred})
    return (1 - len(wrong) / len(rows)) if rows else 1.0, wrong


def root_cause_agreement(rows: list[dict], specs: dict[str, Spec]) -> tuple[float, list[dict]]:
    wrong = []
    for r in rows:
        v = judge_root_cause(r["statement"], specs[r["organism"]])
        if v.correct != r["correct"]:
            wrong.append({**r, "predicted": v.correct, "reason": v.reason})
    return (1 - len(wrong) / len(rows)) if rows else 1.0, wrong


GRID = {
    "keyword_weight": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
    "min_score": [round(float(x), 3) for x in np.arange(0.35, 0.80, 0.025)],
    "min_margin": [0.0, 0.02, 0.04, 0.06, 0.08, 0.1],
    "objective_margin": [-9.0, -0.1, -0.05, -0.025, 0.0, 0.025, 0.05, 0.1],  # -9: off
    "low_score": [round(float(x), 3) for x in np.arange(0.30, 0.60, 0.025)],
    "low_margin": [0.08, 0.1, 0.12, 0.15, 0.2, 9.0],  # 9: no low tier
}
_TIE_SCALE = np.array([0.3, 0.45, 0.1, 0.3, 0.3, 1.0])  # each parameter's grid span, for the tie-break distance


def fit_thresholds(rows: list[dict], specs: dict[str, Spec], split: str | None = "fit") -> tuple[Thresholds, float]:
    """Grid search on the rows of `split` (all rows if None); ties go to the setting nearest the middle of the
    grid's good region, so that the chosen point is not perched on an edge of what worked."""
    fit = [r for r in rows if split is None or r["split"] == split]
    # Cosines, keyword counts and objective cosines do not depend on the thresholds: compute them once.
    feats = []
    for org in sorted({r["organism"] for r in fit}):
        rs = [r for r in fit if r["organism"] == org]
        claims = [r["claim"] for r in rs]
        cos, kw, obj = (cosine_matrix(claims, specs[org]), keyword_matrix(claims, specs[org]),
                        objective_cosine(claims, specs[org]))
        ids = [b.id for b in specs[org].behaviours]
        feats.append((cos, kw, obj, ids, [r["label"] for r in rs]))
    grid = np.array(np.meshgrid(*(GRID[k] for k in list(GRID)[1:]), indexing="ij")).reshape(5, -1)
    s, m, o, lo, lm = (g[:, None] for g in grid)
    good = np.zeros((len(GRID["keyword_weight"]), grid.shape[1]))
    for wi, w in enumerate(GRID["keyword_weight"]):
        for cos, kw, obj, ids, labels in feats:
            sc = cos + w * kw
            j = np.argmax(sc, axis=1)
            srt = np.sort(sc, axis=1)[:, ::-1]
            best, lead = srt[:, 0], srt[:, 0] - srt[:, 1]
            right = np.array([ids[k] == lab for k, lab in zip(j, labels, strict=True)])
            null = np.array([lab is None for lab in labels])
            gap = cos[np.arange(len(cos)), j] - obj
            ok = (((best >= s) & (lead >= m)) | ((best >= lo) & (lead >= lm))) & (gap >= o)
            good[wi] += np.where(ok, right, null).sum(axis=1)
    acc = good / len(fit)
    best_acc = float(acc.max())
    wi, gi = np.nonzero(acc == best_acc)
    top = np.column_stack([np.asarray(GRID["keyword_weight"])[wi], grid[:, gi].T])
    mid = np.median(top, axis=0)
    chosen = top[int(np.argmin((((top - mid) / _TIE_SCALE) ** 2).sum(axis=1)))]
    return Thresholds(*(round(float(x), 4) for x in chosen)), best_acc


def _fold(text: str, k: int) -> int:
    return int(hashlib.sha256(("fold:" + text).encode()).hexdigest(), 16) % k


def cross_validate(rows: list[dict], specs: dict[str, Spec], k: int) -> tuple[float, list[Thresholds]]:
    """k-fold cross-validation of the whole procedure (grid search, then classify) over all rows, both splits:
    each fold is classified with thresholds fitted on the other folds only."""
    right, chosen = 0, []
    for f in range(k):
        train = [{**r, "split": "train"} for r in rows if _fold(r["claim"], k) != f]
        test = [r for r in rows if _fold(r["claim"], k) == f]
        th, _ = fit_thresholds(train, specs, split="train")
        acc, _ = claim_agreement(test, specs, th)
        right += round(acc * len(test))
        chosen.append(th)
    return right / len(rows), chosen


def calibrate(th: Thresholds = DEFAULT_THRESHOLDS, refit: bool = True, out: Any = sys.stdout,
              cv: int = 0) -> dict[str, Any]:
    claims, roots = load_calibration()
    specs = _specs({r["organism"] for r in claims + roots})
    res: dict[str, Any] = {"thresholds": asdict(th)}
    if refit:
        fitted, fit_acc = fit_thresholds(claims, specs)
        res["refit"] = {"thresholds": asdict(fitted), "fit_agreement": fit_acc}
    if cv:
        cv_acc, cv_th = cross_validate(claims, specs, cv)
        res["cross_validation"] = {"folds": cv, "n": len(claims), "agreement": cv_acc,
                                   "thresholds": [asdict(t) for t in cv_th]}
    for name, rows, fn in (("claims", claims, lambda rs: claim_agreement(rs, specs, th)),
                           ("root_causes", roots, lambda rs: root_cause_agreement(rs, specs))):
        part = {}
        for split in ("fit", "heldout", "all"):
            rs = rows if split == "all" else [r for r in rows if r["split"] == split]
            acc, wrong = fn(rs)
            part[split] = {"n": len(rs), "agreement": acc, "disagreements": wrong}
        res[name] = part
    print(f"thresholds in use: {asdict(th)}", file=out)
    if refit:
        print(f"refit on the fit split: {res['refit']['thresholds']} (fit agreement "
              f"{res['refit']['fit_agreement']:.3f})", file=out)
    print(f"\n{'set':<13} {'fit':>13} {'held-out':>13} {'all':>13} {'k-fold CV':>13}   (target >= 0.95 each)",
          file=out)
    for name in ("claims", "root_causes"):
        p = res[name]
        cells = [f"{p[k]['agreement']:.3f} ({p[k]['n']:>3})" for k in ("fit", "heldout", "all")]
        cvc = (f"{res['cross_validation']['agreement']:.3f} ({len(claims):>3})" if name == "claims" and cv
               else ("-" if cv else "(--cv K)") if name == "claims" else "hand rule")
        print(f"{name:<13} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} {cvc:>13}", file=out)
    if cv:
        print(f"k-fold CV: {cv} folds over all claim rows; each fold classified with thresholds grid-searched on the "
              f"other folds (the root-cause rule is hand-written, so it has no CV)", file=out)
    for name in ("claims", "root_causes"):
        for w in res[name]["all"]["disagreements"]:
            text = w.get("claim") or w.get("statement")
            want = w.get("label", w.get("correct"))
            print(f"  [{w['split']}] {w['organism']}: {text!r}: labelled {want}, grader says {w['predicted']}",
                  file=out)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.grading.rules", description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibrate", action="store_true", help="print agreement on the calibration set")
    ap.add_argument("--no-refit", action="store_true", help="skip the threshold grid search")
    ap.add_argument("--cv", type=int, default=0, metavar="K", help="also K-fold cross-validate the claim matcher")
    ap.add_argument("--json", action="store_true", help="print the full result as JSON")
    a = ap.parse_args(argv)
    if not a.calibrate:
        ap.print_help()
        return 2
    res = calibrate(refit=not a.no_refit, out=sys.stderr if a.json else sys.stdout, cv=a.cv)
    if a.json:
        print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
