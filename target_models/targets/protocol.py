"""What an audit talks to: the `Target` protocol that chat, prefill and raw sampling need. `LocalTarget` (a model in
memory, with internals) and `RemoteTarget` (an OpenAI-compatible server, text only) implement it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

Message = dict[str, str]


@runtime_checkable
class Target(Protocol):
    name: str
    # True when the weights are in memory (`.model`, `.tokenizer`): the interpretability tools need them.
    has_internals: bool
    # The most tokens prompt + reply may take together (the model's context window); None: unknown.
    context_tokens: int | None

    def count_tokens(self, prompt: list[Message] | str, *, prefill: str | None = None,
                     next_role: str = "assistant") -> int | None:
        """Tokens of a prompt as the target would see it: a conversation rendered up to where the `next_role` turn
        begins (plus any prefill), or raw text (no template). None when this target cannot count them."""
        ...

    def chat(self, messages: list[Message], *, n: int = 1, temperature: float = 1.0, max_tokens: int = 200,
             prefill: str | None = None, seed: int = 0) -> list[str]:
        """`n` replies to a conversation; with a prefill, replies continue it (the prefill is not repeated)."""
        ...

    def chat_many(self, conversations: list[list[Message]], *, temperature: float = 1.0, max_tokens: int = 200,
                  seed: int = 0) -> list[str]:
        """One reply to each conversation."""
        ...

    def complete(self, text: str, *, n: int = 1, temperature: float = 1.0, max_tokens: int = 200,
                 seed: int = 0) -> list[str]:
        """Raw text continuation, no chat template."""
        ...

    def user_turn(self, messages: list[Message], *, n: int = 1, temperature: float = 1.0, max_tokens: int = 120,
                  seed: int = 0) -> list[str]:
        """The model writes the next user turn."""
        ...
