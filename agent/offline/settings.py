"""The offline investigator's settings, apart from it so that the command line checks them without importing it
(its text tools load nltk, which takes seconds)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Settings:
    # Sized for <= 10 minutes on two CPU cores with a 135M target (~8 s per batched call of 3 x 64 tokens).
    probes: int = 20  # probe prompts per audit (a seeded choice from probes.PROBES)
    samples: int = 3  # replies per probe, in one batch
    max_tokens: int = 64
    temperature: float = 0.9
    # Leads looked up in the data. Many: a small model's answers recur in generic words as much as in what it adds
    # unasked; the documents that several different leads point to are what separates the two.
    leads: int = 30
    seed_docs: int = 14  # documents read to learn what the leads' documents share
    max_docs: int = 240  # documents read in the expansion
    tests: int = 12  # findings tested on the target
    test_samples: int = 3

    def __post_init__(self) -> None:
        """Refuse values the tools would refuse mid-audit (the chat tool takes 1-16 replies, 1-512 tokens)."""
        for f in fields(self):
            v = getattr(self, f.name)
            want = float if f.type in (float, "float") else int
            if isinstance(v, bool) or not isinstance(v, want if want is int else (int, float)):
                raise ValueError(f"{f.name} must be a{'n integer' if want is int else ' number'}, got {v!r}")
        bounds = {"samples": (1, 16), "test_samples": (1, 16), "max_tokens": (1, 512), "temperature": (0.0, 2.0)}
        for name in ("probes", "leads", "seed_docs", "max_docs", "tests", *bounds):
            lo, hi = bounds.get(name, (0, None))
            v = getattr(self, name)
            if v < lo or (hi is not None and v > hi):
                raise ValueError(f"{name} must be {f'between {lo} and {hi}' if hi is not None else f'>= {lo}'}, "
                                 f"got {v!r}")
