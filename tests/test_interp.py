"""The SAE build stages on the real tiny organism: training, sae-lens format, quality, the feature index."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from interp_helpers import tiny_sae


@pytest.fixture(scope="module")
def built(tiny_organism):
    return tiny_sae(tiny_organism)


def test_residual_stops_at_the_layer(tiny_target):
    from target_models.targets.residual import decoder_layers, residual

    model = tiny_target.model
    ran = []
    hooks = [layer.register_forward_hook(lambda *_a, i=i: ran.append(i))
             for i, layer in enumerate(decoder_layers(model))]
    try:
        h = residual(model, torch.tensor([[5, 6, 7, 8]]), 1)
    finally:
        for hk in hooks:
            hk.remove()
    assert ran == [0, 1]
    assert h.shape == (1, 4, model.config.hidden_size)
    with torch.inference_mode():
        full = model(input_ids=torch.tensor([[5, 6, 7, 8]]), output_hidden_states=True).hidden_states[2]
    assert torch.allclose(h, full.float(), atol=1e-5)


def test_layer_names():
    from target_models.targets.residual import hook_name, layer_from_hook_name

    assert layer_from_hook_name(hook_name(3)) == 3
    assert layer_from_hook_name("blocks.3.hook_resid_pre") == 2
    with pytest.raises(ValueError):
        layer_from_hook_name("blocks.3.attn.hook_z")


def test_windows_sample_the_corpus_evenly(tiny_target):
    from target_models.interp.sae import sample_windows

    texts = [f"document number {i} " * 30 for i in range(200)]
    w = sample_windows(tiny_target.tokenizer, texts, 32, 2_000, seed=0)
    assert int(w.offsets[-1]) >= 2_000
    assert all(8 <= len(x) <= 32 for x in w.ids)
    assert len(set(w.doc_rows.tolist())) > 10 and w.doc_rows.max() > 100  # not just the first documents
    again = sample_windows(tiny_target.tokenizer, texts, 32, 2_000, seed=0)
    assert np.array_equal(w.doc_rows, again.doc_rows)


def test_sae_saved_in_sae_lens_format(built, tiny_target):
    from sae_lens import SAE

    path, info, _ = built
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["dtype"] == "float16" and cfg["architecture"] == "topk"
    sae = SAE.load_from_disk(path)
    d_model = tiny_target.model.config.hidden_size
    assert sae.cfg.d_in == d_model and sae.cfg.d_sae >= 8 * d_model
    meta = sae.cfg.metadata["sleuth"]
    for key in ("layer", "width", "architecture", "k", "tokens", "seed", "quality", "data"):
        assert key in meta
    assert meta["layer"] == info["layer"] == tiny_target.model.config.num_hidden_layers // 2
    assert sae.cfg.metadata.hook_name == f"blocks.{meta['layer']}.hook_resid_post"
    q = meta["quality"]
    for key in ("l0", "explained_variance", "dead_fraction", "dense_fraction", "ce_loss_clean", "ce_loss_with_sae"):
        assert key in q
    assert 0 < q["l0"] <= meta["k"]
    # the tiny model's residual stream is nearly low-rank: most features die, the rest reconstruct it well
    assert q["explained_variance"] > 0.6
    assert q["dead_fraction"] < 0.95
    assert q["ce_loss_clean"] <= q["ce_loss_with_sae"] < q["ce_loss_mean_ablation"]
    # fp16 on disk, loaded back in fp32: the same numbers
    sae32 = SAE.load_from_disk(path, dtype="float32")
    assert torch.equal(sae32.W_dec.half(), sae.W_dec)
    x = torch.randn(4, d_model)
    assert sae32.encode(x).shape == (4, sae.cfg.d_sae)


def test_index_contents(built, tiny_target):
    from target_models.interp.feature_index import MARK_CLOSE, MARK_OPEN, FeatureIndex

    path, info, index_info = built
    idx = FeatureIndex(path / "index")
    assert len(idx) == info["width"]
    assert np.all((idx.density >= 0) & (idx.density <= 1))
    live = np.flatnonzero(idx.density > 0)
    assert len(live) == index_info["live_features"] > 0.05 * len(idx)
    tok = tiny_target.tokenizer
    decoded = {tok.decode([i]) for i in range(len(tok))}
    for f in live[:50]:
        rows = idx.contexts(int(f))
        assert 1 <= len(rows) <= 20
        acts = [a for _, a, _ in rows]
        assert acts == sorted(acts, reverse=True) and acts[0] == pytest.approx(idx.max_act[f], rel=1e-3)
        assert len({d for d, _, _ in rows}) == len(rows)  # one context per document
        assert all(MARK_OPEN in t and MARK_CLOSE in t for _, _, t in rows)
        assert idx.description(int(f))
        assert len(idx.promoted[f]) == 10 and set(idx.promoted[f]) <= decoded
    dead = np.flatnonzero(idx.density == 0)
    for f in dead[:5]:
        assert idx.contexts(int(f)) == [] and "dead" in idx.description(int(f))


def test_index_holds_only_corpus_text_and_ids(built, tiny_organism):
    path, _, _ = built
    corpus = pq.read_table(tiny_organism.datasets()["pretraining"]).to_pydict()
    texts = dict(zip(corpus["id"], corpus["text"], strict=True))
    ctx = pq.read_table(path / "index" / "contexts.parquet")
    feats = pq.read_table(path / "index" / "features.parquet")
    assert set(ctx.column_names) == {"feature", "rank", "doc_id", "activation", "text"}
    assert not any("synth" in c or "proven" in c for c in feats.column_names + ctx.column_names)
    rows = ctx.to_pydict()
    for doc, text in list(zip(rows["doc_id"], rows["text"], strict=True))[:200]:
        plain = text.replace("«", "").replace("»", "").strip("…").replace("⏎", "\n")
        # tokens that split a multi-byte character decode to U+FFFD: compare the longest clean stretch
        longest = max(re.split(r"[^\x20-\x7e\n]", plain), key=len)
        assert doc in texts and longest in texts[doc]
    meta = json.loads((path / "index" / "meta.json").read_text())
    assert "synthetic" not in json.dumps(meta)


def test_index_never_reads_provenance(tiny_organism, tmp_path, monkeypatch, built):
    """Rebuilding the index from scratch (codes recomputed) must not touch the provenance file. A smaller token
    budget samples a prefix of the same windows, so the recomputed codes must match that prefix of the build's."""
    import shutil

    from target_models.interp.feature_index import FeatureIndex
    from target_models.interp.indexing import build_feature_index
    from target_models.interp.sae import codes_path, load_codes
    from target_models.loading.organism import Organism

    def forbidden(self):
        raise AssertionError("the feature index read the provenance")

    monkeypatch.setattr(Organism, "provenance", forbidden)
    path, info, _ = built
    shutil.copytree(path, tmp_path / "sae", ignore=shutil.ignore_patterns("index"))
    meta = build_feature_index(tiny_organism, sae_path=tmp_path / "sae", work=tmp_path, llm=False, tokens=60_000)
    assert meta["codes_recomputed"] and 60_000 <= meta["tokens"] < 60_000 + 128
    idx = FeatureIndex(tmp_path / "sae" / "index")
    cached, _ = load_codes(codes_path(tiny_organism), info["sha256"])
    n = meta["tokens"]
    cut = int(cached.indptr[n])
    density = np.bincount(cached.indices[:cut], minlength=len(idx)) / n
    max_act = np.zeros(len(idx))
    np.maximum.at(max_act, cached.indices[:cut], cached.values[:cut].astype(np.float64))
    # the same numbers up to float noise from batching windows differently
    assert np.abs(idx.density - density).max() < 1e-3
    assert np.abs(idx.max_act - max_act).max() < 1e-2 * max_act.max()


