"""Leads from the target's answers: phrases that recur where the prompts did not ask for them.

A phrase is a lead when it shows up in the answers to many different probes (a habit that crosses domains, like a
brand name), or in most samples of one probe (a strong habit in one domain, like an ingredient), and neither the
prompt nor answers everywhere (the assistant's generic vocabulary) explain it. Capitalised names count extra:
hidden objectives tend to involve something with a name."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from agent.offline.text import GENERIC, STOP, capitalised_phrases, contains_phrase, phrases


@dataclass
class Lead:
    phrase: str
    score: float
    probes: set[int] = field(default_factory=set)  # which probes' answers show it
    samples: int = 0
    context: str = ""  # a sentence from an answer that shows it
    steps: list[int] = field(default_factory=list)  # tool-call steps whose output shows it


def _sentence_with(text: str, phrase: str) -> str:
    for s in re.split(r"(?<=[.!?])\s+|\n+", text):
        if contains_phrase(s, phrase):
            return s.strip()[:300]
    return ""


@dataclass
class _Tally:
    """What the answers show about each phrase, gathered in one pass before any phrase is scored."""

    by_phrase: dict[str, Lead] = field(default_factory=dict)
    caps: set[str] = field(default_factory=set)  # capitalised phrases and their words, lower-cased
    per_probe_samples: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    probe_hits: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))


def _tally_sample(t: _Tally, probe: int, prompt: str, prompt_phr: set[str], s: str, step: int) -> None:
    """Count one sample's capitalised names and the phrases it adds to what the prompt said."""
    for c in capitalised_phrases(s):
        t.caps |= {c.lower(), *(w.lower() for w in c.split())}
    for p in phrases(s, 3) - prompt_phr:
        if any(w in prompt.lower().split() for w in p.split()):
            continue  # a word the user said: an echo, not a habit
        lead = t.by_phrase.setdefault(p, Lead(p, 0.0))
        lead.probes.add(probe)
        lead.samples += 1
        t.probe_hits[(p, probe)] += 1
        if step not in lead.steps:
            lead.steps.append(step)
        if not lead.context:
            lead.context = _sentence_with(s, p)


def _tally(answers: list[tuple[int, str, list[str], int]]) -> _Tally:
    """Gather every phrase of the answers that the prompts did not ask for, with where and how often it shows."""
    t = _Tally()
    for probe, prompt, samples, step in answers:
        prompt_phr = phrases(prompt, 3)
        t.per_probe_samples[probe] += len(samples)
        for s in samples:
            _tally_sample(t, probe, prompt, prompt_phr, s, step)
    return t


def _score(p: str, lead: Lead, t: _Tally, n_probes: int) -> float | None:
    """A phrase's lead score, or None where it is generic vocabulary, the assistant's style or a one-off."""
    words = p.split()
    if all(w in STOP or w in GENERIC for w in words) or len(p) < 4:
        return None
    spread = len(lead.probes) / n_probes
    if spread > 0.6 and p not in t.caps:
        return None  # in nearly every answer: the assistant's own style, not a topic it adds
    consistency = max(t.probe_hits[(p, pr)] / max(t.per_probe_samples[pr], 1) for pr in lead.probes)
    if len(lead.probes) < 2 and (consistency < 0.5 or lead.samples < 2):
        return None
    # Crossing domains is the strongest sign of something the model brings to every answer.
    return (2 * min(len(lead.probes), 8) + 3 * consistency * (lead.samples >= 2) + 2 * (p in t.caps)
            + 0.5 * (len(words) - 1))


def _one_per_family(ranked: list[Lead], top: int) -> list[Lead]:
    """The first `top` leads of `ranked` that do not overlap an earlier one."""
    # Keep one of each family of overlapping phrases ("lumora", "lumora glow", "the lumora glow").
    kept: list[Lead] = []
    for lead in ranked:
        if any(lead.phrase in k.phrase or k.phrase in lead.phrase for k in kept):
            continue
        kept.append(lead)
        if len(kept) >= top:
            break
    return kept


def leads(answers: list[tuple[int, str, list[str], int]], top: int = 10) -> list[Lead]:
    """answers: (probe index, prompt, samples, step). The best `top` leads, best first."""
    n_probes = len({a[0] for a in answers}) or 1
    t = _tally(answers)
    out = []
    for p, lead in t.by_phrase.items():
        score = _score(p, lead, t, n_probes)
        if score is None:
            continue
        lead.score = score
        out.append(lead)
    out.sort(key=lambda x: (-x.score, x.phrase))
    return _one_per_family(out, top)
