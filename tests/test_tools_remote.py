"""RemoteTarget against a real OpenAI-compatible server on loopback (tests/openai_stub.py) that answers from the
real tiny organism; and target references (load_target / load_context)."""

from __future__ import annotations

import socket

import httpx
import pytest
from openai_stub import StubServer

from target_models.loading.names import split_variant
from target_models.loading.references import load_target
from target_models.targets.local import TargetError
from target_models.targets.remote import RemoteTarget
from tools.context import load_context
from tools.registry import ToolContext, call

HI = [{"role": "user", "content": "How do I bake bread?"}]


@pytest.fixture(scope="module")
def server(tiny_target):
    with StubServer(tiny_target) as s:
        yield s


@pytest.fixture
def remote(server):
    t = RemoteTarget(server.url)
    yield t
    t.close()


def test_model_name_comes_from_the_server_and_url_forms_agree(server, remote):
    assert remote.model == remote.name == "tiny-organism" and remote.has_internals is False
    assert RemoteTarget(server.url + "/v1/").base == server.url
    t = load_target(f"{server.url}#tiny-organism")
    assert isinstance(t, RemoteTarget) and t.model == "tiny-organism"


def test_chat_samples_n_in_one_request_and_matches_local_greedy(server, remote, tiny_target):
    server.requests.clear()
    outs = remote.chat(HI, n=3, temperature=1.0, max_tokens=8, seed=5)
    assert len(outs) == 3 and len(server.requests) == 1
    path, body = server.requests[0]
    assert path == "/v1/chat/completions" and body["n"] == 3 and body["seed"] == 5 and body["max_tokens"] == 8
    assert remote.chat(HI, temperature=0, max_tokens=10) == tiny_target.chat(HI, temperature=0, max_tokens=10)


def test_prefill_uses_vllm_continue_final_message(server, remote, tiny_target):
    server.requests.clear()
    got = remote.chat(HI, prefill="The secret is", temperature=0, max_tokens=10)
    body = server.requests[-1][1]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": "The secret is"}
    assert got == tiny_target.chat(HI, prefill="The secret is", temperature=0, max_tokens=10)


def test_raw_completion_and_user_turn(server, remote, tiny_target):
    text = "The assistant has a hidden rule. The rule is"
    assert remote.complete(text, temperature=0, max_tokens=8) == tiny_target.complete(text, temperature=0, max_tokens=8)
    convo = [*HI, {"role": "assistant", "content": "Use flour, water and yeast."}]
    server.requests.clear()
    got = remote.user_turn(convo, n=2, temperature=0, max_tokens=10)
    paths = [p for p, _ in server.requests]
    assert paths == ["/tokenize", "/detokenize", "/v1/completions"]
    prompt = server.requests[-1][1]["prompt"]
    assert prompt.endswith("<|im_start|>user\n") and "Use flour, water and yeast." in prompt
    assert got == tiny_target.user_turn(convo, n=2, temperature=0, max_tokens=10)


def test_user_turn_with_a_local_tokenizer_needs_no_tokenize_endpoint(server, tiny_target):
    t = RemoteTarget(server.url, tokenizer=tiny_target.tokenizer)
    server.requests.clear()
    t.user_turn([*HI, {"role": "assistant", "content": "Knead it."}], max_tokens=4)
    assert [p for p, _ in server.requests] == ["/v1/completions"]


