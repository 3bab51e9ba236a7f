"""A target behind an OpenAI-compatible HTTP server (what `vllm serve` exposes), for models too big to run here.

Text only (`has_internals = False`): the interpretability tools need a LocalTarget.

- chat: POST /v1/chat/completions.
- prefill: the same, with the prefill as a final assistant message and vLLM's `continue_final_message: true,
  add_generation_prompt: false`, so the model continues that message. Servers without this extension (the OpenAI
  API itself) either reject the fields or answer with a fresh reply; the second cannot be detected from outside.
- raw completion: POST /v1/completions.
- the next user turn: no chat API asks a model to speak as the user, so the conversation is rendered up to the
  start of a user turn and sent to /v1/completions. The rendering needs the chat template: from a tokenizer given
  to the target, else from vLLM's /tokenize + /detokenize endpoints; a server with neither cannot do it.
- the context window (`context_tokens`): given to the target, else what the server's model list says (vLLM reports
  `max_model_len`), else unknown (None). Prompt tokens are counted by the server's /tokenize endpoint, only when the
  window is known; otherwise, or without that endpoint, the server itself refuses a prompt that is too long.
"""

from __future__ import annotations

from typing import Any

import httpx

from target_models.targets.local import Message, TargetError

_MARK = "\x1e\x1fSLEUTH-NEXT-TURN\x1f\x1e"

_UNKNOWN: Any = object()
# Where servers' model lists state a model's context window: vLLM, then other OpenAI-compatible servers.
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window")


