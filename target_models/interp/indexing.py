"""Build stage "features" (after "sae"): the feature index of an organism's SAE, from the codes the sae stage left
in the work folder. Apart from `feature_index` (how an index is written and read) because it loads the SAE through
`SAEBundle`, which reads indexes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from target_models.common.hashing import sha256_file
from target_models.interp.bundle import SAEBundle
from target_models.interp.feature_index import _llm_wanted, corpus_codes, describe_with_llm, write_index
from target_models.interp.sae import _organism, codes_path, console, load_codes, resolve_config, sae_dir

if TYPE_CHECKING:
    from target_models.build.stages import Build
    from target_models.loading.organism import Organism


def build_feature_index(org_or_build: Organism | Build | str | Path, *, sae_path: Path | None = None,
                        work: Path | None = None, llm: bool | None = None, **overrides: Any) -> dict:
    """Build stage "features" (after "sae"): writes `<sae folder>/index/`. Uses the codes the sae stage left
    in the work folder, or recomputes them (one forward over the same corpus windows) when they are missing."""
    org = _organism(org_or_build)
    cfg = resolve_config(org, **overrides)
    path = Path(sae_path or sae_dir(org.out))
    bundle = SAEBundle.load(path, index=False)
    sha = sha256_file(path / "sae_weights.safetensors")
    target = org.load("organism")
    corpus = pq.read_table(org.datasets()["pretraining"], columns=["id", "text"]).to_pydict()
    t0 = time.time()
    cached = load_codes(codes_path(org, work), sha)
    if cached is None:
        console.print("feature index: no cached codes for this SAE; recomputing them from the corpus")
        codes, windows = corpus_codes(target.model, target.tokenizer, bundle.sae, bundle.layer, corpus["text"],
                                      tokens=cfg.tokens, seq_len=cfg.seq_len, seed=cfg.seed)
    else:
        codes, windows = cached
    codes_s = time.time() - t0
    out = path / "index"
    meta = write_index(out, codes=codes, windows=windows, doc_ids=corpus["id"], texts=corpus["text"],
                       sae=bundle.sae, model=target.model, tok=target.tokenizer,
                       meta={"sae_sha256": sha, "layer": bundle.layer, "codes_recomputed": cached is None})
    if llm if llm is not None else _llm_wanted():
        meta["llm_described"] = describe_with_llm(out)
    meta["codes_seconds"] = round(codes_s, 1)
    meta["bytes"] = sum(f.stat().st_size for f in out.iterdir())
    return meta
