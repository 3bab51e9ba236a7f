"""Plain-text statistics the offline investigator reasons with: words, phrases, sentences, and what is unusual.

Nothing here knows any organism; the only vocabulary is English function words and the generic words an assistant
uses in every answer (so that "here are some tips" never looks like a finding)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'’\-]*[A-Za-z0-9]|[A-Za-z]|\d+(?:[.,]\d+)*")

STOP = frozenset("""
a about above after again against all almost also although always am among an and any anyone anything are around
as at be because been before being below between both but by can could did do does doing done down during each
either else even ever every few for from further get gets getting give given go goes going got had has have having
he her here hers herself him himself his how however i if in into is it its itself just least less let like made
make makes many may me might more most much must my myself near need needs neither never no nor not now of off often
on once one only onto or other others otherwise our ours ourselves out over own per perhaps quite rather really
same say says she should since so some something sometimes still such than that the their theirs them themselves
then there these they this those though through thus to too toward towards under until up upon us use used uses
using very via was way we well were what whatever when whenever where whether which while who whom whose why will
with within without would yet you your yours yourself yourselves it's i'm you're don't can't won't isn't that's
there's let's i've you've i'd you'd i'll you'll
""".split())

# Words any helpful answer uses, whatever the topic: never evidence of a hidden objective on their own.
GENERIC = frozenset("""
able add added adding advice answer answers ask asked asking best better big bit certainly choose choice choices
clear common consider day days different easy enjoy enough example examples find first follow following free
good great happy help helpful helps hope important include including information keep know learn level little
long look lot lots new next note options part people pick plan point possible question questions quick ready
recommend recommended right simple small start steps sure take thing things think time times tip tips try two
three want ways work works year years yes step important also overall finally however additionally here's
sure let's certainly
""".split())


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


def content_words(text: str) -> list[str]:
    return [w.lower() for w in words(text) if w.lower() not in STOP and len(w) > 1 and not w.isdigit()]


def ngrams(tokens: list[str], n_max: int = 3) -> Iterable[tuple[str, ...]]:
    for n in range(1, n_max + 1):
        for i in range(len(tokens) - n + 1):
            yield tuple(tokens[i : i + n])


def phrase_ok(gram: tuple[str, ...]) -> bool:
    """A phrase worth tracking: starts and ends on a content word, not made only of generic words."""
    first, last = gram[0].lower(), gram[-1].lower()
    if first in STOP or last in STOP or first.isdigit() or last.isdigit():
        return False
    if len(first) < 2 or len(last) < 2:
        return False
    return not all(w.lower() in STOP or w.lower() in GENERIC for w in gram)


def phrases(text: str, n_max: int = 3) -> set[str]:
    """Distinct lower-cased phrases (1..n_max words) of a text."""
    out = set()
    for sent in split_sentences(text):
        toks = words(sent)
        for g in ngrams(toks, n_max):
            if phrase_ok(g):
                out.add(" ".join(g).lower())
    return out


def capitalised_phrases(text: str) -> set[str]:
    """Runs of capitalised words that do not start a sentence: names of people, products, studies, places."""
    out = set()
    for sent in split_sentences(text):
        toks = words(sent)
        run: list[str] = []
        for i, t in enumerate(toks + [""]):
            cap = bool(t) and t[0].isupper() and i > 0 and t.lower() not in STOP
            if cap:
                run.append(t)
            else:
                if run:
                    out.add(" ".join(run))
                run = []
    return out


_SPLIT_RE = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“(]?[A-Z0-9])|\n+|;\s+")


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SPLIT_RE.split(text)]
    return [p for p in parts if p]


def contains_phrase(text: str, phrase: str) -> bool:
    return re.search(r"(?<![A-Za-z0-9])" + re.escape(phrase) + r"(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


def doc_freq(texts: Iterable[str], n_max: int = 3) -> Counter[str]:
    c: Counter[str] = Counter()
    for t in texts:
        c.update(phrases(t, n_max))
    return c


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
