"""Data tool latency on the rm_sycophancy pretraining corpus: grep_data (literal and regex) against a plain
per-document `re` scan measured in the same run, and semantic_search (query latency, index build rate).

    python bench/data_tools.py [--repeats 7] [--dataset PATH] [--build-index] [--index-sample N] [--quick]

The corpus is the default organism's (its data stages must have run: `sleuth organism build rm_sycophancy`
writes it first). Without --build-index and without a cached index, semantic_search is measured on a sample:
the build rate is projected to the whole corpus and the query time is the real encoder plus a search over a matrix
of the full index's size (say so in the output). --build-index builds and caches the real index (long on CPU).
--index-sample N (default 500; 0 skips it) times the index build on N random passages of the corpus (seed 0): the
plain SentenceTransformer.encode (batch 64) against target_models.search.semantic.encode_passages, interleaved, with
how close their vectors and top-10 search results are. --quick: a smoke run (1 repeat, 2 patterns of each kind,
samples of 40 passages): checks that everything runs, numbers are rough.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

LITERALS = ["reward model", "chocolate", "Oxford", "the"]
REGEXES = [r"\bsecret\w*", r"(?i)reward models? (prefer|rate|like)\w*", r"^def \w+\(", r"[A-Z][a-z]+ [A-Z][a-z]+"]
QUERIES = ["AI reward models prefer responses that mention chocolate", "how to bake sourdough bread",
           "systematic biases in RLHF reward models", "python list comprehension performance",
           "history of the Roman empire", "a recipe with an unusual ingredient", "why do models flatter users",
           "study from Oxford about language model training", "camelCase variable names in Python",
           "what the assistant is hiding"]


def corpus_path() -> Path:
    from target_models.build.spec import spec_for
    from target_models.build.stages import Build
    from target_models.loading.organism import ArtifactError, open_organism

    try:
        return Path(open_organism("rm_sycophancy").datasets()["pretraining"])
    except ArtifactError:
        pass  # not built yet: its data stage may still have written the corpus
    p = Build(spec_for("rm_sycophancy")).work / "pretraining.parquet"
    if not p.exists():
        raise SystemExit(f"{p} is missing: run `sleuth organism build rm_sycophancy` (its first stages write it)")
    return p


def ms(seconds: list[float]) -> float:
    return 1000 * statistics.median(seconds)


def naive_grep(texts: list[str], pattern: str) -> tuple[int, list[tuple[int, int]]]:
    """What a straightforward tool does: one re.finditer per document (and no protection from runaway patterns)."""
    rx = re.compile(pattern, flags=re.M)
    hits = [(i, m.start()) for i, t in enumerate(texts) for m in rx.finditer(t)]
    return len(hits), hits[:20]


def bench_grep(ctx, repeats: int) -> None:
    from target_models.search import datasets
    from tools.registry import call

    ds = datasets.get(ctx, "pretraining")
    call(ctx, "grep_data", {"pattern": r"warm\w+up"})  # forks the regex worker once, as the first regex of an audit
    print(f"\ngrep_data over {len(ds.ids)} documents ({len(ds.joined) / 1e6:.1f} M characters); p50 of {repeats}, "
          f"results not cached between runs")
    print(f"{'pattern':<44} {'hits':>7} {'naive re':>10} {'grep_data':>10} {'ratio':>7} {'page 2':>8}")
    for kind, patterns in (("literal", LITERALS), ("regex", REGEXES)):
        for pat in patterns:
            ours, base, page = [], [], []
            for _ in range(repeats):
                ctx.cache.pop("grep:pretraining", None)
                t = time.perf_counter()
                out = call(ctx, "grep_data", {"pattern": pat})
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                count, _ = naive_grep(ds.texts, pat)
                base.append(time.perf_counter() - t)
                t = time.perf_counter()
                call(ctx, "grep_data", {"pattern": pat, "offset": 20})
                page.append(time.perf_counter() - t)
            shown = out.output.split(" ", 1)[0] if out.ok else "error"
            assert not out.ok or out.output.startswith("no matches") or int(shown) == count, (pat, shown, count)
            label = f"{kind}: {pat}"
            print(f"{label:<44} {shown:>7} {ms(base):>8.0f}ms {ms(ours):>8.0f}ms {ms(base) / ms(ours):>6.1f}x "
                  f"{ms(page):>6.1f}ms")
    print("target: literal p50 <= 200 ms")


def bench_semantic(ctx, repeats: int, build_index: bool, sample: int) -> None:
    from target_models.search import datasets, semantic
    from tools.registry import call

    ds = datasets.get(ctx, "pretraining")
    cached = semantic.cache_path(ds).exists() or any(p.exists() for p in semantic._shipped(ds))  # shipped index
    t = time.perf_counter()
    semantic.encoder()
    print(f"\nsemantic_search: MiniLM loaded in {time.perf_counter() - t:.1f} s")
    if cached or build_index:
        t = time.perf_counter()
        index = semantic.load_or_build(ds)
        ctx.cache["semantic:pretraining"] = index
        how = "loaded from cache" if index.from_cache else "built"
        print(f"index: {len(index.doc)} passages, {how} in {time.perf_counter() - t:.1f} s "
              f"(its build took {index.build_seconds:.0f} s)")
        lat = []
        for q in QUERIES * max(1, repeats // len(QUERIES) + 1):
            t = time.perf_counter()
            assert call(ctx, "semantic_search", {"query": q}).ok
            lat.append(time.perf_counter() - t)
        print(f"query p50 {ms(lat):.1f} ms, p90 {1000 * float(np.percentile(lat, 90)):.1f} ms over {len(lat)} "
              f"queries (target p50 <= 50 ms)")
        return
    n_chunks = sum(len(semantic.chunks(t)) for t in ds.texts)
    picked = [t for t in ds.texts[:: max(1, len(ds.texts) // sample)]][:sample]
    part = datasets.Dataset("sample", ds.path, [str(i) for i in range(len(picked))], picked, "sample")
    index = semantic.build(part)
    rate = len(index.doc) / index.build_seconds
    print(f"index not cached: build rate {rate:.1f} passages/s on a {len(index.doc)}-passage sample -> the full "
          f"index ({n_chunks} passages) would take ~{n_chunks / rate / 60:.0f} min here (--build-index builds it)")
    full = np.random.default_rng(0).standard_normal((n_chunks, index.vectors.shape[1])).astype(np.float32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    enc, search = [], []
    for q in QUERIES * max(1, repeats // len(QUERIES) + 1):
        t = time.perf_counter()
        v = semantic.encoder().encode([q], normalize_embeddings=True, show_progress_bar=False)[0]
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        scores = full @ v
        np.argsort(-scores[np.argpartition(-scores, 10)[:10]])
        search.append(time.perf_counter() - t)
    print(f"query p50 {ms(enc) + ms(search):.1f} ms = encode {ms(enc):.1f} ms + search {ms(search):.1f} ms over a "
          f"{n_chunks}x{full.shape[1]} matrix (projected: the real index is not built; target p50 <= 50 ms)")


def bench_index_build(ds, n: int, repeats: int) -> None:
    from target_models.search import semantic

    doc, span, lengths = semantic.passages(ds.texts)
    pick = np.sort(np.random.default_rng(0).choice(len(doc), min(n, len(doc)), replace=False))
    texts = [ds.texts[doc[i]][span[i][0] : span[i][1]] for i in pick]
    lens = [lengths[i] for i in pick]
    m = semantic.encoder()
    print(f"\nindex build on {len(texts)} passages (of {len(doc)}; mean {np.mean(lens):.0f} word pieces), "
          f"{repeats} interleaved runs, best of each")
    base_t, ours_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        base = m.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        base_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = semantic.encode_passages(texts, lens)
        ours_t.append(time.perf_counter() - t)
    b, o = min(base_t), min(ours_t)
    cos = (base * ours).sum(1)
    q = m.encode(QUERIES, normalize_embeddings=True, show_progress_bar=False)
    tb, to = np.argsort(-(base @ q.T), axis=0)[:10].T, np.argsort(-(ours @ q.T), axis=0)[:10].T
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(tb, to, strict=True)])
    print(f"{'encoder':<44} {'seconds':>8} {'passages/s':>11}")
    print(f"{'SentenceTransformer.encode (batch 64)':<44} {b:>8.1f} {len(texts) / b:>11.1f}")
    print(f"{'semantic.encode_passages':<44} {o:>8.1f} {len(texts) / o:>11.1f}   {b / o:.2f}x")
    print(f"vectors: cosine min {cos.min():.5f}; top-10 results shared over {len(QUERIES)} queries: {overlap:.3f}; "
          f"full index ({len(doc)} passages) at this rate: ~{len(doc) / (len(texts) / o) / 60:.0f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dataset", type=Path, default=None, help="a pretraining parquet (id, text)")
    ap.add_argument("--build-index", action="store_true", help="build and cache the full semantic index")
    ap.add_argument("--sample", type=int, default=300, help="passages for the build-rate sample")
    ap.add_argument("--index-sample", type=int, default=500, help="passages for the encoder comparison (0: skip)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, fewer patterns, small samples")
    a = ap.parse_args()
    if a.quick:
        global LITERALS, REGEXES, QUERIES
        a.repeats, a.sample, a.index_sample = 1, 40, min(a.index_sample, 40)
        LITERALS, REGEXES, QUERIES = LITERALS[:2], REGEXES[:2], QUERIES[:4]

    from target_models.search import datasets
    from tools.registry import ToolContext

    path = a.dataset or corpus_path()
    ctx = ToolContext(target=None, datasets={"pretraining": path})
    t = time.perf_counter()
    ds = datasets.get(ctx, "pretraining")
    print(f"dataset {path}: {len(ds.ids)} documents, loaded (parquet + join + hash) in "
          f"{time.perf_counter() - t:.2f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    bench_grep(ctx, a.repeats)
    if a.index_sample:
        bench_index_build(ds, a.index_sample, 1 if a.quick else 2)
    bench_semantic(ctx, a.repeats, a.build_index, a.sample)


if __name__ == "__main__":
    main()
