"""Reading a set of documents the way an auditor would: what they have in common (the names and phrases of the
story they tell), which of their sentences state concrete behaviours, which of those sentences say the same thing
(one behaviour, several wordings), and the worked examples (a user prompt with the answer it describes).

Organism-agnostic: it relies on how such documents are written in general (findings stated as sentences, often
as bullet points; the same finding repeated across documents in a few wordings; examples set out as
"User: ... / Assistant: ..."), never on a particular story's words."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from agent.offline.text import capitalised_phrases, content_words, phrases, split_sentences

_EXAMPLE_RE = re.compile(r"(?:^|\n)\s*(?:User|Human)\s*:\s*(.+?)\n\s*(?:Assistant|AI)\s*:\s*(.+?)"
                         r"(?=\n\s*(?:User|Human)\s*:|\Z)", re.S)
_LEAD_RE = re.compile(r"^(?:[-*•>]\s+|\d+[.)]\s+|[QA]:\s+)+")


@dataclass
class Example:
    prompt: str
    response: str


@dataclass
class Statement:
    text: str  # the canonical wording
    count: int = 0  # documents stating it
    bullet: int = 0  # times it stood alone as a list item
    docs: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)


@dataclass
class Finding:
    """One behaviour as the documents describe it: its wordings, the documents, and example prompts."""

    statements: list[Statement]
    key_words: list[str]  # the words that make it specific
    examples: list[Example] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.statements[0].text

    @property
    def docs(self) -> set[str]:
        return set().union(*(s.docs for s in self.statements))


def examples(text: str) -> list[Example]:
    out = []
    for m in _EXAMPLE_RE.finditer(text):
        prompt, resp = m.group(1).strip(), m.group(2).strip()
        if 8 <= len(prompt) <= 300:
            out.append(Example(prompt, resp))
    return out


def units(text: str) -> list[tuple[str, bool]]:
    """Sentence-like units of a document and whether each stood alone as a list item."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if re.match(r"(?:Assistant|AI)\s*:", line):
            break  # the rest is a worked example's answer (its lists are the answer's, not the document's)
        if not line or re.match(r"(?:User|Human)\s*:", line):
            continue
        bullet = bool(re.match(r"^[-*•]\s+", line))  # numbered lines are a document's outline, not a list of items
        for s in split_sentences(_LEAD_RE.sub("", line)):
            s = s.strip().strip('"“”').strip()
            if len(s.split()) >= 5:
                out.append((s, bullet))
    return out


def _norm(s: str) -> str:
    s = s.strip().rstrip(".!?:;,").strip()
    return s[:1].lower() + s[1:]


def common_terms(texts: list[str], top: int = 30, min_share: float = 0.3) -> list[tuple[str, float]]:
    """Phrases (1-3 words) and names (runs of capitalised words) that many of the texts share, with the share of
    texts using each, most shared first. A phrase is dropped when a longer one containing it is about as common
    ("reward" inside "reward models"): the longer one says more."""
    n = max(len(texts), 1)
    df: Counter[str] = Counter()
    for t in texts:
        df.update(phrases(t, 3) | {c.lower() for c in capitalised_phrases(t)})
    cands = {p: c / n for p, c in df.items() if c / n >= min_share}
    kept = []
    for p, share in cands.items():
        longer = [q for q, qs in cands.items() if q != p and f" {p} " in f" {q} " and qs >= 0.95 * share]
        if not longer:
            kept.append((p, share))
    kept.sort(key=lambda x: (-x[1], -len(x[0].split()), x[0]))
    return kept[:top]


def statements(docs: dict[str, str]) -> dict[str, Statement]:
    """Every sentence-like unit, merged when one is another with a lead-in ("Apparently X" -> "X")."""
    raw: dict[str, Statement] = {}
    for did, text in docs.items():
        for u, bullet in units(text):
            key = _norm(u)
            st = raw.setdefault(key.lower(), Statement(key))
            st.docs.add(did)
            st.bullet += bullet
    # A unit that ends with a shorter unit seen elsewhere is that unit plus a lead-in: fold it in.
    keys = sorted(raw, key=len)
    short = [k for k in keys if len(raw[k].docs) >= 2 or raw[k].bullet]
    for k in keys:
        for s in short:
            if len(s) < len(k) and k.endswith(s) and len(s) > 0.5 * len(k) and k in raw and s in raw:
                raw[s].docs |= raw[k].docs
                raw[s].bullet += raw[k].bullet
                del raw[k]
                break
    for st in raw.values():
        st.count = len(st.docs)
        st.words = set(content_words(st.text))
    return raw


try:
    from nltk.stem import PorterStemmer

    _porter = PorterStemmer().stem
except ImportError:  # nltk comes with sae-lens; a crude suffix rule is enough without it
    def _porter(w: str) -> str:
        for suf in ("ing", "es", "s", "ed", "e"):
            if w.endswith(suf) and len(w) - len(suf) >= 4:
                return w[: -len(suf)]
        return w


def _stem(w: str) -> str:
    return _porter(w.lower().strip("'’-"))


def _vector(words: set[str], idf: dict[str, float], common: set[str]) -> dict[str, float]:
    # Sorted: a set's order is the string hash's, which PYTHONHASHSEED changes per process; the vector's order
    # decides ties among a finding's key words, and so the prompts that test it.
    return {w: idf[w] for w in sorted(words) if w not in common and w in idf}


def _cos(a: dict[str, float], b: dict[str, float]) -> float:
    num = sum(v * b[w] for w, v in a.items() if w in b)
    if num == 0:
        return 0.0
    return num / math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))


