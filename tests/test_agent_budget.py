"""Budgets and prices: which limit stops a run, and what a call costs."""

from __future__ import annotations

import pytest

from agent.budget import Budget, Spent, exhausted, nearly_exhausted
from agent.pricing import FALLBACK, cost, price_for


@pytest.mark.parametrize("budget,spent,word", [
    (Budget(max_turns=3), Spent(turns=3), "turn"),
    (Budget(max_tokens=1000), Spent(tokens=1000), "token"),
    (Budget(max_usd=0.5), Spent(usd=0.51), "dollar"),
    (Budget(max_minutes=1), Spent(seconds=61), "time"),
])
def test_each_budget_stops_at_its_limit(budget, spent, word):
    assert word in exhausted(budget, spent)
    assert exhausted(budget, Spent()) is None


def test_warning_comes_before_the_stop():
    b = Budget(max_turns=10, max_usd=1.0)
    assert nearly_exhausted(b, Spent(turns=8)) and exhausted(b, Spent(turns=8)) is None
    assert nearly_exhausted(b, Spent(usd=0.9)) and nearly_exhausted(b, Spent(turns=1, usd=0.1)) is None


def test_prices_by_family_and_unknown_models_cost_the_most():
    assert price_for("claude-sonnet-4-6").input == 3.0 and price_for("claude-haiku-4-5-20251001").output == 5.0
    assert price_for("some-new-model") == FALLBACK
    u = {"input_tokens": 1_000_000, "output_tokens": 0, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 1_000_000}
    assert cost("claude-sonnet-4-6", u) == pytest.approx(3.0 + 0.3)
