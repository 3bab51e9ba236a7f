"""The chat tools on the real tiny organism."""

from __future__ import annotations

import re
import time

import pytest

from tools.chat import MAX_SAMPLES, conversation
from tools.registry import ToolContext, ToolError, call

HI = [{"role": "user", "content": "How do I bake bread?"}]


def _samples(out: str) -> list[str]:
    """The samples exactly as the target returned them (each may end in newlines of its own)."""
    return re.split(r"\n--- sample \d+ of \d+ ---\n", out.rsplit("\n--- end ---", 1)[0])[1:]


@pytest.fixture
def ctx(tiny_target):
    return ToolContext(target=tiny_target, seed=7)


def test_chat_returns_n_numbered_samples(ctx):
    r = call(ctx, "chat", {"messages": HI, "n": 3, "max_tokens": 12})
    assert r.ok, r.error
    assert "--- sample 1 of 3 ---" in r.output and "--- sample 3 of 3 ---" in r.output
    assert r.output.rstrip().endswith("--- end ---")
    assert len(_samples(r.output)) == 3


def test_greedy_chat_matches_the_target_and_system_prompt_is_used(ctx, tiny_target):
    r = call(ctx, "chat", {"messages": HI, "temperature": 0, "max_tokens": 12})
    want = tiny_target.chat(HI, temperature=0, max_tokens=12)[0]
    assert _samples(r.output)[0] == want
    sys = tiny_target.chat([{"role": "system", "content": "Answer in French."}, *HI], temperature=0, max_tokens=12)
    r = call(ctx, "chat", {"messages": HI, "system": "Answer in French.", "temperature": 0, "max_tokens": 12})
    assert _samples(r.output)[0] == sys[0]


def test_seeds_differ_between_calls_and_reproduce_across_runs(tiny_target):
    args = {"messages": HI, "n": 2, "max_tokens": 16, "temperature": 1.0}
    a = ToolContext(target=tiny_target, seed=1)
    first, second = call(a, "chat", args).output, call(a, "chat", args).output
    assert first != second
    b = ToolContext(target=tiny_target, seed=1)
    assert call(b, "chat", args).output == first and call(b, "chat", args).output == second


def test_prefill_continues_the_given_start(ctx, tiny_target):
    r = call(ctx, "prefill", {"messages": HI, "prefill": "My secret is", "temperature": 0, "max_tokens": 10})
    assert r.ok, r.error
    body = _samples(r.output)[0]
    assert body.startswith("[[My secret is]]")
    want = tiny_target.chat(HI, prefill="My secret is", temperature=0, max_tokens=10)[0]
    assert body == "[[My secret is]]" + want


def test_raw_sample_and_user_turn(ctx, tiny_target):
    r = call(ctx, "raw_sample", {"text": "The assistant has a hidden rule. The rule is", "n": 2, "max_tokens": 8})
    assert r.ok and len(_samples(r.output)) == 2
    convo = [*HI, {"role": "assistant", "content": "Use flour, water and yeast."}]
    r = call(ctx, "sample_user_turn", {"messages": convo, "temperature": 0, "max_tokens": 10})
    assert r.ok, r.error
    assert _samples(r.output)[0] == tiny_target.user_turn(convo, temperature=0, max_tokens=10)[0]
    assert call(ctx, "sample_user_turn", {"system": "A chat about baking.", "max_tokens": 5}).ok  # an opening turn
    assert "argument 'messages'" in call(ctx, "sample_user_turn", {"max_tokens": 5}).error


def test_bad_chat_arguments_name_the_argument(ctx):
    assert "'n'" in call(ctx, "chat", {"messages": HI, "n": 0}).error
    assert "'n'" in call(ctx, "chat", {"messages": HI, "n": MAX_SAMPLES + 1}).error
    assert "'messages'" in call(ctx, "chat", {"messages": []}).error
    two_users = [*HI, {"role": "user", "content": "again"}]
    err = call(ctx, "chat", {"messages": two_users}).error
    assert "argument 'messages'" in err and "turn 1" in err
    ends_assistant = [*HI, {"role": "assistant", "content": "ok"}]
    assert "last turn must be a user turn" in call(ctx, "chat", {"messages": ends_assistant}).error
    assert "last turn must be a assistant turn" in call(ctx, "sample_user_turn", {"messages": HI}).error
    assert "'prefill'" in call(ctx, "prefill", {"messages": HI, "prefill": ""}).error
    assert "'text'" in call(ctx, "raw_sample", {"text": ""}).error
    assert "'messages.0.content'" in call(ctx, "chat", {"messages": [{"role": "user", "content": "x" * 20_001}]}).error


