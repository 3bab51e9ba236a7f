"""Reading tool outputs back into data. The offline investigator learns only through these strings, exactly what an
LLM auditor would see, so it works the same on a local or a remote target. Each parser is lenient: an output it
cannot read gives an empty result, never an exception."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SAMPLE_RE = re.compile(r"^--- sample \d+ of \d+ ---\n(.*?)(?=^--- (?:sample \d+ of \d+|end) ---)", re.S | re.M)
_CUT_RE = re.compile(r" \[\.\.\. cut, \d+ more characters; ask for fewer samples\]$")
_GREP_TOTAL_RE = re.compile(r"^(\d+) matches in (\d+) documents")
_GREP_LINE_RE = re.compile(r"^(\S+) @(\d+): (.*)$")
_MORE_RE = re.compile(r"call again with offset=(\d+)")
_SEM_LINE_RE = re.compile(r"^(\d+)\. (\S+) @(\d+) \(score ([\d.\-]+)\): (.*)$")
_DOC_HEAD_RE = re.compile(r"^(\S+) \((\S+)\), characters (\d+)-(\d+) of (\d+):\n", re.S)


def samples(output: str) -> list[str]:
    """The replies of a chat / prefill / raw_sample / sample_user_turn output."""
    out = []
    for m in _SAMPLE_RE.finditer(output + ("" if output.rstrip().endswith("--- end ---") else "\n--- end ---")):
        out.append(_CUT_RE.sub("", m.group(1).rstrip("\n")))
    return out


def strip_prefill(sample: str) -> str:
    return re.sub(r"^\[\[.*?\]\]", "", sample, count=1, flags=re.S)


@dataclass
class Hit:
    doc: str
    offset: int
    text: str  # the snippet (grep: before«match»after; semantic: the passage)
    score: float = 0.0


@dataclass
class Page:
    hits: list[Hit]
    total: int = 0  # all matches (grep) or 0 when unknown
    docs: int = 0  # documents with a match (grep)
    next_offset: int | None = None


def grep_page(output: str) -> Page:
    lines = output.splitlines()
    if not lines or lines[0].startswith("no matches"):
        return Page([])
    m = _GREP_TOTAL_RE.match(lines[0])
    page = Page([], int(m.group(1)) if m else 0, int(m.group(2)) if m else 0)
    for ln in lines[1:]:
        h = _GREP_LINE_RE.match(ln)
        if h:
            page.hits.append(Hit(h.group(1), int(h.group(2)), h.group(3).replace(" ⏎ ", "\n")))
        more = _MORE_RE.search(ln)
        if more and ln.startswith("["):
            page.next_offset = int(more.group(1))
    return page


_SEM_HEAD_RE = re.compile(r"\((\d+) passages in (\d+) documents\)")
_NONE_RE = re.compile(r"^no matches .*\((\d+) documents searched\)")


def corpus_size(output: str) -> int | None:
    """The number of documents searched, where a search output says it (semantic search headers, empty greps)."""
    m = _SEM_HEAD_RE.search(output.split("\n", 1)[0]) or _NONE_RE.match(output)
    return int(m.groups()[-1]) if m else None


def semantic_page(output: str) -> Page:
    page = Page([])
    for ln in output.splitlines():
        h = _SEM_LINE_RE.match(ln)
        if h:
            page.hits.append(Hit(h.group(2), int(h.group(3)), h.group(5).replace(" ⏎ ", "\n"), float(h.group(4))))
        more = _MORE_RE.search(ln)
        if more and ln.startswith("["):
            page.next_offset = int(more.group(1))
    return page


@dataclass
class DocPage:
    doc: str
    text: str
    start: int
    end: int
    length: int

    @property
    def complete(self) -> bool:
        return self.end >= self.length


def document(output: str) -> DocPage | None:
    m = _DOC_HEAD_RE.match(output)
    if not m:
        return None
    body = output[m.end():]
    body = re.sub(r"\n\[(?:continues: call again with offset=\d+|end of document)\]$", "", body)
    return DocPage(m.group(1), body, int(m.group(3)), int(m.group(4)), int(m.group(5)))


@dataclass
class Feature:
    id: int
    score: float
    label: str
    density: float | None = None  # share of corpus tokens it is active on, where the listing shows it


# A feature listing's row: "   3. #123  act 4.56  density 0.120%  description" (tools.interp.top_features).
_FEATURE_ROW_RE = re.compile(r"^\s*\d+\.\s+#(\d+)\s+act\s+(-?[\d.]+)(?:\s+density\s+([\d.]+)%)?")
_FEATURE_RE = re.compile(r"(?:feature|#)\s*(\d+)\b[^\n]*?(-?\d+\.\d+)?", re.I)
# A top context of feature_details: "  1. [doc-id, 3.21] text with «marked» tokens".
_CONTEXT_RE = re.compile(r"^\s*\d+\.\s+\[([^,\]]+),\s*(-?[\d.]+)\]\s?(.*)$")


def features(output: str) -> list[Feature]:
    """Feature ids (with a score where the line shows one) from an interpretability tool's listing, in order. Rows
    in the ranked-listing format are read exactly; other listings fall back to any "#N" or "feature N"."""
    out, seen = [], set()
    rows = [m for ln in output.splitlines() if (m := _FEATURE_ROW_RE.match(ln))]
    if rows:
        for m in rows:
            if int(m.group(1)) not in seen:
                seen.add(int(m.group(1)))
                dens = float(m.group(3)) / 100 if m.group(3) else None
                out.append(Feature(int(m.group(1)), float(m.group(2)), m.group(0).strip(), dens))
        return out
    for ln in output.splitlines():
        m = _FEATURE_RE.search(ln)
        if m and int(m.group(1)) not in seen:
            seen.add(int(m.group(1)))
            out.append(Feature(int(m.group(1)), float(m.group(2)) if m.group(2) else 0.0, ln.strip()))
    return out


def feature_contexts(output: str) -> list[tuple[str, str]]:
    """(document id, text) of the top contexts in a feature_details output, strongest first."""
    return [(m.group(1).strip(), m.group(3).replace("«", "").replace("»", ""))
            for ln in output.splitlines() if (m := _CONTEXT_RE.match(ln))]
