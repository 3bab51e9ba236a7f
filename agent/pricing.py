"""Dollar cost of a Messages API call from its `usage` block.

Prices are USD per million tokens (list prices, 5-minute cache writes). Models are matched by the longest prefix,
so dated snapshots ("claude-sonnet-4-5-20250929") find their family; an unknown model is costed at the most
expensive tier rather than as free, so a `--max-usd` budget errs on the side of stopping early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write: float
    cache_read: float


def _tier(inp: float, out: float) -> Price:
    # Anthropic's cache multipliers: writes 1.25x input, reads 0.1x input.
    return Price(inp, out, inp * 1.25, inp * 0.1)


# Family prefixes ("claude-sonnet", ...) cover snapshots newer than this table at their family's last list price;
# update the table when a family's price changes.
PRICES: dict[str, Price] = {
    "claude-opus": _tier(15.0, 75.0),
    "claude-opus-4-5": _tier(5.0, 25.0),
    "claude-opus-4-6": _tier(5.0, 25.0),
    "claude-sonnet": _tier(3.0, 15.0),
    "claude-haiku": _tier(1.0, 5.0),
    "claude-opus-4-1": _tier(15.0, 75.0),
    "claude-opus-4": _tier(15.0, 75.0),
    "claude-3-opus": _tier(15.0, 75.0),
    "claude-sonnet-4": _tier(3.0, 15.0),
    "claude-3-7-sonnet": _tier(3.0, 15.0),
    "claude-3-5-sonnet": _tier(3.0, 15.0),
    "claude-haiku-4-5": _tier(1.0, 5.0),
    "claude-3-5-haiku": _tier(0.8, 4.0),
    "claude-3-haiku": _tier(0.25, 1.25),
}
FALLBACK = _tier(15.0, 75.0)


def price_for(model: str) -> Price:
    best = max((k for k in PRICES if model.startswith(k)), key=len, default=None)
    return PRICES[best] if best else FALLBACK


def _get(usage: Any, key: str) -> int:
    v = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
    return int(v or 0)


def usage_dict(usage: Any) -> dict[str, int]:
    """The four token counts that matter for cost, from an SDK Usage object or a dict."""
    return {k: _get(usage, k) for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                        "cache_read_input_tokens")}


def cost(model: str, usage: Any) -> float:
    u = usage_dict(usage)
    p = price_for(model)
    return (u["input_tokens"] * p.input + u["output_tokens"] * p.output
            + u["cache_creation_input_tokens"] * p.cache_write + u["cache_read_input_tokens"] * p.cache_read) / 1e6


def total_tokens(usage: Any) -> int:
    return sum(usage_dict(usage).values())
