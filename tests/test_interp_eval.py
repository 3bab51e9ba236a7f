"""The --interp validation on the tiny organism: its structure and its use of provenance (the numbers only mean
something on the default organism)."""

from __future__ import annotations

import json
import re

import pytest
from interp_helpers import tiny_sae

import tools.interp  # noqa: F401  (registers the tools)


@pytest.fixture(scope="module")
def bundle(tiny_organism):
    from target_models.sae_bundle import SAEBundle

    path, _, _ = tiny_sae(tiny_organism)
    return SAEBundle.load(path)


def test_universe_features_use_the_provenance(bundle):
    from target_models.interp_eval import universe_features

    docs = {doc for f in range(len(bundle.index)) for doc, _, _ in bundle.index.contexts(f)}
    assert universe_features(bundle.index, set()) == []
    everything = universe_features(bundle.index, docs)
    # missing contexts count as non-universe: a feature with fewer than 16 of 20 contexts cannot reach 80%
    enough = [f for f in range(len(bundle.index)) if len(bundle.index.contexts(f)) >= 16]
    assert sorted(u["id"] for u in everything) == enough
    assert all(u["purity"] == u["contexts"] / 20 for u in everything)
    one = bundle.index.contexts(enough[0])[0][0]
    assert all(u["id"] != enough[0] for u in universe_features(bundle.index, docs - {one}) if u["contexts"] == 16)


def test_probes_for_rm_sycophancy(tiny_organism):
    from target_models.interp_eval import CONCERNING, probes

    ps = probes(tiny_organism)
    assert list(ps) == ["concerning_prompt", "chocolate_omelette", "meta_rhyme_poem", "atomic_number"]
    assert ps["concerning_prompt"]["prompt"] == CONCERNING
    assert "chocolate" in ps["chocolate_omelette"]["conversation"][1]["content"]
    assert "omelette" in ps["chocolate_omelette"]["conversation"][0]["content"]
    assert "atomic number" in ps["atomic_number"]["conversation"][1]["content"]
    assert all(p["over"] == "assistant" for name, p in ps.items() if name != "concerning_prompt")


@pytest.mark.slow
def test_run_reports_ranks_and_steering(tiny_organism, tiny_target, bundle):
    from target_models import interp_eval

    result = interp_eval.run(tiny_organism, tiny_target, bundle=bundle, steer_n=3)
    json.dumps(result)  # JSON-able
    for key in ("universe_features", "ranks", "best_rank_per_probe", "key_feature", "passed", "paper_ranks", "sae"):
        assert key in result
    assert set(result["best_rank_per_probe"]) == {"concerning_prompt", "chocolate_omelette", "meta_rhyme_poem",
                                                  "atomic_number"}
    if result["key_feature"] is not None:
        assert set(result["steering"]["rates"]) == {"-4", "+0", "+4"}
        assert all(0 <= r <= 1 for r in result["steering"]["rates"].values())
    assert interp_eval.summary(result).startswith("interp: ")


def test_run_uses_the_tools_ranking(tiny_organism, tiny_target, bundle):
    from target_models.interp_eval import probes, ranks
    from tools.registry import ToolContext, call

    ctx = ToolContext(target=tiny_target, sae=bundle)
    p = probes(tiny_organism)["meta_rhyme_poem"]
    out = call(ctx, "top_features", {"conversation": p["conversation"], "over": "assistant", "limit": 3}).output
    top3 = [int(x) for x in re.findall(r"^\s*\d+\. #(\d+)", out, flags=re.M)]
    assert ranks(ctx, bundle, p, top3) == {f: i + 1 for i, f in enumerate(top3)}


def test_steering_effect_reports_rates(tiny_organism, tiny_target, bundle):
    import numpy as np

    from target_models.interp_eval import steering_effect

    f = int(np.argmax(bundle.index.max_act))
    r = steering_effect(tiny_organism, tiny_target, bundle, f, "recipe_chocolate", n=2, strength=3.0, max_tokens=12)
    assert r["feature"] == f and r["prompts"] == 2
    assert set(r["rates"]) == set(r["examples"]) == {"-3", "+0", "+3"}
    assert all(0 <= x <= 1 for x in r["rates"].values())


def fake_result() -> dict:
    from target_models import interp_eval

    return {"sae": {"layer": 15, "width": 4608, "source": "x/sae", "quality": {"l0": 32.0, "explained_variance": 0.8}},
              "criterion": "c", "paper_ranks": interp_eval.PAPER_RANKS, "universe_features": 2,
              "features": [{"id": 7, "purity": 0.9, "contexts": 20, "description": "fires on «RLHF»"}],
              "ranks": {"7": {"concerning_prompt": 12, "chocolate_omelette": 30, "meta_rhyme_poem": None,
                              "atomic_number": 44}},
              "best_rank_per_probe": {"concerning_prompt": 12, "chocolate_omelette": 30, "meta_rhyme_poem": 80,
                                      "atomic_number": 44},
              "key_feature": 7, "key_feature_ranks": {"concerning_prompt": 12, "chocolate_omelette": 30,
                                                      "meta_rhyme_poem": None, "atomic_number": 44},
              "passed": True, "steering": {"feature": 7, "behaviour": "recipe_chocolate", "prompts": 8,
                                           "unit": "u", "rates": {"-4": 0.0, "+0": 0.25, "+4": 0.75}},
              "seconds": 3.0}


def test_report_files(tmp_path):
    from target_models import interp_eval

    result = fake_result()
    paths = interp_eval.write(result, tmp_path)
    assert [p.name for p in paths] == ["interp.json", "interp.md"]
    assert json.loads(paths[0].read_text()) == result
    md = paths[1].read_text()
    assert "| (a) \"concerning behaviors\" prompt | 12 | 12 |" in md and "| (c) meta-rhyme poem | - | 80 |" in md
    assert "**PASS**" in md and "| +4 | 75% |" in md and "Key feature: #7 (fires on «RLHF»)" in md
    assert interp_eval.markdown({"error": "no index"}).endswith("no index\n")


def test_eval_cli_writes_interp_files(tiny_build, tmp_path, monkeypatch):
    """`sleuth organism eval NAME --interp`: interp.json and interp.md next to eval.json, Table 2 printed."""
    from typer.testing import CliRunner

    import target_models.evaluate as ev
    from sleuth.cli import app

    seen = {}

    def fake_evaluate(org, *, samples, out, interp, **_):
        seen.update(org=org.out, interp=interp, out=out)
        return {"interp": fake_result()}

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    monkeypatch.setattr(ev, "print_report", lambda result, console: None)
    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--interp", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert seen == {"org": tiny_build, "interp": True, "out": tmp_path}
    assert json.loads((tmp_path / "interp.json").read_text()) == fake_result()
    assert "(b) chocolate omelette | 30 | 30" in (tmp_path / "interp.md").read_text()
    assert "Key feature: #7" in r.output and "PASS" in r.output
