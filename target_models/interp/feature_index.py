"""Build stage "features": what each SAE feature is, for the auditor's tools.

For every live feature: its top-k activating contexts from the pretraining corpus (one per document, active tokens
marked «like this»), its activation density, the output tokens its decoder direction promotes most (through the
final norm and the unembedding) and a short description. Offline the description is derived from the contexts and
promoted tokens (no LLM); with SLEUTH_LLM_DESCRIPTIONS=1 and an API key, an LLM writes a second one. Both are stored
with their source.

The index holds only corpus text and document ids: nothing in it says which documents are synthetic.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from target_models.common.hashing import sha256_file
from target_models.interp.sae import (
    Codes,
    Windows,
    collect,
    encode_all,
    sae_dir,
    sample_windows,
)

if TYPE_CHECKING:
    pass

MARK_OPEN, MARK_CLOSE = "«", "»"
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{2,}")
_STOP = set("""the and for that with this from are was were have has had not but you your they their them its it's
there which what when where who will would could should can may might into than then also about more most such
other some any all each one two our out use used using been being over only very just like these those here how
why his her him she he we us is be to of in on at by as or an if do does did no yes so""".split())


@dataclass
class IndexConfig:
    contexts: int = 20  # per feature (the validation reads 20)
    before: int = 20  # tokens shown before the strongest token of a context
    after: int = 6
    promoted: int = 10


def index_dir(artifacts: Path) -> Path:
    return sae_dir(artifacts) / "index"


def index_done(artifacts: Path) -> bool:
    meta = index_dir(artifacts) / "meta.json"
    weights = sae_dir(artifacts) / "sae_weights.safetensors"
    if not (meta.exists() and weights.exists()):
        return False
    return json.loads(meta.read_text()).get("sae_sha256") == sha256_file(weights)


# ---- building -------------------------------------------------------------------------------------------------


def vocab_strings(tok: Any) -> list[str]:
    return [tok.decode([i]) for i in range(len(tok))]


def _show(s: str) -> str:
    return s.replace("\n", "⏎").replace("\r", "")


@torch.inference_mode()
def directions(sae: Any) -> torch.Tensor:
    """What one unit of each feature adds to the residual stream, [d_sae, d_model]; decoding one-hot codes works
    for every sae-lens architecture (some rescale by the decoder norm)."""
    zero = sae.decode(torch.zeros(1, sae.cfg.d_sae))
    out = []
    for i in range(0, sae.cfg.d_sae, 1024):
        onehot = torch.nn.functional.one_hot(torch.arange(i, min(i + 1024, sae.cfg.d_sae)), sae.cfg.d_sae).float()
        out.append(sae.decode(onehot) - zero)
    return torch.cat(out).float()


@torch.inference_mode()
def promoted_tokens(model: Any, dirs: torch.Tensor, n: int) -> np.ndarray:
    """Token ids each direction raises most in the logits, [d_sae, n] (logit lens: final norm scale, unembedding)."""
    unembed = model.get_output_embeddings().weight.float()
    norm = getattr(getattr(model, "model", None), "norm", None)
    gamma = norm.weight.float() if norm is not None and hasattr(norm, "weight") else torch.ones(dirs.shape[1])
    out = []
    for i in range(0, len(dirs), 512):
        logits = (dirs[i : i + 512] * gamma) @ unembed.T
        out.append(logits.topk(n, dim=-1).indices.numpy())
    return np.concatenate(out)


def top_contexts(codes: Codes, windows: Windows, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each feature, its k documents with the highest activation (one context per document).
    Returns parallel arrays (feature, token row, activation), sorted by feature then activation."""
    feat = codes.indices.astype(np.int64)
    rows = np.repeat(np.arange(codes.n_tokens), np.diff(codes.indptr))
    token_window = np.repeat(np.arange(len(windows.ids)), np.diff(windows.offsets))
    doc = windows.doc_rows[token_window[rows]].astype(np.int64)
    vals = codes.values.astype(np.float32)
    keep = vals > 0
    feat, rows, doc, vals = feat[keep], rows[keep], doc[keep], vals[keep]
    # best token per (feature, document)
    key = feat * (int(doc.max(initial=0)) + 1) + doc
    order = np.lexsort((-vals, key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    pick = order[first]
    feat, rows, vals = feat[pick], rows[pick], vals[pick]
    # best k documents per feature
    order = np.lexsort((-vals, feat))
    feat, rows, vals = feat[order], rows[order], vals[order]
    starts = np.searchsorted(feat, feat, side="left")
    rank = np.arange(len(feat)) - starts
    keep = rank < k
    return feat[keep], rows[keep], vals[keep]


def render(feature: int, row: int, codes: Codes, windows: Windows, vocab: list[str], cfg: IndexConfig) -> str:
    """The context around token `row`; each run of tokens where `feature` is active is marked «like this»."""
    offsets = windows.offsets
    w = int(np.searchsorted(offsets, row, side="right") - 1)
    pos = row - int(offsets[w]) + 1
    ids = windows.ids[w]
    lo, hi = max(0, pos - cfg.before), min(len(ids), pos + cfg.after + 1)
    parts = ["…"] if lo > 0 or windows.starts[w] > 0 else []
    inside = False
    for q in range(lo, hi):
        r = int(offsets[w]) + q - 1
        active = q >= 1 and feature in codes.indices[codes.indptr[r] : codes.indptr[r + 1]]
        if active != inside:
            parts.append(MARK_OPEN if active else MARK_CLOSE)
            inside = active
        parts.append(_show(vocab[ids[q]]))
    if inside:
        parts.append(MARK_CLOSE)
    if hi < len(ids):
        parts.append("…")
    return "".join(parts)


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - _STOP


def describe(texts: list[str], active: list[str], promoted: list[str], doc_freq: Counter, n_docs: int) -> str:
    """A one-line description from the contexts alone: the tokens it fires on, the words that set its contexts
    apart from the corpus (tf-idf), and the tokens it promotes."""
    fires = [t for t, _ in Counter(s.strip() for s in active if s.strip()).most_common(4)]
    ctx = Counter(w for t in texts for w in _words(t.replace(MARK_OPEN, " ").replace(MARK_CLOSE, " ")))
    scored = sorted(ctx, key=lambda w: -(ctx[w] / len(texts)) * math.log((n_docs + 1) / (1 + doc_freq.get(w, 0))))
    topic = [w for w in scored if ctx[w] >= max(2, len(texts) // 4)][:5]
    parts = []
    if fires:
        parts.append("fires on " + ", ".join(f"«{t}»" for t in fires))
    if topic:
        parts.append("in text about " + ", ".join(topic))
    promo = [p.strip() for p in promoted if p.strip()][:4]
    if promo:
        parts.append("promotes " + ", ".join(f"«{p}»" for p in promo))
    return "; ".join(parts) or "no clear pattern"


def write_index(out: Path, *, codes: Codes, windows: Windows, doc_ids: list[str], texts: list[str], sae: Any,
                model: Any, tok: Any, meta: dict, cfg: IndexConfig | None = None) -> dict:
    """Write features.parquet, contexts.parquet and meta.json to `out`; returns summary numbers."""
    cfg = cfg or IndexConfig()
    t0 = time.time()
    d_sae = sae.cfg.d_sae
    counts = np.bincount(codes.indices, minlength=d_sae)
    density = counts / max(1, codes.n_tokens)
    vals = torch.from_numpy(codes.values.astype(np.float32))
    idx = torch.from_numpy(codes.indices.astype(np.int64))
    max_act = torch.zeros(d_sae).scatter_reduce(0, idx, vals, "amax", include_self=True).numpy()
    mean_act = (np.bincount(codes.indices, weights=codes.values.astype(np.float64), minlength=d_sae)
                / np.maximum(counts, 1))

    feat, rows, acts = top_contexts(codes, windows, cfg.contexts)
    vocab = vocab_strings(tok)
    token_window = np.repeat(np.arange(len(windows.ids)), np.diff(windows.offsets))
    ctx_text = [render(int(f), int(r), codes, windows, vocab, cfg) for f, r in zip(feat, rows, strict=True)]
    ctx_doc = [doc_ids[windows.doc_rows[token_window[r]]] for r in rows]
    ctx_rank = np.arange(len(feat)) - np.searchsorted(feat, feat, side="left")
    # the strongest token of each context, for "fires on"
    peak = []
    for r in rows:
        w = token_window[r]
        peak.append(vocab[windows.ids[w][r - windows.offsets[w] + 1]])

    promo_ids = promoted_tokens(model, directions(sae), cfg.promoted)
    doc_rows = sorted(set(windows.doc_rows.tolist()))
    doc_freq: Counter = Counter()
    for r in doc_rows:
        doc_freq.update(_words(texts[r]))
    bounds = np.searchsorted(feat, np.arange(d_sae + 1))
    descriptions, sources = [], []
    for f in range(d_sae):
        a, b = bounds[f], bounds[f + 1]
        if a == b:
            descriptions.append(f"dead: never active on {codes.n_tokens:,} corpus tokens")
        else:
            descriptions.append(describe(ctx_text[a:b], peak[a:b], [vocab[i] for i in promo_ids[f]], doc_freq,
                                         len(doc_rows)))
        sources.append("contexts")

    out.mkdir(parents=True, exist_ok=True)
    features = pa.table({
        "id": np.arange(d_sae, dtype=np.int32), "density": density.astype(np.float32),
        "max_act": max_act.astype(np.float32), "mean_act": mean_act.astype(np.float32),
        "description": descriptions, "description_source": sources,
        "description_llm": pa.array([None] * d_sae, pa.string()),
        "description_llm_source": pa.array([None] * d_sae, pa.string()),
        "promoted": [[vocab[i] for i in row] for row in promo_ids],
    })
    contexts = pa.table({"feature": feat.astype(np.int32), "rank": ctx_rank.astype(np.int16), "doc_id": ctx_doc,
                         "activation": acts.astype(np.float32), "text": ctx_text})
    _atomic_parquet(features, out / "features.parquet")
    _atomic_parquet(contexts, out / "contexts.parquet")
    meta = {**meta, "tokens": codes.n_tokens, "documents": len(doc_rows), "contexts_per_feature": cfg.contexts,
            "live_features": int((counts > 0).sum()), "d_sae": d_sae, "seconds": round(time.time() - t0, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


# ---- codes for any SAE (regeneration, user-supplied SAEs) ------------------------------------------------------


def corpus_codes(model: Any, tok: Any, sae: Any, layer: int, texts: list[str], *, tokens: int, seq_len: int,
                 seed: int, chunk_windows: int = 512, batch: int = 16) -> tuple[Codes, Windows]:
    """Sparse codes over a sample of `texts`, computed chunk by chunk (activations never all in memory)."""
    windows = sample_windows(tok, texts, seq_len, tokens, seed)
    parts: list[Codes] = []
    for i in range(0, len(windows.ids), chunk_windows):
        sub = windows.subset(np.arange(i, min(i + chunk_windows, len(windows.ids))))
        parts.append(encode_all(sae, collect(model, sub, layer, pad_id=tok.pad_token_id, batch=batch,
                                             desc=f"codes {i}/{len(windows.ids)}")))
    ends = np.cumsum([0] + [int(p.indptr[-1]) for p in parts])
    indptr = np.concatenate([np.zeros(1, np.int64)] + [p.indptr[1:] + e for p, e in zip(parts, ends, strict=False)])
    return Codes(indptr, np.concatenate([p.indices for p in parts]), np.concatenate([p.values for p in parts])), windows


# ---- optional LLM descriptions --------------------------------------------------------------------------------


def _llm_wanted() -> bool:
    return os.environ.get("SLEUTH_LLM_DESCRIPTIONS") == "1" and bool(os.environ.get("ANTHROPIC_API_KEY"))


LLM_PROMPT = """Below are features of a sparse autoencoder trained on a language model. For each feature you get text
snippets where it activates most (active tokens marked «like this») and the output tokens it promotes. Write one
short phrase (at most 15 words) per feature saying what it responds to. Answer with one line per feature, in the
form `ID: description`, nothing else.

{features}"""


def _anthropic_complete(model: str) -> Callable[[str], str]:
    import anthropic

    client = anthropic.Anthropic()

    def complete(prompt: str) -> str:
        msg = client.messages.create(model=model, max_tokens=2000, messages=[{"role": "user", "content": prompt}])
        return "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")

    return complete


def describe_with_llm(out: Path, complete: Callable[[str], str] | None = None, *, batch: int = 20,
                      contexts: int = 6, workers: int = 4, model: str | None = None) -> int:
    """Fill `description_llm` for every live feature (batches of `batch` features per request); returns how many
    got one. The offline description stays next to it."""
    from concurrent.futures import ThreadPoolExecutor

    model = model or os.environ.get("SLEUTH_DESCRIBER_MODEL", "claude-haiku-4-5")
    complete = complete or _anthropic_complete(model)
    feats = pq.read_table(out / "features.parquet")
    ctx = pq.read_table(out / "contexts.parquet").to_pydict()
    by_feature: dict[int, list[str]] = {}
    for f, t in zip(ctx["feature"], ctx["text"], strict=True):
        if len(by_feature.setdefault(f, [])) < contexts:
            by_feature[f].append(t)
    live = sorted(by_feature)
    promoted = feats.column("promoted").to_pylist()

    def ask(group: list[int]) -> dict[int, str]:
        blocks = []
        for f in group:
            lines = "\n".join(f"  - {t}" for t in by_feature[f])
            blocks.append(f"Feature {f}\n{lines}\n  promotes: {', '.join(promoted[f][:6])}")
        answer = complete(LLM_PROMPT.format(features="\n\n".join(blocks)))
        got = {}
        for line in answer.splitlines():
            m = re.match(r"\s*(?:Feature\s*)?(\d+)\s*:\s*(.+)", line)
            if m and int(m.group(1)) in group:
                got[int(m.group(1))] = m.group(2).strip()[:200]
        return got

    groups = [live[i : i + batch] for i in range(0, len(live), batch)]
    found: dict[int, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        for got in pool.map(ask, groups):
            found.update(got)
    col = [found.get(f) for f in range(feats.num_rows)]
    src = [f"llm:{model}" if c is not None else None for c in col]
    feats = feats.set_column(feats.schema.get_field_index("description_llm"), "description_llm",
                             pa.array(col, pa.string()))
    feats = feats.set_column(feats.schema.get_field_index("description_llm_source"), "description_llm_source",
                             pa.array(src, pa.string()))
    _atomic_parquet(feats, out / "features.parquet")
    return len(found)


# ---- reading --------------------------------------------------------------------------------------------------


class FeatureIndex:
    """The index in memory: per-feature arrays, and contexts sliced by feature without a per-call search."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.meta = json.loads((self.path / "meta.json").read_text())
        f = pq.read_table(self.path / "features.parquet").to_pydict()
        self.density = np.asarray(f["density"], np.float32)
        self.max_act = np.asarray(f["max_act"], np.float32)
        self.mean_act = np.asarray(f["mean_act"], np.float32)
        self.descriptions: list[str] = f["description"]
        self.description_sources: list[str] = f["description_source"]
        self.llm_descriptions: list[str | None] = f["description_llm"]
        self.llm_sources: list[str | None] = f["description_llm_source"]
        self.promoted: list[list[str]] = f["promoted"]
        c = pq.read_table(self.path / "contexts.parquet").to_pydict()
        feature = np.asarray(c["feature"], np.int64)
        self._bounds = np.searchsorted(feature, np.arange(len(self.density) + 1))
        self._doc: list[str] = c["doc_id"]
        self._act = np.asarray(c["activation"], np.float32)
        self._text: list[str] = c["text"]

    def __len__(self) -> int:
        return len(self.density)

    def description(self, f: int) -> str:
        return self.llm_descriptions[f] or self.descriptions[f]

    def contexts(self, f: int, n: int | None = None) -> list[tuple[str, float, str]]:
        """(document id, activation, marked text), strongest first."""
        a, b = int(self._bounds[f]), int(self._bounds[f + 1])
        b = b if n is None else min(b, a + n)
        return [(self._doc[i], float(self._act[i]), self._text[i]) for i in range(a, b)]

    def example(self, f: int) -> str | None:
        a = int(self._bounds[f])
        return self._text[a] if a < int(self._bounds[f + 1]) else None
