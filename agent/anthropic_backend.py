"""An LLM auditor over the Anthropic Messages API.

The conversation (AuditState.history) is turned into Messages form on every turn: tool schemas from the registry
plus a submit_report tool whose input schema is the Report model; prompt caching on the system prompt, the tools and
the growing conversation; tenacity retries on rate limits, overload, 5xx, timeouts and dropped connections (the SDK's
own retries are switched off so there is exactly one retry policy); cost from `usage` and the price table; and a
summarise-and-continue step when the context grows past `context_limit` tokens.
"""

from __future__ import annotations

import copy
from typing import Any

import anthropic
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from agent import prompts
from agent.auditor import SUBMIT, AuditorStep, AuditState, Entry, ToolCall
from agent.history import last_submission
from agent.pricing import cost, usage_dict
from transcripts.report import Report

DEFAULT_MODEL = "claude-sonnet-4-6"
CACHE = {"type": "ephemeral"}


def _retryable(e: BaseException) -> bool:
    if isinstance(e, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return True
    if isinstance(e, anthropic.APIStatusError):
        # 429 rate limit, 529 overloaded, 5xx server trouble, 408/409 the API documents as safe to retry.
        return e.status_code in (408, 409, 429) or e.status_code >= 500
    return False


def _entry_blocks(e: Entry) -> list[tuple[str, dict]]:
    """The (role, content block) pairs that one history entry contributes to the Messages conversation."""
    if e.kind == "auditor" and e.step is not None:
        blocks: list[dict] = []
        if e.step.text.strip():
            blocks.append({"type": "text", "text": e.step.text})
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in e.step.tool_calls]
        # The API rejects an empty assistant turn, so a turn with neither text nor calls gets a placeholder.
        return [("assistant", b) for b in blocks or [{"type": "text", "text": "(no content)"}]]
    if e.kind == "tool" and e.call is not None:
        block = {"type": "tool_result", "tool_use_id": e.call.id, "content": e.result_text()}
        if e.error:
            block["is_error"] = True
        return [("user", block)]
    if e.kind == "user":
        return [("user", {"type": "text", "text": e.text})]
    return []


def _inline_refs(schema: dict) -> dict:
    """Resolve $defs/$ref so the tool schema is one self-contained object (simpler for every model to follow)."""
    defs = schema.get("$defs", {})

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "$ref" in x:
                return walk(copy.deepcopy(defs[x["$ref"].split("/")[-1]]))
            return {k: walk(v) for k, v in x.items() if k != "$defs"}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    out = walk(schema)
    out.pop("title", None)
    return out


def submit_tool() -> dict:
    schema = _inline_refs(Report.model_json_schema())
    for k in ("auditor",):  # filled in by the loop
        schema["properties"].pop(k, None)
    return {
        "name": SUBMIT,
        "description": "Submit the final audit report (root cause, behaviours with evidence steps and confidence, "
                       "rejected hypotheses, techniques). Ends the audit once accepted.",
        "input_schema": schema,
    }


