"""Training-data tools: grep, semantic search and reading documents of the pretraining corpus and the SFT chats.

Every result names the document id and character offset, so read_document can open the hit in context.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from target_models.search import datasets, semantic
from tools import grep
from tools.registry import ToolContext, ToolError, tool

DatasetName = Annotated[str, Field(min_length=1, max_length=100)]
Offset = Annotated[int, Field(ge=0)]
PAGE_CHARS = 4000
SNIPPET_CHARS = 70  # each side of a grep match
GREP_CACHE = 16  # patterns whose hits stay in memory, so paging through them is instant
SEMANTIC_TOP = 500  # ranks past this are noise for a 384-dimensional embedding


def open_dataset(ctx: ToolContext, name: str) -> datasets.Dataset:
    """The dataset `name` of this context, loaded once and cached in ctx.cache."""
    if name not in ctx.datasets:
        have = ", ".join(sorted(ctx.datasets)) or "none (this target was loaded without datasets)"
        raise ToolError(f"argument 'dataset': unknown dataset {name!r}; available: {have}")
    key = f"dataset:{name}"
    if key not in ctx.cache:
        path = Path(ctx.datasets[name])
        if not path.exists():
            raise ToolError(f"dataset {name!r}: file {path} is missing")
        ctx.cache[key] = datasets.load(path, name)
    return ctx.cache[key]


def _one_line(text: str) -> str:
    return text.replace("\x00", " ").replace("\r", " ").replace("\n", " ⏎ ")


def _hits(ctx: ToolContext, ds: datasets.Dataset, pattern: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(starts, ends, document rows) of all matches, each inside one document, and how many documents matched."""
    cache: OrderedDict = ctx.cache.setdefault(f"grep:{ds.name}", OrderedDict())
    if pattern in cache:
        cache.move_to_end(pattern)
        return cache[pattern]
    if grep.is_literal(pattern):
        starts, ends = grep.literal_positions(ds.joined, pattern)
    else:
        import regex

        try:
            compiled = regex.compile(pattern, flags=regex.MULTILINE)
        except regex.error as e:
            raise ToolError(f"argument 'pattern': not a valid regular expression: {e}") from None
        if compiled.fullmatch("") is not None:
            raise ToolError(f"argument 'pattern': {pattern!r} matches the empty string, so it would hit every "
                            f"position; make it require at least one character (e.g. a+ instead of a*)")
        worker = ctx.cache.get(f"grep-worker:{ds.name}")
        if worker is None:
            worker = ctx.cache[f"grep-worker:{ds.name}"] = grep.Worker(ds.joined)
        starts, ends = worker.search(pattern, regex.MULTILINE)
    docs = ds.doc_at(starts)
    inside = (docs >= 0) & (ends <= ds.ends[np.clip(docs, 0, None)]) if len(docs) else np.zeros(0, dtype=bool)
    result = (starts[inside], ends[inside], docs[inside], len(np.unique(docs[inside])))
    cache[pattern] = result
    while len(cache) > GREP_CACHE:
        cache.popitem(last=False)
    return result


