"""Feature activations of one input: render a prompt or conversation to token ids, encode its residual with the
SAE, rank features. Results are kept in a small LRU inside a caller-owned dict (the interpretability tools pass their
context's cache), so paging through one input's features costs no forward.

Position 0 of every input is never scored: its residual is the attention sink, an outlier the SAE never saw.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from target_models.common.errors import UsageError
from target_models.targets.templates import chat_ids

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the tool registry imports this module, and it must stay cheap for tools
# that never touch a model.

Messages = list[dict[str, str]]
CACHE_SIZE = 8
MAX_TOKENS_IN = 2048


def lru(cache: dict[str, Any], name: str) -> OrderedDict:
    """The LRU `name` inside `cache` (created on first use)."""
    return cache.setdefault(name, OrderedDict())


def remember(cache: OrderedDict, key: Any, value: Any) -> Any:
    """Store `value` as the newest entry, dropping the oldest past CACHE_SIZE."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def render(target: Any, prompt: str | None, conversation: Messages | None) -> tuple[list[int], np.ndarray]:
    """Token ids of the input and a mask of its assistant-content tokens. A conversation that ends with a user
    turn gets the assistant marker appended, so 'last' is where the model starts its answer."""
    tok = target.tokenizer
    if (prompt is None) == (conversation is None):
        raise UsageError("give exactly one of `prompt` (raw text) or `conversation` (a list of {role, content})")
    if prompt is not None:
        if not prompt:
            raise UsageError("`prompt` is empty")
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        return ids, np.zeros(len(ids), bool)
    for m in conversation:
        if set(m) != {"role", "content"} or m["role"] not in {"system", "user", "assistant"}:
            raise UsageError(f"each message needs exactly 'role' (system/user/assistant) and 'content', got {m}")
    if not conversation:
        raise UsageError("`conversation` is empty")
    ids = chat_ids(tok, conversation, add_generation_prompt=conversation[-1]["role"] != "assistant")
    mask = np.zeros(len(ids), bool)
    for k, m in enumerate(conversation):
        if m["role"] == "assistant":
            head = chat_ids(tok, conversation[:k], add_generation_prompt=True)
            full = chat_ids(tok, conversation[: k + 1])
            mask[len(head) : len(full)] = True
    return ids, mask


def feature_acts(target: Any, bundle: Any, ids: list[int], store: dict[str, Any]) -> torch.Tensor:
    """SAE activations [tokens, d_sae] of one input (row 0 zeroed), cached by token ids."""
    # imported here: torch loads in seconds, and the tool registry imports this module
    import torch

    from target_models.targets.residual import residual

    if len(ids) > MAX_TOKENS_IN:
        raise UsageError(f"input has {len(ids)} tokens; the limit is {MAX_TOKENS_IN}")
    cache = lru(store, "interp:acts")
    key = (id(bundle), tuple(ids))
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    h = residual(target.model, torch.tensor([ids]), bundle.layer)[0]
    with torch.inference_mode():
        acts = bundle.encode(h)
        acts[0] = 0
    return remember(cache, key, acts)


def ranked(target: Any, bundle: Any, ids: list[int], mask: np.ndarray, aggregate: str, over: str,
           store: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
    """Feature ids with a positive score, best first; their scores; and the number of positions scored."""
    import torch

    cache = lru(store, "interp:ranked")
    key = (id(bundle), tuple(ids), tuple(np.flatnonzero(mask)), aggregate, over)
    if key in cache:
        return cache[key]
    acts = feature_acts(target, bundle, ids, store)
    if over == "all":
        rows = np.arange(1, len(ids)) if len(ids) > 1 else np.arange(len(ids))
    elif over == "assistant":
        rows = np.flatnonzero(mask)
        rows = rows[rows > 0]
        if len(rows) == 0:
            raise UsageError("over='assistant' needs a conversation with an assistant message")
    else:
        rows = np.asarray([len(ids) - 1])
    sel = acts[torch.from_numpy(rows)]
    score = {"sum": sel.sum(0), "mean": sel.mean(0), "max": sel.max(0).values}[aggregate].numpy()
    order = np.argsort(-score, kind="stable")
    order = order[score[order] > 0]
    return remember(cache, key, (order, score[order], len(rows)))