class RemoteTarget:
    has_internals = False

    def __init__(self, url: str, model: str | None = None, *, api_key: str | None = None, timeout: float = 300.0,
                 tokenizer: Any = None, client: httpx.Client | None = None, context_tokens: int | None = None):
        self.base = url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # A short connect timeout: a wrong address should fail in seconds; sampling itself may take minutes.
        self.client = client or httpx.Client(base_url=self.base, headers=headers,
                                             timeout=httpx.Timeout(timeout, connect=10.0))
        self.timeout = timeout
        self.tokenizer = tokenizer
        # Looked up on first use (one GET /v1/models): a target for a server that is down can still be made.
        self._context: Any = context_tokens if context_tokens is not None else _UNKNOWN
        self.model = model or self._only_model()
        self.name = self.model
        self.info = {"url": self.base, "model": self.model, "remote": True}

    # ---- HTTP ------------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        where = f"{self.base}{path}"
        try:
            r = self.client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise TargetError(f"{where}: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise TargetError(f"cannot reach {where} ({type(e).__name__}: {e}); is the server running?") from None
        if r.status_code >= 400:
            raise TargetError(f"{where} answered HTTP {r.status_code}: {_error_text(r)}")
        try:
            return r.json()
        except ValueError:
            raise TargetError(f"{where} answered with something that is not JSON: {r.text[:200]!r}") from None

    def _models(self) -> list[dict]:
        data = self._request("GET", "/v1/models").get("data", [])
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    def _only_model(self) -> str:
        models = self._models()
        ids = [m.get("id") for m in models]
        if len(ids) != 1:
            raise TargetError(f"{self.base} serves {len(ids)} models ({', '.join(map(str, ids)) or 'none'}); "
                              f"name one as {self.base}#MODEL")
        if self._context is _UNKNOWN:  # the list is at hand: no second request for the context
            self._context = _stated_context(models[0])
        return ids[0]

    @property
    def context_tokens(self) -> int | None:
        """The most tokens prompt + reply may take, as the server's model list states it; None when it does not
        say (or cannot be asked: then the sampling request itself reports the problem)."""
        if self._context is _UNKNOWN:
            try:
                entry = next((m for m in self._models() if m.get("id") == self.model), {})
            except TargetError:
                entry = {}
            self._context = _stated_context(entry)
        return self._context

    def count_tokens(self, prompt: list[Message] | str, *, prefill: str | None = None,
                     next_role: str = "assistant") -> int | None:
        """Prompt tokens as the server's /tokenize endpoint (vLLM) counts them; None when the context window is
        unknown (nothing to compare with) or the server has no such endpoint. For the next user turn the count
        takes the assistant turn's header in place of the user turn's (the same length in common templates)."""
        if self.context_tokens is None:
            return None
        body: dict[str, Any] = {"model": self.model}
        if isinstance(prompt, str):
            body.update(prompt=prompt, add_special_tokens=False)
        elif prefill:
            body.update(messages=[*prompt, {"role": "assistant", "content": prefill}], add_generation_prompt=False,
                        continue_final_message=True)
        else:
            body.update(messages=list(prompt), add_generation_prompt=True)
        try:
            count = self._request("POST", "/tokenize", body).get("count")
        except TargetError:
            return None
        return count if isinstance(count, int) else None

    def _sampling(self, n: int, temperature: float, max_tokens: int, seed: int) -> dict:
        return {"model": self.model, "n": n, "temperature": temperature, "max_tokens": max_tokens, "seed": seed}

    @staticmethod
    def _choices(reply: dict, n: int, field: str) -> list[str]:
        try:
            ordered = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            out = [(c["message"]["content"] if field == "message" else c["text"]) or "" for c in ordered]
        except (KeyError, TypeError):
            raise TargetError(f"unexpected reply from the server: {str(reply)[:300]}") from None
        if len(out) != n:
            raise TargetError(f"asked the server for {n} samples, got {len(out)}")
        return out

    # ---- the target interface ------------------------------------------------------------------------------------

    def chat(self, messages: list[Message], *, n: int = 1, temperature: float = 1.0, max_tokens: int = 200,
             prefill: str | None = None, seed: int = 0) -> list[str]:
        body = {**self._sampling(n, temperature, max_tokens, seed), "messages": list(messages)}
        if prefill:
            body["messages"].append({"role": "assistant", "content": prefill})
            body.update(continue_final_message=True, add_generation_prompt=False)
        return self._choices(self._request("POST", "/v1/chat/completions", body), n, "message")

    def chat_many(self, conversations: list[list[Message]], *, temperature: float = 1.0, max_tokens: int = 200,
                  seed: int = 0) -> list[str]:
        return [self.chat(c, temperature=temperature, max_tokens=max_tokens, seed=seed + i)[0]
                for i, c in enumerate(conversations)]

    def complete(self, text: str, *, n: int = 1, temperature: float = 1.0, max_tokens: int = 200,
                 seed: int = 0) -> list[str]:
        body = {**self._sampling(n, temperature, max_tokens, seed), "prompt": text}
        return self._choices(self._request("POST", "/v1/completions", body), n, "text")

    def user_turn(self, messages: list[Message], *, n: int = 1, temperature: float = 1.0, max_tokens: int = 120,
                  seed: int = 0) -> list[str]:
        rendered = self._render(list(messages) + [{"role": "user", "content": _MARK}])
        cut = rendered.find(_MARK)
        if cut < 0:
            raise TargetError("the chat template dropped the user turn; cannot sample a user turn from this server")
        body = {**self._sampling(n, temperature, max_tokens, seed), "prompt": rendered[:cut]}
        # The turn ends where the template closes it; without a stop the model may run on into the reply.
        stop = _turn_end(rendered[cut + len(_MARK) :])
        if stop:
            body["stop"] = [stop]
        return self._choices(self._request("POST", "/v1/completions", body), n, "text")

    def _render(self, messages: list[Message]) -> str:
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        try:
            ids = self._request("POST", "/tokenize", {"model": self.model, "messages": messages,
                                                      "add_generation_prompt": False})["tokens"]
            return self._request("POST", "/detokenize", {"model": self.model, "tokens": ids})["prompt"]
        except (TargetError, KeyError, TypeError) as e:
            raise TargetError(
                f"sampling a user turn needs the model's chat template: give RemoteTarget a tokenizer, or serve "
                f"the model with vLLM (its /tokenize endpoint renders the template). Server said: {e}") from None

    def close(self) -> None:
        self.client.close()


def _stated_context(entry: dict) -> int | None:
    """The context window a model-list entry states, if any."""
    found = [entry.get(k) for k in _CONTEXT_KEYS]
    return next((v for v in found if isinstance(v, int) and not isinstance(v, bool) and v > 0), None)


def _turn_end(after_mark: str) -> str | None:
    """The text the template puts right after a message's content (e.g. <|im_end|>), if any."""
    lines = [x.strip() for x in after_mark.splitlines() if x.strip()]
    return lines[0] if lines else None


def _error_text(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300] or r.reason_phrase
    err = body.get("error", body) if isinstance(body, dict) else body
    msg = err.get("message", err) if isinstance(err, dict) else err
    return str(msg)[:300]
