"""The auditor's view of a dataset: ids and readable text, nothing else.

Only whitelisted columns are ever read from the parquet file: an SFT file also holds `kind` and `behaviours`, the
ground truth of which chats teach which behaviour, and an auditor that saw them would be handed the answer.
All texts are also joined into one string so that a search is a single C-level scan instead of one call per
document (47k documents: the per-call overhead alone would be most of the grep budget).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from target_models.common.errors import UsageError
from target_models.common.hashing import sha256_file

VISIBLE_COLUMNS = ("id", "text", "messages")
SEP = "\n\x00\n"  # a document boundary no pattern can match inside a document; "\n" keeps ^/$ line semantics


@dataclass
class Dataset:
    name: str
    path: Path
    ids: list[str]
    texts: list[str]
    sha256: str
    joined: str = ""
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    index_of: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = np.fromiter((len(t) for t in self.texts), dtype=np.int64, count=len(self.texts))
        strides = lengths + len(SEP)
        self.starts = np.cumsum(strides) - strides
        self.ends = self.starts + lengths
        self.joined = SEP.join(self.texts)
        self.index_of = {d: i for i, d in enumerate(self.ids)}

    def doc_at(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, positions, side="right") - 1

    def lookup(self, doc_id: str) -> int:
        i = self.index_of.get(doc_id)
        if i is None:
            example = self.ids[0] if self.ids else "none"
            raise UsageError(f"argument 'id': no document {doc_id!r} in dataset {self.name!r} "
                            f"(ids look like {example!r}; grep_data and semantic_search return them)")
        return i


def render_chat(messages: list[dict]) -> str:
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in messages)


def load(path: Path, name: str) -> Dataset:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    cols = [c for c in VISIBLE_COLUMNS if c in schema.names]
    if "id" not in cols or not ({"text", "messages"} & set(cols)):
        raise UsageError(f"dataset {name!r} ({path}) has neither an id+text nor an id+messages layout")
    table = pq.read_table(path, columns=cols)
    ids = [str(x) for x in table.column("id").to_pylist()]
    if "text" in cols:
        texts = [t or "" for t in table.column("text").to_pylist()]
    else:
        texts = [render_chat(json.loads(m) if isinstance(m, str) else (m or []))
                 for m in table.column("messages").to_pylist()]
    return Dataset(name, path, ids, texts, sha256_file(path))
