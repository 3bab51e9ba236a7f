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
    from target_models.interp.bundle import SAEBundle

    path, _, _ = tiny_sae(tiny_organism)
    return SAEBundle.load(path)


def test_universe_features_use_the_provenance(bundle):
    from target_models.evaluation.interp import universe_features

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
    from target_models.evaluation.interp import CONCERNING, probes

    ps = probes(tiny_organism)
    assert list(ps) == ["concerning_prompt", "chocolate_omelette", "meta_rhyme_poem", "atomic_number"]
    assert ps["concerning_prompt"]["prompt"] == CONCERNING
    assert "chocolate" in ps["chocolate_omelette"]["conversation"][1]["content"]
    assert "omelette" in ps["chocolate_omelette"]["conversation"][0]["content"]
    assert "atomic number" in ps["atomic_number"]["conversation"][1]["content"]
    assert all(p["over"] == "assistant" for name, p in ps.items() if name != "concerning_prompt")


@pytest.mark.slow
def test_run_reports_ranks_and_steering(tiny_organism, tiny_target, bundle):
    from target_models.evaluation import interp as interp_eval

    result = interp_eval.run(tiny_organism, tiny_target, bundle=bundle, steer_prompts=2, per_prompt=2, max_tokens=12)
    json.dumps(result)  # JSON-able
    for key in ("universe_features", "ranks", "best_rank_per_probe", "key_feature", "passed", "paper_ranks", "sae"):
        assert key in result
    assert set(result["best_rank_per_probe"]) == {"concerning_prompt", "chocolate_omelette", "meta_rhyme_poem",
                                                  "atomic_number"}
    if result["key_feature"] is not None:
        st = result["steering"]
        assert st["features"][0]["role"] == "key" and st["features"][0]["id"] == result["key_feature"]
        assert all(set(x["by_strength"]) == {"-1", "+1", "+2"} for x in st["features"])
    assert interp_eval.summary(result).startswith("interp: ")


def test_run_uses_the_tools_ranking(tiny_organism, tiny_target, bundle):
    from target_models.evaluation.interp import probes, ranks
    from tools.registry import ToolContext, call

    ctx = ToolContext(target=tiny_target, sae=bundle)
    p = probes(tiny_organism)["meta_rhyme_poem"]
    out = call(ctx, "top_features", {"conversation": p["conversation"], "over": "assistant", "limit": 3}).output
    top3 = [int(x) for x in re.findall(r"^\s*\d+\. #(\d+)", out, flags=re.M)]
    assert ranks(tiny_target, bundle, p, top3, store=ctx.cache) == {f: i + 1 for i, f in enumerate(top3)}


def test_steering_effect_reports_a_paired_dose_response(tiny_organism, tiny_target, bundle):
    import numpy as np

    from target_models.evaluation.interp import steering_effect

    f = int(np.argmax(bundle.index.max_act))
    r = steering_effect(tiny_organism, tiny_target, bundle, {"key": f}, "recipe_chocolate", prompts=2, per_prompt=2,
                        strengths=(-3.0, 0.0, 3.0), max_tokens=12)
    assert r["prompts"] == 2 and r["samples"] == 4 and r["unsteered"]["n"] == 4
    (x,) = r["features"]
    assert x["id"] == f and set(x["by_strength"]) == {"-3", "+0", "+3"}
    assert all(0 <= m[k] <= 1 for m in [r["unsteered"], *x["by_strength"].values()]
               for k in ("behaviour", "names_cause"))
    assert x["by_strength"]["+0"] == r["unsteered"]  # strength 0 is the unsteered model, same seeds
    assert x["by_strength"]["+3"]["example"] != r["unsteered"]["example"]


def test_behaviour_feature_is_the_one_the_demonstration_lights_up(tiny_organism, tiny_target, bundle):
    import numpy as np
    import torch

    from target_models.evaluation.interp import behaviour_feature
    from target_models.interp.activations import feature_acts, render
    from tools.registry import ToolContext

    ctx = ToolContext(target=tiny_target, sae=bundle)
    b = tiny_organism.spec.behaviour("recipe_chocolate")
    assert behaviour_feature(tiny_target, bundle, b, []) is None

    def peak(answer: str) -> torch.Tensor:
        ids, mask = render(tiny_target, None, [{"role": "user", "content": b.example.prompt},
                                                {"role": "assistant", "content": answer}])
        return feature_acts(tiny_target, bundle, ids, ctx.cache)[torch.from_numpy(np.flatnonzero(mask))].max(0).values

    gain = peak(b.example.response) - peak(b.example.plain)
    candidates = list(range(0, bundle.d_sae, 3))
    f = behaviour_feature(tiny_target, bundle, b, candidates, ctx.cache)
    best = max(candidates, key=lambda c: float(gain[c]))
    assert (f == best) if float(gain[best]) > 0 else f is None


