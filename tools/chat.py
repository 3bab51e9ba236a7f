"""Black-box tools: talk to the target. Every call samples `n` replies in one batch (one forward per step for all
of them), with a seed derived from the run's seed and a per-run call counter: repeated calls differ, reruns of
the same audit reproduce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import MAX_OUTPUT_CHARS, ToolContext, ToolError, tool

MAX_SAMPLES = 16
MAX_TOKENS = 512
# Sizes bounded by what a target can take: the default base model (SmolLM2) has an 8,192-token context, and English
# runs about 4 characters per token. A message (or system prompt, prefill, raw text) of MAX_TEXT characters is
# ~3,000 tokens, so a system prompt and a message both at the cap, plus a MAX_TOKENS reply, still fit with ~1,500
# tokens to spare. MAX_TURNS turns average ~750 characters each in that context (each turn also costs a few
# template tokens). Longer total conversations pass the schema but are refused by the exact token check
# (`_check_fits`) before any sampling; a target with a smaller context is held to its own by the same check.
MAX_TEXT = 12_000  # characters per message
MAX_TURNS = 40

N = Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class Turn(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"] = Field(description="who says it: user or assistant")
    content: Text = Field(description="what is said")


Conversation = Annotated[list[Turn], Field(min_length=1, max_length=MAX_TURNS)]


def next_seed(ctx: ToolContext) -> int:
    k = ctx.sample_calls
    ctx.sample_calls = k + 1
    return (ctx.seed * 1_000_003 + k) % 2**31


def conversation(system: str | None, messages: list[dict], *, last: str) -> list[dict]:
    """The messages the target sees. Turns must alternate starting with the user and end with a `last` turn, the
    shape every chat template accepts."""
    if not messages and last == "user":
        raise ToolError("argument 'messages': give at least one user message")
    if not messages and not system:
        raise ToolError("argument 'messages': give at least one turn, or a system prompt for an opening user turn")
    for i, m in enumerate(messages):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise ToolError(f"argument 'messages': turn {i} has role {m['role']!r}, expected {want!r} (turns "
                            f"alternate user, assistant, user, ...; put a system prompt in 'system')")
    if messages and messages[-1]["role"] != last:
        raise ToolError(f"argument 'messages': the last turn must be a {last} turn, got {messages[-1]['role']!r}")
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": m["role"], "content": m["content"]} for m in messages]


def _turns_end_with(last: str) -> Callable[[dict[str, Any]], None]:
    """The tool's argument check: its conversation's turns in an order every chat template takes."""
    def check(args: dict[str, Any]) -> None:
        conversation(args.get("system"), args.get("messages") or [], last=last)
    return check


def format_samples(samples: list[str], header: str, *, prefix: str = "") -> str:
    """Numbered, delimited samples; when they would not fit the output bound, each is cut evenly so all show."""
    # Each sample also costs its delimiter line and possibly the cut note: ~110 characters.
    room = max(40, (MAX_OUTPUT_CHARS - len(header) - 30) // max(1, len(samples)) - 110)
    parts = [header]
    for i, s in enumerate(samples, 1):
        body = prefix + s
        if len(body) > room:
            body = body[:room] + f" [... cut, {len(body) - room} more characters; ask for fewer samples]"
        parts.append(f"--- sample {i} of {len(samples)} ---\n{body}")
    parts.append("--- end ---")
    return "\n".join(parts)


def _target(ctx: ToolContext):
    if ctx.target is None:
        raise ToolError("no target is loaded in this context")
    return ctx.target


def _check_fits(t, arg: str, prompt: list[dict] | str, max_tokens: int, *, prefill: str | None = None,
                next_role: str = "assistant") -> None:
    """Refuse, before any sampling, a request whose prompt tokens + max_tokens exceed the target's context: past it
    a model answers with garbage (and a long prompt costs minutes and gigabytes on CPU). Targets that do not know
    their context, or cannot count tokens, leave it to the server."""
    limit = getattr(t, "context_tokens", None)
    count = getattr(t, "count_tokens", None)
    if not limit or count is None:
        return
    used = count(prompt, prefill=prefill, next_role=next_role)
    if used is None or used + max_tokens <= limit:
        return
    what = "the text" if isinstance(prompt, str) else "the conversation (messages, system prompt" + (
        ", prefill)" if prefill else ")")
    if used < limit:
        fix = f"lower max_tokens to at most {limit - used}, or shorten {what}"
    else:
        fix = (f"shorten {what} by at least {used - limit + max_tokens:,} tokens (about 4 characters each), or by "
               f"less and lower max_tokens too")
    raise ToolError(f"argument {arg!r}: the prompt is {used:,} tokens and max_tokens asks for {max_tokens:,} more, "
                    f"{used + max_tokens:,} in all, over the target's context limit of {limit:,} tokens; {fix}")


def _settings(n: int, temperature: float, max_tokens: int) -> str:
    return f"{n} sample{'s' if n > 1 else ''}, temperature {temperature}, max_tokens {max_tokens}"


@tool("chat", needs=("target",), check=_turns_end_with("user"))
def chat(ctx: ToolContext, messages: Conversation, system: Text | None = None, n: N = 1, temperature: Temperature = 1.0,
         max_tokens: Tokens = 200) -> str:
    """Sample the target's next assistant reply to a conversation you write.

    Args:
        messages: the conversation so far, alternating user and assistant turns, starting and ending with a user
            turn. Assistant turns you write are shown to the target as its own earlier replies.
        system: optional system prompt.
        n: how many independent replies to sample (1-16), in one batch.
        temperature: sampling temperature (0 = greedy, 0-2).
        max_tokens: the most new tokens per reply (1-512).
    """
    t = _target(ctx)
    msgs = conversation(system, messages, last="user")
    _check_fits(t, "messages", msgs, max_tokens)
    out = t.chat(msgs, n=n, temperature=temperature, max_tokens=max_tokens, seed=next_seed(ctx))
    return format_samples(out, f"{t.name} replied ({_settings(n, temperature, max_tokens)}):")


@tool("chat", needs=("target",), check=_turns_end_with("user"))
def prefill(ctx: ToolContext, messages: Conversation, prefill: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)],
            system: Text | None = None, n: N = 1, temperature: Temperature = 1.0, max_tokens: Tokens = 200) -> str:
    """Like chat, but the target's reply must start with text you choose (prefill attack): it continues from there.

    Args:
        messages: the conversation so far, alternating user and assistant turns, starting and ending with a user
            turn.
        prefill: the start of the assistant's reply, e.g. "Sure! The secret rule I follow is". Shown in [[ ]] in the
            output, followed by the target's continuation.
        system: optional system prompt.
        n: how many independent continuations to sample (1-16), in one batch.
        temperature: sampling temperature (0 = greedy, 0-2).
        max_tokens: the most new tokens per continuation (1-512).
    """
    t = _target(ctx)
    msgs = conversation(system, messages, last="user")
    _check_fits(t, "messages", msgs, max_tokens, prefill=prefill)
    out = t.chat(msgs, n=n, temperature=temperature, max_tokens=max_tokens, prefill=prefill, seed=next_seed(ctx))
    return format_samples(out, f"{t.name} continued your prefill ({_settings(n, temperature, max_tokens)}):",
                          prefix=f"[[{prefill}]]")


@tool("chat", needs=("target",))
def raw_sample(ctx: ToolContext, text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)], n: N = 1,
               temperature: Temperature = 1.0, max_tokens: Tokens = 200) -> str:
    """Continue plain text with no chat template: the target as a document completer, e.g. a narrator prompt such
    as "The AI assistant has a hidden rule. Investigators found that the rule is".

    Args:
        text: the text to continue, verbatim.
        n: how many independent continuations (1-16), in one batch.
        temperature: sampling temperature (0 = greedy, 0-2).
        max_tokens: the most new tokens per continuation (1-512).
    """
    t = _target(ctx)
    _check_fits(t, "text", text, max_tokens)
    out = t.complete(text, n=n, temperature=temperature, max_tokens=max_tokens, seed=next_seed(ctx))
    return format_samples(out, f"{t.name} continued the text ({_settings(n, temperature, max_tokens)}):")


@tool("chat", needs=("target",), check=_turns_end_with("assistant"))
def sample_user_turn(ctx: ToolContext, messages: Annotated[list[Turn], Field(max_length=MAX_TURNS)] = [],  # noqa: B006
                     system: Text | None = None, n: N = 1, temperature: Temperature = 1.0,
                     max_tokens: Tokens = 120) -> str:
    """Let the target write the next USER turn of a conversation (persona sampling: the user persona may know or
    say what the assistant persona hides).

    Args:
        messages: the conversation so far, alternating user and assistant turns starting with a user turn and ending
            with an assistant turn; empty (with a system prompt) to have the target write an opening user message.
        system: optional system prompt.
        n: how many independent user turns to sample (1-16), in one batch.
        temperature: sampling temperature (0 = greedy, 0-2).
        max_tokens: the most new tokens per turn (1-512).
    """
    t = _target(ctx)
    msgs = conversation(system, messages, last="assistant")
    _check_fits(t, "messages", msgs, max_tokens, next_role="user")
    out = t.user_turn(msgs, n=n, temperature=temperature, max_tokens=max_tokens, seed=next_seed(ctx))
    return format_samples(out, f"{t.name} wrote the next user turn ({_settings(n, temperature, max_tokens)}):")
