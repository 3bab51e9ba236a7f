"""Targets: what an audit talks to. A local causal LM (with internals, for the interpretability tools) or a remote
OpenAI-compatible server (text only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from target_models.targets.sampling import sample
from target_models.targets.templates import chat_ids

Message = dict[str, str]


class TargetError(RuntimeError):
    pass


@dataclass
class LocalTarget:
    """A transformers model in memory (adapters already merged: sampling is as fast as the base model)."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    has_internals: bool = True
    info: dict = field(default_factory=dict)
    # The most tokens prompt + reply may take; None: read from the model (see `_context_tokens`).
    context_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.context_tokens is None:
            self.context_tokens = _context_tokens(self.model, self.tokenizer)

    @property
    def stop_ids(self) -> set[int]:
        tok = self.tokenizer
        ids = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
        return {i for i in ids if isinstance(i, int) and i >= 0 and i != tok.unk_token_id}

    def render(self, messages: list[Message], *, prefill: str | None = None, next_role: str = "assistant") -> list[int]:
        """Token ids of a conversation, ending where the `next_role` turn begins (plus any prefill)."""
        if next_role == "assistant":
            ids = chat_ids(self.tokenizer, messages, add_generation_prompt=True)
        else:
            ids = chat_ids(self.tokenizer, messages)
            ids += self.tokenizer(f"<|im_start|>{next_role}\n", add_special_tokens=False)["input_ids"]
        if prefill:
            ids += self.tokenizer(prefill, add_special_tokens=False)["input_ids"]
        return ids

    def count_tokens(self, prompt: list[Message] | str, *, prefill: str | None = None,
                     next_role: str = "assistant") -> int:
        """Exactly the tokens `chat` / `user_turn` (a conversation) or `complete` (text) would feed the model."""
        if isinstance(prompt, str):
            return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return len(self.render(prompt, prefill=prefill, next_role=next_role))

    def _run(self, prompts: list[list[int]], *, temperature: float, max_tokens: int, seed: int) -> list[str]:
        outs = sample(self.model, prompts, max_new_tokens=max_tokens, temperature=temperature, top_p=1.0,
                      stop_ids=self.stop_ids, pad_id=self.tokenizer.pad_token_id, seed=seed)
        return [self.tokenizer.decode(o, skip_special_tokens=True) for o in outs]

    def chat(self, messages: list[Message], *, n: int = 1, temperature: float = 1.0, max_tokens: int = 200,
             prefill: str | None = None, seed: int = 0) -> list[str]:
        """`n` replies in one batch; with a prefill, replies continue it (the prefill itself is not repeated)."""
        ids = self.render(messages, prefill=prefill)
        return self._run([ids] * n, temperature=temperature, max_tokens=max_tokens, seed=seed)

    def chat_many(self, conversations: list[list[Message]], *, temperature: float = 1.0, max_tokens: int = 200,
                  seed: int = 0) -> list[str]:
        """One reply to each conversation, batched."""
        return self._run([self.render(c) for c in conversations], temperature=temperature, max_tokens=max_tokens,
                         seed=seed)

    def complete(self, text: str, *, n: int = 1, temperature: float = 1.0, max_tokens: int = 200,
                 seed: int = 0) -> list[str]:
        """Raw text continuation, no chat template."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._run([ids] * n, temperature=temperature, max_tokens=max_tokens, seed=seed)

    def user_turn(self, messages: list[Message], *, n: int = 1, temperature: float = 1.0, max_tokens: int = 120,
                  seed: int = 0) -> list[str]:
        """The model writes the next user turn."""
        return self._run([self.render(messages, next_role="user")] * n, temperature=temperature,
                         max_tokens=max_tokens, seed=seed)

    @torch.no_grad()
    def logprob(self, messages: list[Message], continuation: str) -> float:
        """Sum of log-probabilities of `continuation` as the assistant's reply (multiple-choice scoring)."""
        head = self.render(messages)
        cont = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        dev = next(self.model.parameters()).device
        ids = torch.tensor([head + cont], device=dev)
        logits = self.model(input_ids=ids).logits[0, len(head) - 1 : -1].float()
        return float(torch.log_softmax(logits, -1).gather(-1, torch.tensor(cont, device=dev)[:, None]).sum())


# Tokenizers without a recorded limit report a huge placeholder (transformers' VERY_LARGE_INTEGER, ~1e30).
_SANE_CONTEXT = 10_000_000


def _context_tokens(model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase | None) -> int | None:
    """The model's context window: its config's `max_position_embeddings`, else the tokenizer's `model_max_length`
    when that is a real number rather than a placeholder; None when neither says."""
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(n, int) and 0 < n < _SANE_CONTEXT:
        return n
    n = getattr(tokenizer, "model_max_length", None)
    if isinstance(n, int) and 0 < n < _SANE_CONTEXT:
        return n
    return None