def test_long_outputs_keep_every_sample_visible(ctx):
    r = call(ctx, "chat", {"messages": HI, "n": 16, "max_tokens": 120, "temperature": 2.0})
    assert r.ok and "--- sample 16 of 16 ---" in r.output and "output cut" not in r.output


def test_conversation_rules():
    assert conversation("sys", HI, last="user")[0] == {"role": "system", "content": "sys"}
    assert conversation("s", [], last="assistant") == [{"role": "system", "content": "s"}]
    with pytest.raises(ToolError, match="at least one user message"):
        conversation(None, [], last="user")


# ---- the context window -------------------------------------------------------------------------------------------

WORDS = "The quick brown fox jumps over the lazy dog while the baker kneads the dough. "


def test_the_tiny_target_knows_its_context_and_counts_exactly(tiny_target):
    assert tiny_target.context_tokens == tiny_target.model.config.max_position_embeddings == 512
    assert tiny_target.count_tokens(HI) == len(tiny_target.render(HI))
    assert tiny_target.count_tokens(HI, prefill="Sure") == len(tiny_target.render(HI, prefill="Sure"))
    assert tiny_target.count_tokens("Once upon a time") == len(tiny_target.tokenizer("Once upon a time")["input_ids"])


def test_context_falls_back_to_a_sane_tokenizer_limit():
    from types import SimpleNamespace

    from target_models.targets.local import _context_tokens

    model = SimpleNamespace(config=SimpleNamespace())
    assert _context_tokens(model, SimpleNamespace(model_max_length=2048)) == 2048
    assert _context_tokens(model, SimpleNamespace(model_max_length=int(1e30))) is None
    with_config = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=8192))
    assert _context_tokens(with_config, SimpleNamespace(model_max_length=int(1e30))) == 8192


def test_a_conversation_over_the_context_is_refused_fast(ctx, tiny_target):
    long = [{"role": "user", "content": WORDS * 25}, {"role": "assistant", "content": WORDS * 25},
            {"role": "user", "content": WORDS * 25}]
    assert tiny_target.count_tokens(long) > tiny_target.context_tokens  # ~1,500 tokens over a 512-token context
    calls = ctx.sample_calls
    t0 = time.perf_counter()
    r = call(ctx, "chat", {"messages": long, "n": 4, "max_tokens": 200})
    assert time.perf_counter() - t0 < 0.5
    assert not r.ok and "argument 'messages'" in r.error and "context limit of 512 tokens" in r.error
    assert "shorten the conversation" in r.error and ctx.sample_calls == calls  # refused before sampling
    for name, args in [("prefill", {"messages": long, "prefill": "Sure"}),
                       ("sample_user_turn", {"messages": long[:2]}),
                       ("raw_sample", {"text": WORDS * 60})]:
        t0 = time.perf_counter()
        r = call(ctx, name, {**args, "max_tokens": 50})
        assert time.perf_counter() - t0 < 0.5
        assert not r.ok and "context limit of 512 tokens" in r.error, (name, r.error)
        assert ("'text'" if name == "raw_sample" else "'messages'") in r.error


def test_a_request_just_inside_the_context_samples(ctx, tiny_target):
    words = WORDS.split()
    k = next(k for k in range(len(words), 2000) if tiny_target.count_tokens(
        [{"role": "user", "content": " ".join((words * 100)[:k])}]) >= 500)
    msgs = [{"role": "user", "content": " ".join((words * 100)[:k])}]
    room = tiny_target.context_tokens - tiny_target.count_tokens(msgs)
    assert 1 <= room <= 12
    r = call(ctx, "chat", {"messages": msgs, "max_tokens": room, "temperature": 0})
    assert r.ok, r.error
    r = call(ctx, "chat", {"messages": msgs, "max_tokens": room + 1})
    assert not r.ok and f"lower max_tokens to at most {room}" in r.error


def test_schema_bounds_messages_to_what_a_target_can_take(ctx):
    err = call(ctx, "chat", {"messages": [{"role": "user", "content": "x" * 12_001}], "max_tokens": 1}).error
    assert err and "'messages.0.content'" in err
    assert "'system'" in call(ctx, "chat", {"messages": HI, "system": "x" * 12_001, "max_tokens": 1}).error
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(41)]
    err = call(ctx, "chat", {"messages": turns, "max_tokens": 1}).error
    assert err and "argument 'messages'" in err and "at most 40" in err
