"""Confidence intervals for behaviour rates: known values, paired comparisons, and errors that name the problem."""

import numpy as np
import pytest

from target_models.evaluation import stats


def test_wilson_matches_known_values():
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = stats.wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = stats.wilson(60, 100)
    assert lo == pytest.approx(0.5020, abs=1e-4) and hi == pytest.approx(0.6906, abs=1e-4)


@pytest.mark.parametrize("shown,n,needle", [(1, 0, "n must be positive"), (11, 10, "shown=11 is outside 0..10")])
def test_wilson_rejects_impossible_counts(shown, n, needle):
    with pytest.raises(ValueError, match=needle):
        stats.wilson(shown, n)


def _model(rates: dict[str, list[int]], replies: int = 4) -> dict[str, list[tuple[int, int]]]:
    return {b: [(k, replies) for k in hits] for b, hits in rates.items()}


def test_split_means_point_is_the_mean_of_behaviour_rates_and_its_interval_covers_it():
    org = _model({"a": [4, 4, 0, 2], "b": [1, 0, 0, 1, 2]})
    m = stats.split_means([org], draws=500, seed=3)
    expect = (10 / 16 + 4 / 20) / 2
    assert m["point"][0] == pytest.approx(expect)
    lo, hi = stats.interval(m["draws"][:, 0])
    assert lo < expect < hi and 0 <= lo and hi <= 1
    again = stats.split_means([org], draws=500, seed=3)
    assert np.array_equal(m["draws"], again["draws"])  # seeded


def test_paired_difference_is_zero_for_identical_models_and_clear_for_separated_ones():
    org = _model({"a": [4, 3, 4, 2], "b": [3, 4, 4]})
    same = stats.split_means([org, org], draws=300, seed=0)
    assert np.all(same["draws"][:, 0] == same["draws"][:, 1])  # same prompts drawn for both models
    none = _model({"a": [0, 0, 0, 0], "b": [0, 1, 0]})
    m = stats.split_means([org, none], draws=300, seed=0)
    lo, hi = stats.interval(m["draws"][:, 0] - m["draws"][:, 1])
    assert lo > 0.5 and hi <= 1.0  # clearly above: the interval excludes 0 by far
    noisy = _model({"a": [1, 0, 0, 0], "b": [0, 1, 0]})
    m = stats.split_means([noisy, none], draws=300, seed=0)
    lo, _ = stats.interval(m["draws"][:, 0] - m["draws"][:, 1])
    assert lo <= 0  # one extra hit in 28 replies is not a margin


def test_split_means_refuses_models_that_answered_different_prompts():
    with pytest.raises(ValueError, match=r"model 1 has 2 prompts for 'a', expected 3"):
        stats.split_means([_model({"a": [1, 2, 3]}), _model({"a": [1, 2]})])
    with pytest.raises(ValueError, match=r"model 1 has behaviours \['b'\]"):
        stats.split_means([_model({"a": [1]}), _model({"b": [1]})])


def test_wilson_interval_holds_its_own_estimate_at_the_ends():
    for n in (1, 3, 7, 24, 48):
        for shown in (0, n):
            lo, hi = stats.wilson(shown, n)
            assert lo <= shown / n <= hi


def test_compare_refuses_results_on_different_prompts():
    from target_models.evaluation.evaluate import compare

    def variant(prompts):
        return {"behaviours": {"per_behaviour": {"a": {"split": "test", "prompts": [
            {"prompt": p, "shown": 1, "replies": 2} for p in prompts]}}}}

    same = {"variants": {"organism": variant(["x", "y"]), "control": variant(["x", "y"])}}
    assert compare(same, 0)["test"]["organism_minus"]["control"]["diff"] == 0
    other = {"variants": {"organism": variant(["x", "y"]), "control": variant(["x", "z"])}}
    with pytest.raises(ValueError, match="'control' answered other prompts for 'a' than 'organism'"):
        compare(other, 0)
