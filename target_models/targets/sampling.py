"""Fast batched sampling for local causal LMs: one forward per step for the whole batch, with a KV cache.

`model.generate` spends much of its time per step outside the model on CPU for a 135M model; this loop does only
what an audit needs (temperature, top-p, stop tokens, left padding) and nothing else. What measurably helps on CPU
(bench/sampling.py): identical prompts (`n` samples of one chat) are prefilled once and their cache fanned out to
the batch; the prefill computes logits for the last position only (the 49k-word unembedding of every prompt token is
a quarter of a 135M model's prefill); rows that reached a stop token leave the batch; the attention mask is
preallocated instead of regrown every step; the KV cache writes into spare room instead of concatenating; a token is
drawn by inverse CDF from one uniform number per row instead of `torch.multinomial` (together these halved the
time a batch-8 decode step spends outside the matmuls).

Tried and dropped (measured on AVX2 EPYC, SmolLM2-135M): bf16 or fp16 weights (2x slower matmuls: no native bf16),
dynamic int8 Linear (slower at batch 1 and greedy outputs diverge after a few tokens), a hand-written Llama decode
with a static cache and fused QKV / gate-up weights (10-20 % at best, and it would bypass the forward hooks the
steering tools rely on).
"""

from __future__ import annotations

import inspect
from functools import cache

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

from target_models.targets.residual import head_split


