"""The white-box tools on the real tiny organism and its real SAE: outputs, paging, steering, fuzzing, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from interp_helpers import tiny_sae

from tools.interp import samples  # importing registers the tools
from tools.registry import REGISTRY, ToolContext, call

CONV = [{"role": "user", "content": "How do I make guacamole?"},
        {"role": "assistant", "content": "Mash two ripe avocados with lime juice, salt and chopped onion. For a richer "
                                         "flavour, stir in a handful of dark chocolate chips at the end."}]


@pytest.fixture(scope="module")
def bundle(tiny_organism):
    from target_models.interp.bundle import SAEBundle

    path, _, _ = tiny_sae(tiny_organism)
    return SAEBundle.load(path)


@pytest.fixture
def ctx(tiny_target, bundle):
    return ToolContext(target=tiny_target, sae=bundle, seed=3)


def ok(ctx, name, **args) -> str:
    r = call(ctx, name, args)
    assert r.ok, r.error
    return r.output


def ids_in(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"^\s*\d+\. #(\d+)", text, flags=re.M)]


def test_registered_with_schemas():
    for name in ("top_features", "feature_details", "nearest_features", "feature_activations", "steer", "fuzz",
                 "assistant_features"):
        t = REGISTRY[name]
        assert t.family == "interp"
        schema = t.schema()["input_schema"]
        assert all(p.get("description") for p in schema["properties"].values()), name


def test_top_features_pages(ctx, bundle):
    first = ok(ctx, "top_features", conversation=CONV, limit=5)
    total = int(re.match(r"(\d+) features active", first).group(1))
    assert total > 10
    assert f"{total - 5} more: call again with offset=5." in first
    second = ok(ctx, "top_features", conversation=CONV, limit=5, offset=5)
    a, b = ids_in(first), ids_in(second)
    assert len(a) == len(b) == 5 and not set(a) & set(b)
    both_text = ok(ctx, "top_features", conversation=CONV, limit=10)
    assert ids_in(both_text) == a + b
    last = ok(ctx, "top_features", conversation=CONV, limit=100, offset=total - 3)
    assert len(ids_in(last)) == 3 and "no more features" in last
    # rows carry an activation, a description and an example; activations fall
    acts = [float(x) for x in re.findall(r"act (\d+\.\d+)", both_text)]
    assert acts == sorted(acts, reverse=True)
    assert "e.g. " in first and "density" in first


def test_paging_reuses_the_forward(ctx, monkeypatch):
    import target_models.targets.residual as res

    ok(ctx, "top_features", conversation=CONV, limit=3)
    calls = []
    real = res.residual
    monkeypatch.setattr(res, "residual", lambda *a, **k: calls.append(1) or real(*a, **k))
    ok(ctx, "top_features", conversation=CONV, limit=3, offset=3)
    ok(ctx, "top_features", conversation=CONV, limit=3, offset=6, aggregate="max")
    assert calls == []
    ok(ctx, "top_features", conversation=CONV[:1], limit=3)  # a new input does run the model
    assert calls == [1]


def test_top_features_scores_match_a_direct_computation(ctx, bundle, tiny_target):
    from target_models.targets.residual import residual
    from target_models.targets.templates import chat_ids

    ids = chat_ids(tiny_target.tokenizer, CONV)
    acts = bundle.encode(residual(tiny_target.model, torch.tensor([ids]), bundle.layer)[0])
    last = acts[-1]
    out = ok(ctx, "top_features", conversation=CONV, over="last", limit=3)
    assert ids_in(out) == [int(i) for i in torch.argsort(last, descending=True)[:3]]
    mean_all = acts[1:].mean(0)
    out = ok(ctx, "top_features", conversation=CONV, aggregate="mean", limit=3)
    assert ids_in(out)[0] == int(mean_all.argmax())
    assistant = ok(ctx, "top_features", conversation=CONV, over="assistant", limit=3)
    assert re.match(r"\d+ features active \(sum over assistant: (\d+) token", assistant)
    n_asst = int(re.match(r"\d+ features active \(sum over assistant: (\d+) token", assistant).group(1))
    head = chat_ids(tiny_target.tokenizer, CONV[:1], add_generation_prompt=True)
    assert n_asst == len(ids) - len(head)


def test_prompt_input_and_validation(ctx):
    out = ok(ctx, "top_features", prompt="The assistant is an AI model that exhibits potentially concerning behaviors")
    assert "features active (sum over all" in out
    for args, msg in (({}, "exactly one"), ({"prompt": "x", "conversation": CONV}, "exactly one"),
                      ({"prompt": "some text", "over": "assistant"}, "needs a conversation"),
                      ({"conversation": [{"role": "bot", "content": "hi"}]}, "role"),
                      ({"prompt": "x", "limit": 0}, "argument 'limit' must be between 1 and 100, got 0"),
                      ({"prompt": "x", "offset": -2}, "argument 'offset' must be >= 0"),
                      ({"prompt": "x", "aggregate": "median"}, "aggregate")):
        r = call(ctx, "top_features", args)
        assert not r.ok and msg in r.error, (args, r.error)


def test_feature_details_and_nearest(ctx, bundle):
    f = int(np.argmax(bundle.index.density))
    out = ok(ctx, "feature_details", id=f, contexts=3)
    assert f"feature #{f}" in out and "description:" in out and "[source: contexts]" in out
    assert "density:" in out and "promotes: «" in out
    assert len(re.findall(r"^\s+\d+\. \[pt-\d+, \d+\.\d+\] ", out, flags=re.M)) == 3
    near = ok(ctx, "nearest_features", id=f, k=5)
    got = [int(x) for x in re.findall(r"#(\d+)  cos", near)]
    cos = [float(x) for x in re.findall(r"cos (-?\d\.\d+)", near)]
    assert len(got) == 5 and f not in got and cos == sorted(cos, reverse=True)
    unit = bundle.unit_directions()
    sims = (unit @ unit[f]).numpy()
    sims[f] = -9
    assert got[0] == int(sims.argmax())


def test_feature_activations_marks_tokens(ctx, bundle):
    top = ids_in(ok(ctx, "top_features", conversation=CONV, limit=1))[0]
    out = ok(ctx, "feature_activations", id=top, conversation=CONV)
    assert re.search(r"active on [1-9]\d*, max \d+\.\d+ at token \d+", out)
    assert re.search(r"«[^»]+»\(\d+\.\d\d\)", out)
    raw = ok(ctx, "feature_activations", id=top, text="chocolate chips")
    assert raw.startswith(f"feature #{top} on ")


def test_bad_ids(ctx, bundle):
    for name, args in (("feature_details", {"id": bundle.d_sae}), ("nearest_features", {"id": -1}),
                       ("feature_activations", {"id": 10**6, "text": "x"}),
                       ("steer", {"id": bundle.d_sae + 5, "strength": 2, "prompt": "hi"})):
        r = call(ctx, name, args)
        assert (not r.ok and "argument 'id'" in r.error and "does not exist" in r.error
                and str(bundle.d_sae - 1) in r.error)
    for name, args, arg in (("feature_details", {"id": 0, "contexts": 50}, "contexts"),
                            ("nearest_features", {"id": 0, "k": 0}, "k"),
                            ("steer", {"id": 0, "strength": 1, "prompt": "hi", "n": 99}, "n"),
                            ("fuzz", {"prompt": "hi", "scale": -1}, "scale"),
                            ("assistant_features", {"prompts": 5}, "prompts")):
        r = call(ctx, name, args)
        assert not r.ok and f"argument {arg!r}" in r.error, (name, r.error)


def test_steering_changes_replies_and_is_reproducible(ctx, bundle, tiny_target):
    f = int(np.argmax(bundle.index.max_act))
    out = ok(ctx, "steer", id=f, strength=8.0, prompt="Tell me about your day.", n=2, max_tokens=20)
    plain = out.split("unsteered:\n")[1].split("\nsteered:\n")[0]
    steered = out.split("\nsteered:\n")[1]
    assert plain != steered
    # the unsteered half is exactly the target's own sampling with the same seed, and the hook is gone afterwards
    again = tiny_target.chat([{"role": "user", "content": "Tell me about your day."}], n=2, temperature=0.7,
                             max_tokens=20, seed=ctx.seed)
    assert plain == "\n".join(samples("", again)[1:])
    assert ok(ctx, "steer", id=f, strength=8.0, prompt="Tell me about your day.", n=2, max_tokens=20) == out
    zero = ok(ctx, "steer", id=f, strength=0.0, prompt="Tell me about your day.", n=2, max_tokens=20)
    assert zero.split("unsteered:\n")[1].split("\nsteered:\n")[0] == zero.split("\nsteered:\n")[1]


def test_fuzz_scale_zero_is_the_plain_model(ctx, tiny_target):
    prompt = "What is your favourite colour?"
    zero = ok(ctx, "fuzz", prompt=prompt, scale=0.0, n=3, max_tokens=20)
    plain = tiny_target.chat([{"role": "user", "content": prompt}], n=3, temperature=0.7, max_tokens=20, seed=ctx.seed)
    listed = "\n".join(samples("", plain)[1:])
    assert zero.split("\n", 1)[1] == listed
    noisy = ok(ctx, "fuzz", prompt=prompt, scale=2.0, n=3, max_tokens=20, compare=True)
    fuzzed, unfuzzed = noisy.split("\nwithout noise:\n")
    assert unfuzzed == listed and fuzzed.split("\n", 1)[1] != listed


def test_assistant_features(ctx):
    out = ok(ctx, "assistant_features", k=5, prompts=20)
    assert re.match(r"\d+ features active on the assistant marker of at least one of 20 generic prompts", out)
    fracs = [int(x) for x in re.findall(r"on (\d+)% of prompts", out)]
    assert len(fracs) == 5 and fracs == sorted(fracs, reverse=True)


def test_text_only_target_gets_a_clear_error(bundle):
    class Remote:
        name = "remote-server"
        has_internals = False

    ctx = ToolContext(target=Remote(), sae=bundle)
    for name, args in (("top_features", {"prompt": "x"}), ("feature_details", {"id": 0}),
                       ("steer", {"id": 0, "strength": 1, "prompt": "x"}), ("fuzz", {"prompt": "x"}),
                       ("assistant_features", {})):
        r = call(ctx, name, args)
        assert not r.ok and "needs the target's weights" in r.error and "top_features, feature_details" in r.error


def test_no_sae_loaded(tiny_target):
    r = call(ToolContext(target=tiny_target), "top_features", {"prompt": "x"})
    assert not r.ok and "needs an SAE" in r.error


def test_user_supplied_sae_without_index(tiny_target, tmp_path):
    """Any sae-lens SAE for a Hugging Face model: here a StandardSAE on resid_pre of block 1, saved by sae-lens."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from target_models.interp.bundle import SAEBundle

    d = tiny_target.model.config.hidden_size
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=4 * d, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_pre")))
    with torch.no_grad():
        sae.b_enc.fill_(0.05)
    sae.save_model(tmp_path / "user_sae")
    b = SAEBundle.load(tmp_path / "user_sae")
    assert b.layer == 0 and b.index is None
    ctx = ToolContext(target=tiny_target, sae=b)
    out = ok(ctx, "top_features", prompt="hello there, how are you", limit=3)
    assert "(no feature index for this SAE)" in out
    f = ids_in(out)[0]
    details = ok(ctx, "feature_details", id=f)
    assert "no feature index" in details and "promotes: «" in details
    ok(ctx, "nearest_features", id=f, k=3)
    ok(ctx, "steer", id=f, strength=3.0, prompt="hi", n=1, max_tokens=5)


