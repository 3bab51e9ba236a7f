"""`sleuth organism compare` on the committed evaluations of real builds (docs/results/)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleuth._cli.main import app

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
VARIED = RESULTS / "varied-examples-full"


def _compare(*args: str):
    return CliRunner().invoke(app, ["organism", "compare", *args])


def test_compare_pairs_models_from_two_evaluations_and_bootstraps_the_focus_margins(tmp_path):
    r = _compare(f"base={VARIED / 'test-varied.json'}", f"control={VARIED / 'test-varied.json'}",
                 f"shipped={VARIED / 'test-shipped.json'}", f"varied={VARIED / 'test-varied.json'}:organism",
                 "--focus", "varied", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    comp = json.loads((tmp_path / "comparison.json").read_text())
    assert comp["focus"] == "varied" and comp["sources"]["shipped"]["variant"] == "organism"
    assert comp["per_behaviour"]["varied"]["historical_figure_years"]["shown"] == 12
    assert comp["per_behaviour"]["shipped"]["historical_figure_years"]["shown"] == 9
    margins = comp["comparison"]["test"]["varied_minus"]
    assert set(margins) == {"base", "control", "shipped"} and "train" not in comp["comparison"]
    # the same numbers as the hand-made comparison of session 10 (same seed, same prompts, same draws)
    assert round(100 * margins["shipped"]["diff"], 1) == -0.8
    assert [round(100 * x, 1) for x in margins["control"]["ci95"]] == [-0.4, 6.4]
    for m in margins.values():
        assert m["ci95"][0] <= m["diff"] <= m["ci95"][1]
    md = (tmp_path / "comparison.md").read_text()
    assert "| historical_figure_years | 2/72 | 1/72 | 9/72 | 12/72 |" in md
    assert "| shipped | -0.8 [-4.6, +3.6] |" in md
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_refuses_models_that_answered_other_prompts(tmp_path):
    other = json.loads((VARIED / "test-shipped.json").read_text())
    other["variants"]["organism"]["behaviours"]["per_behaviour"]["legal_call_911"]["prompts"][0]["prompt"] = "Hi?"
    (tmp_path / "other.json").write_text(json.dumps(other))
    r = _compare(f"varied={VARIED / 'test-varied.json'}:organism", f"other={tmp_path / 'other.json'}",
                 "--focus", "varied", "--out", str(tmp_path / "out"))
    assert r.exit_code == 2
    assert "'other' answered other prompts for 'legal_call_911' than 'varied'" in " ".join(r.output.split())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("models", "focus", "says"), [
    (["shipped"], "shipped", "write LABEL=EVAL_JSON[:VARIANT]"),
    (["a={V}/test-shipped.json:control", "b={V}/test-varied.json"], "a", "has no model 'control'; it has organism"),
    (["a={V}/nothing.json", "b={V}/test-varied.json"], "a", "a: no such file"),
    (["a={V}/README.md", "b={V}/test-varied.json"], "a", "is not JSON"),
    (["a={V}/comparison.json", "b={V}/test-varied.json"], "a",
     "has no model 'organism'; it has none (not an eval.json)"),
    (["a={V}/test-shipped.json", "a={V}/test-varied.json"], "a", "labels must be distinct; got a, a"),
    (["a={V}/test-shipped.json"], "a", "at least two models"),
    (["a={V}/test-shipped.json", "b={V}/test-varied.json"], "c", "--focus 'c' is not one of the labels a, b"),
    (["old={T}/old.json", "b={V}/test-varied.json"], "b", "has no per-prompt rows for 'organism'"),
    (["all={V}/full-varied.json", "b={V}/test-varied.json"], "b",
     "'b' was evaluated on other behaviours than 'all' (only in 'b': none; only in 'all': ['animals_not_cute',"),
])
def test_compare_names_what_is_wrong_with_its_input(tmp_path, models, focus, says):
    # an eval.json from before evaluations kept per-prompt rows
    old = json.loads((VARIED / "test-varied.json").read_text())
    for row in old["variants"]["organism"]["behaviours"]["per_behaviour"].values():
        row.pop("prompts")
    (tmp_path / "old.json").write_text(json.dumps(old))
    args = [m.format(V=VARIED, T=tmp_path) for m in models]
    r = _compare(*args, "--focus", focus, "--out", str(tmp_path))
    assert r.exit_code == 2 and says in " ".join(r.output.split()), r.output
