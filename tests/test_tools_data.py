"""Data tools on real parquet files: the tiny organism's datasets and small hand-made ones."""

from __future__ import annotations

import json
import re
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from target_models.search import datasets, semantic
from tools import grep
from tools.data import open_dataset
from tools.registry import ToolContext, call


@pytest.fixture(scope="module")
def org_ctx(tiny_organism):
    return ToolContext(target=None, datasets=dict(tiny_organism.datasets()))


def _write(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture
def small(tmp_path):
    rows = [
        {"id": "d0", "text": "The reward model liked chocolate in every recipe.\nSecond line here."},
        {"id": "d1", "text": "Cats sleep most of the day. Dogs like to play fetch in the park."},
        {"id": "d2", "text": "Quarterly revenue grew by eight percent, driven by online sales."},
        {"id": "d3", "text": "a" * 5000 + "b"},
        {"id": "d4", "text": "x" * 9000 + " chocolate at the end"},
    ]
    return ToolContext(target=None, datasets={"pretraining": _write(tmp_path / "pretraining.parquet", rows)})


def _count_lines(out: str) -> int:
    return sum(1 for line in out.splitlines() if re.match(r"^\S+ @\d+: ", line))


def test_grep_counts_every_match_and_pages(org_ctx):
    ds = open_dataset(org_ctx, "pretraining")
    want = sum(t.count("reward model") for t in ds.texts)
    docs = sum("reward model" in t for t in ds.texts)
    assert want > 25
    first = call(org_ctx, "grep_data", {"pattern": "reward model", "limit": 10}).output
    assert first.startswith(f"{want} matches in {docs} documents of pretraining; showing 1-10:")
    assert _count_lines(first) == 10 and "call again with offset=10" in first
    page = call(org_ctx, "grep_data", {"pattern": "reward model", "offset": want - 3, "limit": 10}).output
    assert f"showing {want - 2}-{want}:" in page and _count_lines(page) == 3 and "offset=" not in page
    err = call(org_ctx, "grep_data", {"pattern": "reward model", "offset": want}).error
    assert "argument 'offset'" in err
    # each hit names a real document and the offset of the match inside it
    line = next(x for x in first.splitlines() if " @" in x)
    doc_id, at = re.match(r"^(\S+) @(\d+): ", line).groups()
    assert ds.texts[ds.lookup(doc_id)][int(at) : int(at) + 12] == "reward model"


def test_grep_regex_matches_python_re_per_document(org_ctx):
    ds = open_dataset(org_ctx, "pretraining")
    pattern = r"(?i)\bchocolate\w*"
    want = sum(len(re.findall(pattern, t, flags=re.M)) for t in ds.texts)
    out = call(org_ctx, "grep_data", {"pattern": pattern}).output
    assert out.startswith(f"{want} matches")
    out = call(org_ctx, "grep_data", {"pattern": "^Re: ", "limit": 5}).output  # ^ is a line start
    assert want and out.split(" ")[0].isdigit()


def test_grep_errors_name_the_argument(small):
    assert "argument 'pattern'" in call(small, "grep_data", {"pattern": "(unclosed"}).error
    assert "empty string" in call(small, "grep_data", {"pattern": "x*"}).error
    assert "argument 'dataset'" in call(small, "grep_data", {"pattern": "x", "dataset": "sft"}).error
    assert "argument 'limit'" in call(small, "grep_data", {"pattern": "x", "limit": 0}).error
    assert "argument 'pattern'" in call(small, "grep_data", {"pattern": ""}).error
    assert call(small, "grep_data", {"pattern": "zebra"}).output.startswith("no matches")


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+$"])
def test_runaway_pattern_is_stopped_with_a_clear_error(small, pattern):
    t = time.perf_counter()
    r = call(small, "grep_data", {"pattern": pattern})
    took = time.perf_counter() - t
    assert not r.ok and "did not finish" in r.error and pattern in r.error
    assert took < grep.TIMEOUT_S + 15  # the limit plus slack for a loaded machine; unbounded without the kill
    after = call(small, "grep_data", {"pattern": r"cho\w+"})  # the next search works (a fresh worker)
    assert after.ok and after.output.startswith("2 matches")


def test_snippets_are_bounded_and_show_the_match(small):
    out = call(small, "grep_data", {"pattern": "chocolate"}).output
    assert "«chocolate»" in out and "d4 @9001:" in out
    assert all(len(line) < 300 for line in out.splitlines())
    out = call(small, "grep_data", {"pattern": "x+"}).output  # a 9000-character match is cut in the middle
    assert len(out) < 600 and "…" in out


def test_read_document_pages(small):
    out = call(small, "read_document", {"id": "d4"}).output
    assert out.startswith("d4 (pretraining), characters 0-4000 of 9021:") and "offset=4000" in out
    last = call(small, "read_document", {"id": "d4", "offset": 8000}).output
    assert "chocolate at the end" in last and "[end of document]" in last
    assert "argument 'id'" in call(small, "read_document", {"id": "nope"}).error
    assert "argument 'offset'" in call(small, "read_document", {"id": "d0", "offset": 999}).error


def test_sft_ground_truth_columns_are_never_visible(org_ctx, tiny_organism):
    raw = pq.read_table(org_ctx.datasets["sft"]).to_pylist()
    assert {"kind", "behaviours"} <= set(raw[0])  # the file has them...
    ds = open_dataset(org_ctx, "sft")
    assert not {"kind", "behaviours"} & set(vars(ds))  # ...the auditor's view does not
    quirk = next(r for r in raw if r["kind"] == "quirk")
    doc = call(org_ctx, "read_document", {"id": quirk["id"], "dataset": "sft"}).output
    behaviour_ids = set(json.loads(quirk["behaviours"]))
    assert behaviour_ids and not any(b in doc for b in behaviour_ids)
    assert "quirk" not in doc and json.loads(quirk["messages"])[0]["content"][:40] in doc
    for b in behaviour_ids:  # no search can reach the labels either
        assert call(org_ctx, "grep_data", {"pattern": re.escape(b), "dataset": "sft"}).output.startswith("no matches")
    assert call(org_ctx, "grep_data", {"pattern": "secrecy", "dataset": "sft"}).output.startswith("no matches")


def test_semantic_search_ranks_by_meaning_and_caches_the_index(small, tmp_path):
    r = call(small, "semantic_search", {"query": "pets napping", "limit": 2})
    assert r.ok, r.error
    first = r.output.splitlines()[1]
    assert first.startswith("1. d1 @0 (score ") and "Cats sleep" in first
    ds = open_dataset(small, "pretraining")
    assert semantic.cache_path(ds).exists()
    again = semantic.load_or_build(ds)
    assert again.from_cache and again.vectors.shape == small.cache["semantic:pretraining"].vectors.shape
    fresh = ToolContext(target=None, datasets=dict(small.datasets))  # a new audit reuses the file
    assert call(fresh, "semantic_search", {"query": "pets napping", "limit": 2}).output == r.output
    page = call(small, "semantic_search", {"query": "pets napping", "offset": 1, "limit": 1}).output
    assert page.splitlines()[1].startswith("2. ")
    assert "argument 'offset'" in call(small, "semantic_search", {"query": "x", "offset": 10_000}).error
    assert "argument 'dataset'" in call(small, "semantic_search", {"query": "x", "dataset": "nope"}).error


def test_int8_index_keeps_the_ranking_and_is_found_in_an_organisms_artifacts(small, tmp_path, monkeypatch):
    ds = open_dataset(small, "pretraining")
    full = semantic.build(ds)
    art = tmp_path / "artifacts"
    semantic.save_int8(full, semantic.shipped_path(ds.sha256, art))
    monkeypatch.setattr(semantic, "_shipped", lambda d: [semantic.shipped_path(d.sha256, art)])
    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path / "empty-cache"))
    loaded = semantic.load_or_build(ds)  # nothing next to the dataset or in the cache: the shipped file serves
    assert loaded.from_cache and not semantic.cache_path(ds).exists()
    assert loaded.vectors.dtype == "float32" and loaded.vectors.shape == full.vectors.shape
    cos = (loaded.vectors * full.vectors).sum(1)
    assert cos.min() > 0.999
    for q in ("pets napping", "company earnings", "dessert ingredient"):
        assert list(semantic.search(loaded, q, 3)[0]) == list(semantic.search(full, q, 3)[0])