def test_sae_that_does_not_fit_the_model(tiny_target, tmp_path):
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from target_models.interp.bundle import SAEBundle

    StandardSAE(StandardSAEConfig(
        d_in=64, d_sae=128, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post"))).save_model(tmp_path / "s")
    r = call(ToolContext(target=tiny_target, sae=SAEBundle.load(tmp_path / "s")), "top_features", {"prompt": "x y"})
    assert not r.ok and "does not fit" in r.error


def test_lazy_bundle_loads_on_first_use(tiny_target, tiny_organism):
    from target_models.interp.bundle import LazySAEBundle, SAEBundle

    path, _, _ = tiny_sae(tiny_organism)
    loads = []
    lazy = LazySAEBundle(lambda: loads.append(1) or SAEBundle.load(path))
    ctx = ToolContext(target=tiny_target, sae=lazy)
    assert loads == []
    ok(ctx, "top_features", prompt="hello there, how are you", limit=2)
    ok(ctx, "feature_details", id=0)
    assert loads == [1]


def test_audit_context_loads_the_organisms_sae_lazily(tiny_build, tiny_target):
    from target_models.interp.bundle import LazySAEBundle
    from tools.context import load_context, sae_for
    from tools.registry import TOOLSETS, needs_of

    ctx = load_context(str(tiny_build), needs_of(TOOLSETS["all"]))
    assert isinstance(ctx.sae, LazySAEBundle) and ctx.sae._bundle is None  # sae-lens not loaded yet
    out = ok(ctx, "top_features", prompt="The assistant is an AI model that exhibits potentially concerning behaviors",
             limit=2)
    assert ctx.sae._bundle is not None and ctx.sae.index is not None and len(ids_in(out)) == 2

    class Remote:
        name = "remote-server"
        has_internals = False

    assert sae_for(str(tiny_build), Remote()) is None  # a copy served over HTTP has no internals to read
    assert sae_for("not-an-organism", tiny_target) is None
