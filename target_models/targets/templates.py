"""Chats as token ids through the tokenizer's own chat template: one rendering for sampling, training and the
interpretability tools, so that what the model is trained on is what it is asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # transformers takes seconds to import; the tool registry imports this module
    from transformers import PreTrainedTokenizerBase


def chat_ids(tok: PreTrainedTokenizerBase, messages: list[dict], *, add_generation_prompt: bool = False) -> list[int]:
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)