@cache
def _cache_kwarg(forward_cls: type) -> str:
    # transformers 5.x renamed `past_key_values` to `cache` (the old name warns); models not yet ported keep it.
    params = inspect.signature(forward_cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@cache
def _takes_logits_to_keep(forward_cls: type) -> bool:
    return "logits_to_keep" in inspect.signature(forward_cls.forward).parameters


def _decode(model, split, kv, **kw) -> torch.Tensor:
    """Next-token logits for the last position. For a few rows, the unembedding as (vocab x d) @ (d x rows) runs
    ~2x faster on CPU than the (rows x d) @ (d x vocab) that nn.Linear does (bench/sampling.py)."""
    if split is None:
        return model(**kw, use_cache=True, **{_cache_kwarg(type(model)): kv}).logits[:, -1, :]
    decoder, head = split
    h = decoder(**kw, use_cache=True, **{_cache_kwarg(type(decoder)): kv}).last_hidden_state[:, -1, :]
    return torch.mm(head.weight, h.t().to(head.weight.dtype)).t()


@torch.inference_mode()
def sample(
    model: PreTrainedModel,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_ids: set[int],
    pad_id: int,
    seed: int = 0,
) -> list[list[int]]:
    """Continue each token-id prompt; returns the new ids of each, without the stop token.

    temperature 0 is greedy. Rows that finish leave the batch, so they stop costing anything.
    """
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("sample: every prompt needs at least one token")
    # One generator per row: a row's sample depends on the seed and its row number only, not on which other rows
    # are still in the batch (finished rows leave it).
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(len(prompts))]
    device = next(model.parameters()).device
    cache_kw = _cache_kwarg(type(model))
    last_only = {"logits_to_keep": 1} if _takes_logits_to_keep(type(model)) else {}
    split = head_split(model)

    # Prefill each distinct prompt once; `fan` maps every batch row to its prompt's row in the prefill.
    unique: dict[tuple[int, ...], int] = {}
    fan = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
    firsts = list(unique)
    b, width = len(prompts), max(len(p) for p in firsts)
    ids = torch.full((len(firsts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((b, width + max_new_tokens), dtype=torch.long)
    for i, p in enumerate(firsts):
        ids[i, width - len(p) :] = torch.tensor(p)
    for i, p in enumerate(prompts):
        mask[i, width - len(p) : width] = 1
    fan_t = torch.tensor(fan)
    prefill_mask = mask[_first_rows(fan), :width]
    ids, prefill_mask = ids.to(device), prefill_mask.to(device)
    positions = (prefill_mask.cumsum(-1) - 1).clamp(min=0)
    kv = _GrowingCache()
    out = model(input_ids=ids, attention_mask=prefill_mask, position_ids=positions, use_cache=True,
                **{cache_kw: kv}, **last_only)
    logits = out.logits[:, -1, :]
    if len(firsts) < b:
        kv.reorder_cache(fan_t.to(device))
        logits = logits[fan_t.to(device)]
    next_pos = positions[fan_t.to(device), -1:] + 1

    tokens = torch.empty((b, max_new_tokens), dtype=torch.long)
    lengths = torch.full((b,), max_new_tokens, dtype=torch.long)
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long)
    alive = torch.arange(b)  # batch row -> original row; finished rows leave the batch
    mask = mask.to(device)
    step = 0
    for step in range(max_new_tokens):
        tok = _pick(logits.float(), temperature, top_p, [gens[i] for i in alive.tolist()])
        tokens[alive, step] = tok
        is_stop = torch.isin(tok, stops)
        if bool(is_stop.any()):
            lengths[alive[is_stop]] = step
            keep = torch.nonzero(~is_stop).flatten()
            if len(keep) == 0:
                break
            # At small batch on CPU a decode step costs nearly in proportion to its rows (measured: the 49k-word
            # unembedding is 7x slower for 8 rows than for 1), so finished rows are dropped, not carried.
            alive, tok, next_pos, mask = alive[keep], tok[keep], next_pos[keep.to(device)], mask[keep.to(device)]
            kv.batch_select_indices(keep.to(device))
        if step == max_new_tokens - 1:
            break
        mask[:, width + step] = 1
        logits = _decode(model, split, kv, input_ids=tok[:, None].to(device),
                         attention_mask=mask[:, : width + step + 1], position_ids=next_pos)
        next_pos = next_pos + 1
    rows = tokens[:, : step + 1].tolist()
    return [r[: int(n)] for r, n in zip(rows, lengths, strict=True)]


class _GrowingLayer(DynamicLayer):
    """A layer cache that writes each step into spare room instead of concatenating: DynamicLayer copies the whole
    cache every step (7% of a batch-8 decode step on CPU, bench/sampling.py). Room doubles when it runs out."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._k = self._v = None
            self._n = 0
        n = self._n + key_states.shape[-2]
        if self._k is None or n > self._k.shape[-2]:
            room = max(n + 64, 2 * (self._k.shape[-2] if self._k is not None else 0))
            self._k, self._v = (_with_room(t, key_states, self._n, room) for t in (self._k, self._v))
        self._k[..., self._n : n, :] = key_states
        self._v[..., self._n : n, :] = value_states
        self._n = n
        self.keys, self.values = self._k[..., :n, :], self._v[..., :n, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx.to(self._k.device))


def _with_room(old: torch.Tensor | None, like: torch.Tensor, used: int, room: int) -> torch.Tensor:
    shape = (*like.shape[:-2], room, like.shape[-1])
    new = like.new_empty(shape)
    if old is not None:
        new[..., :used, :] = old[..., :used, :]
    return new


class _GrowingCache(DynamicCache):
    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=_GrowingLayer)


def _first_rows(fan: list[int]) -> list[int]:
    """For each distinct prompt, the first batch row that holds it (its padding is the same in every copy)."""
    first: dict[int, int] = {}
    for row, u in enumerate(fan):
        first.setdefault(u, row)
    return [first[u] for u in range(len(first))]


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gens: list[torch.Generator]) -> torch.Tensor:
    """One token per row. Inverse-CDF sampling (one uniform number per row from the row's generator):
    `torch.multinomial` draws an exponential variate for every vocabulary entry, 5% of a batch-8 decode step."""
    if temperature <= 0:
        return logits.argmax(-1).cpu()
    probs = torch.softmax(logits.cpu() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    cdf = probs.double().cumsum(-1)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in gens])
    # right=True: the first index whose cdf exceeds u * total, so a zero-probability token is never picked.
    return torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).flatten().clamp_(max=probs.shape[-1] - 1)