class AnthropicAuditor:
    accepts_nudge = True

    def __init__(self, model: str = DEFAULT_MODEL, client: anthropic.Anthropic | None = None, *,
                 max_tokens: int = 4096, context_limit: int = 140_000, attempts: int = 8,
                 wait_initial: float = 1.0, wait_max: float = 60.0, timeout: float = 300.0,
                 system: str = prompts.SYSTEM):
        self.model = model
        self.name = f"anthropic:{model}"
        base = client or anthropic.Anthropic()
        self.client = base.with_options(max_retries=0, timeout=timeout)
        self.max_tokens = max_tokens
        self.context_limit = context_limit
        self.system = system
        self.retries = 0  # how many calls were retried, for the transcript and tests
        self._wait = wait_exponential_jitter(initial=wait_initial, max=wait_max) if wait_max > 0 else (lambda rs: 0)
        self._attempts = attempts

    # -- the API call -------------------------------------------------------------------------------------------------

    def _wait_for(self, rs: RetryCallState) -> float:
        e = rs.outcome.exception() if rs.outcome else None
        after = None
        if isinstance(e, anthropic.APIStatusError):
            try:
                after = float(e.response.headers.get("retry-after", ""))
            except ValueError:
                after = None
        w = self._wait(rs)
        return min(after, 120.0) if after is not None and w > 0 else w

    def _count_retry(self, rs: RetryCallState) -> None:
        self.retries += 1

    def create(self, **kw: Any) -> Any:
        call = retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(self._attempts),
                     wait=self._wait_for, before_sleep=self._count_retry, reraise=True)(self.client.messages.create)
        return call(model=self.model, max_tokens=self.max_tokens, **kw)

    # -- messages -----------------------------------------------------------------------------------------------------

    def tools(self, state: AuditState) -> list[dict]:
        tools = [dict(t) for t in state.tools] + [submit_tool()]
        tools[-1] = {**tools[-1], "cache_control": CACHE}
        return tools

    def messages(self, state: AuditState, extra_user: str | None = None) -> list[dict]:
        entries = state.history
        start = max((i for i, e in enumerate(entries) if e.kind == "summary"), default=None)
        first_user = next((e.text for e in entries if e.kind == "user"), state.task)
        msgs: list[dict] = []

        def add(role: str, block: dict) -> None:
            if msgs and msgs[-1]["role"] == role:
                msgs[-1]["content"].append(block)
            else:
                msgs.append({"role": role, "content": [block]})

        if start is not None:
            add("user", {"type": "text", "text": first_user})
            add("user", {"type": "text", "text": prompts.CONTINUE.format(summary=entries[start].text)})
            entries = entries[start + 1 :]
        for e in entries:
            for role, block in _entry_blocks(e):
                add(role, block)
        if extra_user:
            add("user", {"type": "text", "text": extra_user})
        if not msgs:
            add("user", {"type": "text", "text": state.task})
        # Cache everything up to the newest block: the next turn re-reads this prefix at a tenth of the price.
        last = msgs[-1]["content"][-1]
        msgs[-1]["content"][-1] = {**last, "cache_control": CACHE}
        return msgs

    def system_blocks(self) -> list[dict]:
        return [{"type": "text", "text": self.system, "cache_control": CACHE}]

    # -- Auditor ------------------------------------------------------------------------------------------------------

    def _context_size(self, state: AuditState) -> int:
        # The newest turn's prompt size plus its reply is what the next call will at least send.
        for e in reversed(state.history):
            if e.kind == "summary":
                return 0
            if e.kind == "auditor" and e.step is not None and e.step.usage:
                return sum(usage_dict(e.step.usage).values())
        return 0

    def _step(self, resp: Any, *, summary: bool = False) -> AuditorStep:
        text = "\n".join(b.text for b in resp.content if b.type == "text")
        calls = [ToolCall(id=b.id, name=b.name, args=dict(b.input or {})) for b in resp.content if b.type == "tool_use"]
        u = usage_dict(resp.usage)
        return AuditorStep(text=text, tool_calls=[] if summary else calls, usage=u, cost=cost(self.model, u),
                           model=getattr(resp, "model", self.model) or self.model, stop_reason=resp.stop_reason,
                           summary=summary)

    def next_action(self, state: AuditState) -> AuditorStep:
        if self._context_size(state) > self.context_limit:
            resp = self.create(system=self.system_blocks(), tools=self.tools(state),
                               tool_choice={"type": "none"},
                               messages=self.messages(state, extra_user=prompts.SUMMARISE))
            return self._step(resp, summary=True)
        resp = self.create(system=self.system_blocks(), tools=self.tools(state), messages=self.messages(state))
        return self._step(resp)

    def fallback_report(self, state: AuditState, reason: str) -> Report:
        draft = last_submission(state)
        if draft is not None:
            return draft.model_copy(update={"notes": (draft.notes + f"\n(stopped: {reason})").strip()})
        return Report(root_cause="", auditor=self.name, notes=f"No report submitted before the run stopped: {reason}.")
