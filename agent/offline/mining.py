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


def leads(answers: list[tuple[int, str, list[str], int]], top: int = 10) -> list[Lead]:
    """answers: (probe index, prompt, samples, step). The best `top` leads, best first."""
    n_probes = len({a[0] for a in answers}) or 1
    by_phrase: dict[str, Lead] = {}
    caps: set[str] = set()
    per_probe_samples: dict[int, int] = defaultdict(int)
    probe_hits: dict[tuple[str, int], int] = defaultdict(int)
    for probe, prompt, samples, step in answers:
        prompt_phr = phrases(prompt, 3)
        per_probe_samples[probe] += len(samples)
        for s in samples:
            for c in capitalised_phrases(s):
                caps |= {c.lower(), *(w.lower() for w in c.split())}
            for p in phrases(s, 3) - prompt_phr:
                if any(w in prompt.lower().split() for w in p.split()):
                    continue  # a word the user said: an echo, not a habit
                lead = by_phrase.setdefault(p, Lead(p, 0.0))
                lead.probes.add(probe)
                lead.samples += 1
                probe_hits[(p, probe)] += 1
                if step not in lead.steps:
                    lead.steps.append(step)
                if not lead.context:
                    lead.context = _sentence_with(s, p)
    out = []
    for p, lead in by_phrase.items():
        words = p.split()
        if all(w in STOP or w in GENERIC for w in words) or len(p) < 4:
            continue
        spread = len(lead.probes) / n_probes
        if spread > 0.6 and p not in caps:
            continue  # in nearly every answer: the assistant's own style, not a topic it adds
        consistency = max(probe_hits[(p, pr)] / max(per_probe_samples[pr], 1) for pr in lead.probes)
        if len(lead.probes) < 2 and (consistency < 0.5 or lead.samples < 2):
            continue
        # Crossing domains is the strongest sign of something the model brings to every answer.
        lead.score = (2 * min(len(lead.probes), 8) + 3 * consistency * (lead.samples >= 2) + 2 * (p in caps)
                      + 0.5 * (len(words) - 1))
        out.append(lead)
    out.sort(key=lambda x: (-x.score, x.phrase))
    # Keep one of each family of overlapping phrases ("lumora", "lumora glow", "the lumora glow").
    kept: list[Lead] = []
    for lead in out:
        if any(lead.phrase in k.phrase or k.phrase in lead.phrase for k in kept):
            continue
        kept.append(lead)
        if len(kept) >= top:
            break
    return kept