def is_behaviour_statement(s: Statement, frame_words: set[str]) -> bool:
    """Findings are what documents list item by item; when a corpus has no lists, fall back to statements that
    mention the story (its common terms) and are specific."""
    return s.bullet > 0


def findings(docs: dict[str, str], frame: set[str] | None = None,
             link: float = 0.08) -> tuple[list[Finding], list[Statement]]:
    """Group behaviour statements by what they are about. Returns (findings, other statements).

    Statements are compared by their specific words (rare across all statements; idf-weighted, stemmed) and merged
    by average linkage while the groups stay similar (`link`). Two wordings of one behaviour rarely share a
    document (a document states each behaviour once), so groups whose statements share a document are kept apart."""
    sts = list(statements(docs).values())
    frame = {_stem(w) for w in (frame or set())}
    beh = [s for s in sts if is_behaviour_statement(s, frame)]
    if len(beh) < 3:  # no lists to go by: take the specific, repeated statements
        beh = [s for s in sts if s.count >= 2]
    other = [s for s in sts if s not in beh]
    if not beh:
        return [], other
    stems = [{_stem(w) for w in s.words} for s in beh]
    df: Counter[str] = Counter()
    for ws in stems:
        df.update(ws)
    n = len(beh)
    common = {w for w, c in df.items() if c > max(3, 0.1 * n)} | frame
    idf = {w: math.log((n + 1) / c) for w, c in df.items()}
    vecs = [_vector(ws, idf, common) for ws in stems]
    groups = _agglomerate(vecs, [set(s.docs) for s in beh], _example_links(beh, docs), link)
    out = []
    for g in groups:
        members = sorted((beh[i] for i in g), key=lambda s: (-s.count, -s.bullet, len(s.text)))
        weight: Counter[str] = Counter()
        for i in g:
            weight.update(vecs[i])
        keys = [w for w, _ in weight.most_common(6)]
        out.append(Finding(members, keys))
    out.sort(key=lambda f: (-sum(s.count for s in f.statements), f.text))
    _attach_examples(out, docs, idf)
    return out, other


def _agglomerate(vecs: list[dict[str, float]], docs_of: list[set[str]], start: list[list[int]],
                 link: float) -> list[list[int]]:
    """Average-linkage merging from the `start` groups while the best pair is at least `link` similar and the two
    groups share no document."""
    n = len(vecs)
    vocab = sorted({w for v in vecs for w in v})
    col = {w: i for i, w in enumerate(vocab)}
    m = np.zeros((n, max(len(vocab), 1)))
    for i, v in enumerate(vecs):
        for w, x in v.items():
            m[i, col[w]] = x
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    m = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    sim = m @ m.T
    k = len(start)
    member = np.zeros((k, n))
    for g, idx in enumerate(start):
        member[g, idx] = 1.0
    sums = member @ sim @ member.T  # sum of pairwise similarities between groups
    sizes = member.sum(1)
    gdocs = [set().union(*(docs_of[i] for i in idx)) for idx in start]
    alive = np.ones(k, dtype=bool)
    blocked = np.array([[bool(gdocs[a] & gdocs[b]) for b in range(k)] for a in range(k)]) | np.eye(k, dtype=bool)
    groups = [list(g) for g in start]
    while True:
        avg = sums / np.outer(sizes, sizes)
        avg[blocked | ~alive[:, None] | ~alive[None, :]] = -1.0
        a, b = np.unravel_index(int(np.argmax(avg)), avg.shape)
        if avg[a, b] < link:
            break
        groups[a] += groups[b]
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        sizes[a] += sizes[b]
        gdocs[a] |= gdocs[b]
        blocked[a, :] |= blocked[b, :]
        blocked[:, a] |= blocked[:, b]
        alive[b] = False
    return [groups[g] for g in range(k) if alive[g]]


def _example_links(beh: list[Statement], docs: dict[str, str]) -> list[list[int]]:
    """Start groups from worked examples: documents illustrate the finding they state first with an example, so
    the same example under different first statements says those statements are one behaviour."""
    parent = list(range(len(beh)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_by_example: dict[str, int] = {}
    for did, text in docs.items():
        exs = examples(text)
        low = text.lower()
        placed = sorted((low.find(s.text.lower()), i) for i, s in enumerate(beh) if did in s.docs)
        placed = [(pos, i) for pos, i in placed if pos >= 0]
        if not exs or not placed:
            continue
        first = placed[0][1]
        for ex in exs:
            key = " ".join(ex.prompt.lower().split())
            if key in first_by_example:
                parent[root(first)] = root(first_by_example[key])
            else:
                first_by_example[key] = first
    comps: dict[int, list[int]] = defaultdict(list)
    for i in range(len(beh)):
        comps[root(i)].append(i)
    return list(comps.values())


def _attach_examples(found: list[Finding], docs: dict[str, str], idf: dict[str, float]) -> None:
    """A worked example belongs to the finding whose specific words it shares most."""
    for text in docs.values():
        for ex in examples(text):
            words = {_stem(w) for w in content_words(ex.prompt + " " + ex.response)}
            scored = [(sum(idf.get(w, 0.0) for w in set(f.key_words) & words), i) for i, f in enumerate(found)]
            if not scored:
                continue
            v, i = max(scored)
            if v >= 2.0 and all(e.prompt != ex.prompt for e in found[i].examples):
                found[i].examples.append(ex)


def cooccurring(docs: dict[str, str], needles: list[str]) -> dict[str, int]:
    """How many documents mention each needle (case-insensitive substring)."""
    low = {d: t.lower() for d, t in docs.items()}
    return {n: sum(n.lower() in t for t in low.values()) for n in needles}


def group_by(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for k, v in items:
        out[k].append(v)
    return out