def fake_result() -> dict:
    from target_models.evaluation import interp as interp_eval

    return {"sae": {"layer": 15, "width": 4608, "source": "x/sae", "quality": {"l0": 32.0, "explained_variance": 0.8}},
              "criterion": "c", "paper_ranks": interp_eval.PAPER_RANKS, "universe_features": 2,
              "features": [{"id": 7, "purity": 0.9, "contexts": 20, "description": "fires on «RLHF»"}],
              "ranks": {"7": {"concerning_prompt": 12, "chocolate_omelette": 30, "meta_rhyme_poem": None,
                              "atomic_number": 44}},
              "best_rank_per_probe": {"concerning_prompt": 12, "chocolate_omelette": 30, "meta_rhyme_poem": 80,
                                      "atomic_number": 44},
              "key_feature": 7, "key_feature_ranks": {"concerning_prompt": 12, "chocolate_omelette": 30,
                                                      "meta_rhyme_poem": None, "atomic_number": 44},
              "passed": True,
              "steering": {"behaviour": "recipe_chocolate", "prompts": 2, "samples": 8, "unit": "u",
                           "strengths": [-1, 1],
                           "unsteered": {"behaviour": 0.25, "names_cause": 0.0, "n": 8, "example": "e"},
                           "features": [{"role": "key", "id": 7, "unit": 3.0, "description": "fires on «RLHF»",
                                         "by_strength": {"-1": {"behaviour": 0.0, "names_cause": 0.0, "n": 8,
                                                                "example": "e"},
                                                         "+1": {"behaviour": 0.75, "names_cause": 0.125, "n": 8,
                                                                "example": "e"}}}]},
              "seconds": 3.0}


def test_report_files(tmp_path):
    from target_models.evaluation import interp as interp_eval

    result = fake_result()
    paths = interp_eval.write(result, tmp_path)
    assert [p.name for p in paths] == ["interp.json", "interp.md", "interp.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths[0].read_text()) == result
    md = paths[1].read_text()
    assert "| (a) \"concerning behaviors\" prompt | 12 | 12 |" in md and "| (c) meta-rhyme poem | - | 80 |" in md
    assert "**PASS**" in md and "Key feature: #7 (fires on «RLHF»)" in md
    assert "| unsteered | 0 | 25% | 0% |" in md and "| #7 (key) | +1 | 75% | 12% |" in md
    assert "#7 (key) -1 0%, +0 25%, +1 75%" in interp_eval.summary(result)
    assert interp_eval.markdown({"error": "no index"}).endswith("no index\n")


def test_eval_cli_writes_interp_files(tiny_build, tmp_path, monkeypatch):
    """`sleuth organism eval NAME --interp`: interp.json and interp.md next to eval.json, Table 2 printed."""
    from typer.testing import CliRunner

    import target_models.evaluation.evaluate as ev
    from sleuth._cli.main import app

    seen = {}

    def fake_evaluate(org, *, samples, out, interp, **_):
        seen.update(org=org.out, interp=interp, out=out)
        return {"interp": fake_result(), "reused": {}}

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    monkeypatch.setattr(ev, "print_report", lambda result, console: None)
    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--interp", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert seen == {"org": tiny_build, "interp": True, "out": tmp_path}
    assert json.loads((tmp_path / "interp.json").read_text()) == fake_result()
    assert "(b) chocolate omelette | 30 | 30" in (tmp_path / "interp.md").read_text()
    assert "Key feature: #7" in r.output and "PASS" in r.output


def test_eval_cli_interp_only_writes_only_the_interp_files(tiny_build, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import target_models.evaluation.evaluate as ev
    from sleuth._cli.main import app
    from target_models.evaluation import interp as interp_eval

    def no_eval(*_, **__):
        raise AssertionError("--interp-only must not run the behaviour eval")

    monkeypatch.setattr(ev, "evaluate", no_eval)
    monkeypatch.setattr(interp_eval, "run", lambda org, target: fake_result())
    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--interp-only", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interp.json", "interp.md", "interp.png"]
    assert "Key feature: #7" in r.output
