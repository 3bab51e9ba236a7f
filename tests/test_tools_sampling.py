"""target_models.targets.sampling.sample on the real tiny organism: the fast path must sample what
model.generate does."""

from __future__ import annotations

import warnings

import torch

from target_models.targets.sampling import sample

HI = [{"role": "user", "content": "How do I bake bread?"}]
LONG = [{"role": "user", "content": "Tell me about Python lists and why they matter for beginners."}]


def _kw(t, **kw):
    return {"stop_ids": t.stop_ids, "pad_id": t.tokenizer.pad_token_id, **kw}


def test_greedy_matches_model_generate(tiny_target):
    t = tiny_target
    for msgs in (HI, LONG):
        ids = t.render(msgs)
        x = torch.tensor([ids])
        ref = t.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=20, min_new_tokens=20,
                               do_sample=False, pad_token_id=t.tokenizer.pad_token_id)[0, len(ids):].tolist()
        assert sample(t.model, [ids], max_new_tokens=20, temperature=0, stop_ids=set(),
                      pad_id=t.tokenizer.pad_token_id)[0] == ref


def test_batched_and_padded_rows_equal_their_single_runs(tiny_target):
    t = tiny_target
    a, b = t.render(HI), t.render(LONG)
    batch = sample(t.model, [a, b, a], max_new_tokens=24, temperature=0, **_kw(t))
    assert batch[0] == batch[2] == sample(t.model, [a], max_new_tokens=24, temperature=0, **_kw(t))[0]
    assert batch[1] == sample(t.model, [b], max_new_tokens=24, temperature=0, **_kw(t))[0]


def test_sampling_is_seeded_per_row_and_stops_are_excluded(tiny_target):
    t = tiny_target
    ids = t.render(HI)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # e.g. the deprecated past_key_values argument
        one = sample(t.model, [ids] * 6, max_new_tokens=40, temperature=1.0, seed=11, **_kw(t))
    assert one == sample(t.model, [ids] * 6, max_new_tokens=40, temperature=1.0, seed=11, **_kw(t))
    assert len({tuple(r) for r in one}) > 1
    assert one != sample(t.model, [ids] * 6, max_new_tokens=40, temperature=1.0, seed=12, **_kw(t))
    assert not any(set(r) & t.stop_ids for r in one)
    assert all(len(r) <= 40 for r in one)
    assert sample(t.model, [], max_new_tokens=5, **_kw(t)) == []
    assert sample(t.model, [ids], max_new_tokens=0, **_kw(t)) == [[]]


def test_rows_that_stop_leave_the_batch_without_changing_the_others(tiny_target):
    t = tiny_target
    ids = t.render(HI)
    free = sample(t.model, [ids] * 4, max_new_tokens=30, temperature=1.0, seed=3, stop_ids=set(),
                  pad_id=t.tokenizer.pad_token_id)
    stop = free[1][5]  # make row 1 (and any row that emits this token) stop early
    stopped = sample(t.model, [ids] * 4, max_new_tokens=30, temperature=1.0, seed=3, stop_ids={stop},
                     pad_id=t.tokenizer.pad_token_id)
    for f, s in zip(free, stopped, strict=True):
        cut = f.index(stop) if stop in f else len(f)
        assert s == f[:cut]


def test_picks_follow_the_softmax_and_top_p_drops_the_tail():
    from target_models.targets.sampling import _pick

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05, 0.0]]))
    gen = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.cat([_pick(logits, 1.0, 1.0, [gen]) for _ in range(4000)]), minlength=5)
    assert counts[4] == 0  # zero probability is never picked
    freq = counts.double() / 4000
    assert torch.allclose(freq[:4], torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64), atol=0.03)
    nucleus = torch.cat([_pick(logits, 1.0, 0.7, [gen]) for _ in range(2000)])
    assert set(nucleus.tolist()) == {0, 1}  # 0.5 + 0.3 reaches top_p 0.7; the rest is cut
    sharp = torch.cat([_pick(logits, 0.1, 1.0, [gen]) for _ in range(500)])
    assert (sharp == 0).double().mean() > 0.95  # low temperature concentrates on the mode
    rows = _pick(logits.repeat(3, 1), 1.0, 1.0, [torch.Generator().manual_seed(s) for s in (1, 1, 2)])
    assert rows.shape == (3,) and rows[0] == rows[1]  # each row draws from its own generator