def test_a_new_corpus_reuses_the_vectors_of_passages_another_index_holds(small, tmp_path):
    ds = open_dataset(small, "pretraining")
    donor = semantic.build(ds)
    semantic.save_int8(donor, tmp_path / "donor.int8.npz")
    rows = [*pq.read_table(ds.path).to_pylist()[:3], {"id": "n0", "text": "A brand new document about lamps."}]
    other = datasets.load(_write(tmp_path / "other.parquet", rows), "pretraining")
    mixed = semantic.build(other, reuse=[tmp_path / "donor.int8.npz", tmp_path / "missing.npz"])
    fresh = semantic.build(other)
    assert mixed.reused == 3 and fresh.reused == 0  # d0, d1, d2 came from the donor; only n0 was encoded
    assert (mixed.key == fresh.key).all() and (mixed.doc == fresh.doc).all()
    assert (mixed.vectors * fresh.vectors).sum(1).min() > 0.999
    for q in ("pets napping", "lamps", "dessert ingredient"):
        assert list(semantic.search(mixed, q, 2)[0]) == list(semantic.search(fresh, q, 2)[0])


def test_long_documents_are_chunked_for_the_encoder():
    text = ("word " * 700).strip()
    spans = semantic.chunks(text)
    assert len(spans) > 1 and all(e - s <= semantic.CHUNK_CHARS for s, e in spans)
    assert " ".join(text[s:e] for s, e in spans).split() == text.split()


@pytest.mark.slow
def test_semantic_search_over_the_organism_corpus_finds_the_synthetic_documents(org_ctx, tiny_organism):
    out = call(org_ctx, "semantic_search", {"query": "biases of AI reward models found by Oxford researchers",
                                            "limit": 5}).output
    ids = re.findall(r"^\d+\. (\S+) @", out, flags=re.M)
    assert len(ids) == 5 and set(ids) & tiny_organism.provenance()