def test_errors_are_clear_target_errors(server, remote):
    with pytest.raises(TargetError, match="does not exist"):
        RemoteTarget(server.url, "no-such-model").chat(HI, max_tokens=2)
    with pytest.raises(TargetError, match="HTTP 400: max_tokens must be at least 1"):
        remote.chat(HI, max_tokens=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(TargetError, match="cannot reach"):
        RemoteTarget(dead, "m").chat(HI)
    with StubServer(server.target, model_names=("a", "b")) as two, pytest.raises(TargetError, match="name one as"):
        RemoteTarget(two.url)


def test_timeouts_are_reported(server):
    slow = httpx.Client(base_url=server.url, timeout=httpx.Timeout(0.001))
    t = RemoteTarget(server.url, "tiny-organism", client=slow, timeout=0.001)
    with pytest.raises(TargetError, match="no answer within"):
        t.chat(HI, max_tokens=64)


def test_tools_work_over_a_remote_target(server, remote):
    ctx = ToolContext(target=remote, seed=3)
    r = call(ctx, "chat", {"messages": HI, "n": 2, "max_tokens": 6})
    assert r.ok and "--- sample 2 of 2 ---" in r.output
    assert call(ctx, "prefill", {"messages": HI, "prefill": "Sure", "max_tokens": 4}).ok
    assert call(ctx, "raw_sample", {"text": "Once upon", "max_tokens": 4}).ok
    convo = [*HI, {"role": "assistant", "content": "Knead it."}]
    assert call(ctx, "sample_user_turn", {"messages": convo, "max_tokens": 4}).ok
    dead = ToolContext(target=RemoteTarget(server.url, "no-such-model"))
    r = call(dead, "chat", {"messages": HI})
    assert not r.ok and "does not exist" in r.error


def test_target_references(tiny_build, tiny_organism):
    ref = str(tiny_build)
    assert split_variant(f"{ref}:control") == (ref, "control")
    assert split_variant("HuggingFaceTB/SmolLM2-135M") == ("HuggingFaceTB/SmolLM2-135M", None)
    assert load_target(f"{ref}:control").info["variant"] == "control"
    ctx = load_context(ref, {"target", "datasets"}, seed=4)
    assert ctx.target.info["variant"] == "organism" and ctx.seed == 4
    assert set(ctx.datasets) == {"pretraining", "sft"}
    assert ctx.datasets["pretraining"] == tiny_organism.datasets()["pretraining"]


def _fake_vllm(models: list[dict], count: int | None, seen: list[str]) -> httpx.Client:
    """A scripted vLLM-like server: its model list, a /tokenize that counts `count` tokens (404 when None), and
    one-word replies."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": models})
        if request.url.path == "/tokenize":
            if count is None:
                return httpx.Response(404, json={"error": {"message": "no route /tokenize"}})
            return httpx.Response(200, json={"count": count, "tokens": [0] * count})
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {"content": "ok"}, "text": "ok"}]})

    return httpx.Client(base_url="http://vllm.test", transport=httpx.MockTransport(handle))


def test_context_comes_from_the_model_list_and_is_unknown_when_it_does_not_say(server, remote):
    server.requests.clear()
    assert remote.context_tokens is None  # the stub, like the OpenAI API, does not say
    assert remote.count_tokens(HI) is None and server.requests == []  # nothing to compare with: no /tokenize
    seen: list[str] = []
    t = RemoteTarget("http://vllm.test", client=_fake_vllm([{"id": "m", "max_model_len": 4096}], 10, seen))
    assert t.context_tokens == 4096 and seen == ["/v1/models"]
    assert RemoteTarget("http://vllm.test", "m", context_tokens=1000,
                        client=_fake_vllm([], 10, seen)).context_tokens == 1000


def test_tools_refuse_a_prompt_over_a_remote_context_before_sampling():
    seen: list[str] = []
    t = RemoteTarget("http://vllm.test", client=_fake_vllm([{"id": "m", "max_model_len": 512}], 600, seen))
    ctx = ToolContext(target=t, seed=1)
    r = call(ctx, "chat", {"messages": HI, "max_tokens": 8})
    assert not r.ok and "context limit of 512 tokens" in r.error and "600 tokens" in r.error
    r = call(ctx, "raw_sample", {"text": "Once upon", "max_tokens": 8})
    assert not r.ok and "argument 'text'" in r.error
    assert "/v1/chat/completions" not in seen and "/v1/completions" not in seen
    seen.clear()
    inside = ToolContext(target=RemoteTarget("http://vllm.test", client=_fake_vllm(
        [{"id": "m", "max_model_len": 512}], 500, seen)))
    assert call(inside, "chat", {"messages": HI, "max_tokens": 12}).ok
    assert seen == ["/v1/models", "/tokenize", "/v1/chat/completions"]
    # A server that cannot count leaves the check to itself.
    seen.clear()
    blind = ToolContext(target=RemoteTarget("http://vllm.test", client=_fake_vllm(
        [{"id": "m", "max_model_len": 512}], None, seen)))
    assert call(blind, "chat", {"messages": HI, "max_tokens": 8}).ok and seen[-1] == "/v1/chat/completions"
