"""Fast batched sampling for local causal LMs: one forward per step for the whole batch, with a KV cache.

`model.generate` spends most of its time per step outside the model on CPU for a 135M model; this loop does only
what an audit needs (temperature, top-p, stop tokens, left padding) and nothing else.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel


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

    temperature 0 is greedy. Rows that finished stop costing anything but their slot in the batch.
    """
    if not prompts:
        return []
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    logits = out.logits[:, -1, :]
    next_pos = positions[:, -1:] + 1
    done = torch.zeros(len(prompts), dtype=torch.bool)
    result: list[list[int]] = [[] for _ in prompts]
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long)
    for _ in range(max_new_tokens):
        tok = _pick(logits.float(), temperature, top_p, gen)
        is_stop = torch.isin(tok.cpu(), stops)
        for i in torch.nonzero(~done & ~is_stop).flatten().tolist():
            result[i].append(int(tok[i]))
        done |= is_stop
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long, device=device)], dim=1)
        out = model(
            input_ids=tok[:, None].to(device),
            attention_mask=mask,
            position_ids=next_pos,
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return result


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1).cpu()
    probs = torch.softmax(logits.cpu() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)