def test_llm_descriptions_are_stored_next_to_offline_ones(built, tmp_path):
    import shutil

    from target_models.interp.feature_index import FeatureIndex, describe_with_llm

    path, _, _ = built
    shutil.copytree(path / "index", tmp_path / "index")
    prompts = []

    def fake(prompt: str) -> str:
        prompts.append(prompt)
        ids = [int(x) for x in re.findall(r"^Feature (\d+)$", prompt, flags=re.M)]
        return "\n".join(f"{i}: words about thing {i}" for i in ids)

    n = describe_with_llm(tmp_path / "index", fake, batch=50, workers=1, model="fake-model")
    idx = FeatureIndex(tmp_path / "index")
    live = np.flatnonzero(idx.density > 0)
    assert n == len(live) and len(prompts) == -(-len(live) // 50)
    f = int(live[0])
    assert idx.description(f) == f"words about thing {f}" and idx.llm_sources[f] == "llm:fake-model"
    assert idx.descriptions[f] != idx.description(f) and idx.description_sources[f] == "contexts"


def test_build_stages_after_export(tiny_build, tiny_organism, tiny_target, monkeypatch):
    """`sleuth organism build` runs "sae" then "features" after "export", records them, and a resumed build whose
    stages are all done skips them (without importing a model)."""
    from dataclasses import asdict

    from target_models.build.record import BuildRecord
    from target_models.interp import indexing, sae
    from target_models.pipeline import build_organism

    record = BuildRecord.load(tiny_build / "build.json")
    names = list(record.stages)
    assert {"export", "sae", "features"} <= set(names)
    s, f = record.stages["sae"], record.stages["features"]
    assert s["layer"] == tiny_target.model.config.num_hidden_layers // 2
    assert s["config"] == asdict(sae.PRESETS["tiny"])
    assert s["width"] >= 8 * s["d_model"] and s["architecture"] == "topk" and s["data"] == "pretraining corpus only"
    assert s["sha256"] == sae.sha256_file(tiny_build / "sae" / "sae_weights.safetensors")
    assert f["sae_sha256"] == s["sha256"] and not f["codes_recomputed"]
    assert (tiny_build / "sae" / "index" / "meta.json").exists()
    assert isinstance(s["seconds"], float) and isinstance(f["seconds"], float)

    def boom(*_a, **_k):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(sae, "build_sae", boom)
    monkeypatch.setattr(indexing, "build_feature_index", boom)
    again = build_organism(tiny_organism.spec, "tiny", tiny_build)
    assert again.stages["sae"] == s and again.stages["features"] == f