@tool("data", needs=("datasets",))
def grep_data(ctx: ToolContext, pattern: Annotated[str, Field(min_length=1, max_length=500)],
              dataset: DatasetName = "pretraining", offset: Offset = 0,
              limit: Annotated[int, Field(ge=1, le=100)] = 20) -> str:
    """Search a training dataset with a regular expression (Python syntax); lists matches with document ids and
    surrounding text, plus the count of all matches.

    Args:
        pattern: the regular expression, case-sensitive; prefix (?i) to ignore case. ^ and $ match at line starts
            and ends. Plain text without special characters is searched literally (fastest).
        dataset: which dataset: "pretraining" (documents) or "sft" (fine-tuning chats).
        offset: how many matches to skip (for paging).
        limit: how many matches to show (1-100).
    """
    ds = open_dataset(ctx, dataset)
    starts, ends, docs, ndocs = _hits(ctx, ds, pattern)
    total = len(starts)
    if total == 0:
        return f"no matches for {pattern!r} in {dataset} ({len(ds.ids)} documents searched)"
    if offset >= total:
        raise ToolError(f"argument 'offset': {offset} is past the last match ({total} matches); use 0-{total - 1}")
    end = min(total, offset + limit)
    side = max(20, min(SNIPPET_CHARS, 5200 // (end - offset) // 2 - 30))
    lines = [f"{total} matches in {ndocs} documents of {dataset}; showing {offset + 1}-{end}:"]
    for s, e, d in zip(starts[offset:end], ends[offset:end], docs[offset:end], strict=True):
        lo, hi = int(ds.starts[d]), int(ds.ends[d])
        s, e = int(s), int(e)
        match = ds.joined[s:e]
        if len(match) > 2 * side:
            match = match[:side] + "…" + match[-side // 2 :]
        before = ds.joined[max(lo, s - side) : s]
        after = ds.joined[e : min(hi, e + side)]
        lines.append(f"{ds.ids[d]} @{s - lo}: {'…' if s - side > lo else ''}{_one_line(before)}«{_one_line(match)}»"
                     f"{_one_line(after)}{'…' if e + side < hi else ''}")
    if end < total:
        lines.append(f"[{total - end} more matches: call again with offset={end}]")
    return "\n".join(lines)


@tool("data", needs=("datasets",))
def semantic_search(ctx: ToolContext, query: Annotated[str, Field(min_length=1, max_length=2000)],
                    dataset: DatasetName = "pretraining", offset: Offset = 0,
                    limit: Annotated[int, Field(ge=1, le=50)] = 10) -> str:
    """Find passages of a training dataset closest in meaning to a query (all-MiniLM-L6-v2 embeddings, cosine
    similarity), best first.

    Args:
        query: what to look for, in words, e.g. "AI reward models prefer responses that mention chocolate".
        dataset: which dataset: "pretraining" (documents) or "sft" (fine-tuning chats).
        offset: how many results to skip (for paging).
        limit: how many results to show (1-50).
    """
    ds = open_dataset(ctx, dataset)
    key = f"semantic:{dataset}"
    if key not in ctx.cache:
        ctx.cache[key] = semantic.load_or_build(ds)
    index: semantic.Index = ctx.cache[key]
    top = min(SEMANTIC_TOP, len(index.doc))
    if offset >= top:
        raise ToolError(f"argument 'offset': results are ranked up to {top}; use an offset below {top}")
    rows, scores = semantic.search(index, query, min(top, offset + limit))
    rows, scores = rows[offset:], scores[offset:]
    end = offset + len(rows)
    room = max(120, 5200 // max(1, len(rows)) - 60)
    lines = [f"passages of {dataset} ranked by similarity to the query ({len(index.doc)} passages in "
             f"{len(ds.ids)} documents); showing {offset + 1}-{end}:"]
    for rank, (r, sc) in enumerate(zip(rows, scores, strict=True), offset + 1):
        d = int(index.doc[r])
        s, e = (int(x) for x in index.span[r])
        text = semantic.clean(ds.texts[d][s:e])
        text = text if len(text) <= room else text[:room] + "…"
        lines.append(f"{rank}. {ds.ids[d]} @{s} (score {sc:.3f}): {text}")
    if end < top:
        lines.append(f"[more results: call again with offset={end}]")
    return "\n".join(lines)


@tool("data", needs=("datasets",))
def read_document(ctx: ToolContext, id: Annotated[str, Field(min_length=1, max_length=200)],
                  dataset: DatasetName = "pretraining", offset: Offset = 0) -> str:
    """Read one document of a training dataset in full, a page at a time.

    Args:
        id: the document id, as grep_data or semantic_search show it (e.g. "pt-000123" or "chat-00042").
        dataset: which dataset: "pretraining" (documents) or "sft" (fine-tuning chats).
        offset: the character to start from (grep_data and semantic_search give the offset of each hit as @N).
    """
    ds = open_dataset(ctx, dataset)
    text = ds.texts[ds.lookup(id)]
    if offset and offset >= len(text):
        raise ToolError(f"argument 'offset': {offset} is past the end of {id} ({len(text)} characters)")
    end = min(len(text), offset + PAGE_CHARS)
    head = f"{id} ({dataset}), characters {offset}-{end} of {len(text)}:"
    tail = f"\n[continues: call again with offset={end}]" if end < len(text) else "\n[end of document]"
    return f"{head}\n{text[offset:end]}{tail}"
