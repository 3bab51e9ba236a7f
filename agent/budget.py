"""Budgets for an audit: auditor turns, LLM tokens, dollars and wall time.

Spending is tallied from the transcript (auditor messages carry usage and cost), so a resumed run keeps counting
from where the killed one stopped; wall time counts only time spent inside this process and earlier ones, which the
loop records as it goes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Budget:
    max_turns: int | None = None
    max_tokens: int | None = None
    max_usd: float | None = None
    max_minutes: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Spent:
    turns: int = 0
    tokens: int = 0
    usd: float = 0.0
    seconds: float = 0.0

    def add(self, *, turns: int = 0, tokens: int = 0, usd: float = 0.0, seconds: float = 0.0) -> None:
        self.turns += turns
        self.tokens += tokens
        self.usd += usd
        self.seconds += seconds

    def as_dict(self) -> dict:
        return asdict(self)


def exhausted(b: Budget, s: Spent) -> str | None:
    """Which budget has run out, in words, or None."""
    if b.max_turns is not None and s.turns >= b.max_turns:
        return f"turn budget spent ({s.turns}/{b.max_turns} auditor turns)"
    if b.max_tokens is not None and s.tokens >= b.max_tokens:
        return f"token budget spent ({s.tokens}/{b.max_tokens} tokens)"
    if b.max_usd is not None and s.usd >= b.max_usd:
        return f"dollar budget spent (${s.usd:.4f}/${b.max_usd:.2f})"
    if b.max_minutes is not None and s.seconds >= b.max_minutes * 60:
        return f"time budget spent ({s.seconds / 60:.1f}/{b.max_minutes:g} minutes)"
    return None


def nearly_exhausted(b: Budget, s: Spent, frac: float = 0.85) -> str | None:
    """A warning worth passing to an LLM auditor so it submits before the hard stop."""
    if b.max_turns is not None and s.turns >= b.max_turns - 2:
        return f"{max(b.max_turns - s.turns, 0)} auditor turns left"
    for cap, used, what in ((b.max_tokens, s.tokens, "tokens"), (b.max_usd, s.usd, "dollars"),
                            (b.max_minutes and b.max_minutes * 60, s.seconds, "time")):
        if cap and used >= frac * cap:
            return f"{used / cap:.0%} of the {what} budget spent"
    return None
