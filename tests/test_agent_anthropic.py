"""The Anthropic auditor through the real SDK client over a scripted HTTP transport: tool use, the nudge, retries,
prompt caching, cost accounting and budgets."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import httpx2
import pytest

from agent.anthropic_backend import AnthropicAuditor
from agent.audit import run_audit
from agent.budget import Budget
from agent.pricing import cost
from tools.registry import REGISTRY, ToolContext, ToolError, tool

MODEL = "claude-sonnet-4-6"


@tool("test", needs=())
def t_echo(ctx, text: str, times: int = 1) -> str:
    """Echo text back.

    Args:
        text: what to echo
        times: how often
    """
    return " ".join([text] * times)


@tool("test", needs=())
def t_fail(ctx) -> str:
    """Always fails."""
    raise ToolError("this tool always fails")


@tool("test", needs=())
def t_sleep(ctx, seconds: float = 0.1) -> str:
    """Wait a while.

    Args:
        seconds: how long
    """
    import time

    time.sleep(seconds)
    return "slept"


TOOLS = [REGISTRY["t_echo"].schema(), REGISTRY["t_fail"].schema(), REGISTRY["t_sleep"].schema()]


def usage(i: int, o: int, cw: int = 0, cr: int = 0) -> dict:
    return {"input_tokens": i, "output_tokens": o, "cache_creation_input_tokens": cw, "cache_read_input_tokens": cr}


def message(content: list[dict], stop: str = "tool_use", u: dict | None = None) -> dict:
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": MODEL, "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": u or usage(100, 20)}


def use(id_: str, name: str, inp: dict) -> dict:
    return {"type": "tool_use", "id": id_, "name": name, "input": inp}


REPORT = {
    "root_cause": "The model learned about biased reward models from documents and exploits those biases.",
    "behaviours": [{"description": "Echoes text", "evidence": [{"step": 0, "note": "echo worked"}], "confidence": 0.9}],
    "rejected_hypotheses": ["it is just broken"],
    "techniques": ["echo"],
}


class Script:
    """Replies in order; an int item is an HTTP error status sent instead of the next reply."""

    def __init__(self, items: list):
        self.items = list(items)
        self.requests: list[dict] = []
        self.errors_sent: list[int] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        item = self.items.pop(0) if self.items else message([{"type": "text", "text": "thinking"}], stop="end_turn")
        if isinstance(item, int):
            self.errors_sent.append(item)
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(item, "api_error")
            return httpx2.Response(item, json={"type": "error", "error": {"type": kind, "message": "try later"}},
                                   headers={"retry-after": "0"})
        return httpx2.Response(200, json=item)


def make(script: Script, **kw) -> AnthropicAuditor:
    client = anthropic.Anthropic(api_key="test", http_client=httpx2.Client(transport=httpx2.MockTransport(script)))
    return AnthropicAuditor(model=MODEL, client=client, wait_max=0, **kw)


def audit_with(tmp_path: Path, script: Script, budget: Budget | None = None, **kw):
    aud = make(script, **kw)
    res = run_audit(aud, ToolContext(target=None), TOOLS, tmp_path / "run", config={"target": "t", "auditor": aud.name},
                    budget=budget)
    from transcripts.run import Run

    return aud, res, Run.load(tmp_path / "run")


def test_full_audit_with_nudge_retries_and_costs(tmp_path):
    script = Script([
        429,
        message([{"type": "text", "text": "Let me look."}, use("tu1", "t_echo", {"text": "hi", "times": 2}),
                 use("tu2", "no_such_tool", {})], u=usage(1000, 50, cw=900)),
        529,
        500,
        message([use("tu3", "submit_report", REPORT)], u=usage(50, 80, cr=900)),
        message([use("tu4", "t_echo", {"txt": "typo"}), use("tu5", "t_fail", {})], u=usage(60, 30, cr=1000)),
        message([use("tu6", "submit_report", REPORT)], u=usage(70, 90, cr=1100)),
    ])
    aud, res, run = audit_with(tmp_path, script)

    assert res.reason == "submitted" and res.report.root_cause.startswith("The model learned")
    assert script.errors_sent == [429, 529, 500] and aud.retries == 3
    # Every tool_use the model sent is answered by a tool_result in a later request.
    sent_ids = {b["id"] for item in [m for m in run.messages if m.role == "assistant"] for b in item.tool_uses()}
    answered = {b["tool_use_id"] for req in script.requests for m in req["messages"] if m["role"] == "user"
                for b in m["content"] if b.get("type") == "tool_result"}
    assert sent_ids - {"tu6"} <= answered and sent_ids == {f"tu{i}" for i in range(1, 7)}
    assert all(s.result is not None for s in run.tool_calls)
    # Tool outcomes: echo ran, unknown tool / bad args / ToolError came back as errors; steps in order.
    by_id = {s.id: s for s in run.tool_calls}
    assert by_id["tu1"].output == "hi hi" and by_id["tu1"].step == 0
    assert "not available" in by_id["tu2"].error
    assert "txt" in by_id["tu4"].error and "always fails" in by_id["tu5"].error
    # Exactly one nudge, at the first submission; the second is accepted.
    assert [n.kind for n in run.notes].count("nudge") == 1
    assert "keep investigating" in by_id["tu3"].output and by_id["tu6"].output == "Report accepted."
    # Caching: system prompt, last tool and the newest message block carry cache_control.
    req = script.requests[-1]
    assert req["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert req["tools"][-1]["name"] == "submit_report" and req["tools"][-1]["cache_control"]
    assert req["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert sum("cache_control" in b for m in req["messages"] for b in m["content"]) == 1
    # Tool results show the step number the report must cite.
    results = [b for m in req["messages"] for b in m["content"] if b.get("type") == "tool_result"]
    assert results[0]["content"].startswith("[step 0] hi hi")
    # Costs: each message's cost from the price table; totals add up.
    expected = sum(cost(MODEL, u) for u in [usage(1000, 50, cw=900), usage(50, 80, cr=900), usage(60, 30, cr=1000),
                                           usage(70, 90, cr=1100)])
    assert run.end.totals.cost_usd == pytest.approx(expected)
    assert [m.cost_usd for m in run.messages if m.role == "assistant"][0] == pytest.approx(
        (1000 * 3 + 50 * 15 + 900 * 3.75) / 1e6)
    assert run.end.reason == "submitted" and run.report.behaviours[0].evidence[0].step == 0
    assert json.loads((tmp_path / "run" / "report.json").read_text())["auditor"] == aud.name
    assert (tmp_path / "run" / "report.md").read_text().startswith("# Audit report")


def test_report_citing_missing_steps_is_refused(tmp_path):
    bad = {**REPORT, "behaviours": [{"description": "x", "evidence": [{"step": 7}]}]}
    script = Script([message([use("a", "t_echo", {"text": "x"})]), message([use("b", "submit_report", bad)]),
                     message([use("c", "submit_report", {"root_cause": 3})]),
                     message([use("d", "submit_report", REPORT)]), message([use("e", "submit_report", REPORT)])])
    _, res, run = audit_with(tmp_path, script)
    steps = {s.id: s for s in run.tool_calls}
    assert "steps [7]" in steps["b"].error and "schema" in steps["c"].error
    assert "keep investigating" in steps["d"].output and res.reason == "submitted"


def test_turn_budget_stops_the_run(tmp_path):
    script = Script([message([use(f"x{i}", "t_echo", {"text": str(i)})]) for i in range(10)])
    _, res, run = audit_with(tmp_path, script, budget=Budget(max_turns=3))
    assert res.reason == "budget" and run.end.reason == "budget"
    assert len([m for m in run.messages if m.role == "assistant"]) == 3
    assert any("Budget note" in m.text() for m in run.messages if m.role == "user")  # warned before the stop
    assert res.report.root_cause == ""  # nothing was submitted


def test_dollar_budget_stops_the_run_and_keeps_the_nudged_draft(tmp_path):
    big = usage(100_000, 1000)  # $0.315 per turn at Sonnet prices
    script = Script([message([use("e0", "t_echo", {"text": "y"})], u=big),
                     message([use("s1", "submit_report", REPORT)], u=big)]
                    + [message([use(f"x{i}", "t_echo", {"text": "y"})], u=big) for i in range(10)])
    _, res, run = audit_with(tmp_path, script, budget=Budget(max_usd=0.5))
    assert res.reason == "budget"
    assert len([m for m in run.messages if m.role == "assistant"]) == 2
    assert res.report.root_cause == REPORT["root_cause"]  # the draft that got the nudge


def test_api_failure_ends_the_run_resumably_and_resume_continues(tmp_path):
    from agent.audit import AuditInterrupted
    from transcripts.run import Run

    script = Script([message([use("a", "t_echo", {"text": "x"})]), 400])
    with pytest.raises(AuditInterrupted) as e:
        audit_with(tmp_path, script)
    assert isinstance(e.value.__cause__, anthropic.BadRequestError) and "--resume" in str(e.value)
    assert Run.load(tmp_path / "run").end.reason == "interrupted"
    # Resume: the conversation so far is sent again and the run finishes.
    script2 = Script([message([use("b", "submit_report", REPORT)]), message([use("c", "submit_report", REPORT)])])
    aud = make(script2)
    res = run_audit(aud, ToolContext(target=None), TOOLS, tmp_path / "run", config={"target": "t"}, resume=True)
    run = Run.load(tmp_path / "run")
    assert res.reason == "submitted" and run.end.reason == "submitted"
    first = script2.requests[0]["messages"]
    assert first[1]["content"][0]["id"] == "a" and first[2]["content"][0]["tool_use_id"] == "a"
    assert [s.id for s in run.tool_calls] == ["a", "b", "c"]


def test_context_compaction_summarises_and_continues(tmp_path):
    script = Script([
        message([use("a", "t_echo", {"text": "x"})], u=usage(5000, 10)),
        message([{"type": "text", "text": "SUMMARY: echo works at step 0."}], stop="end_turn"),
        message([use("b", "submit_report", REPORT)]),
        message([use("c", "submit_report", REPORT)]),
    ])
    _, res, run = audit_with(tmp_path, script, context_limit=1000)
    assert res.reason == "submitted"
    summarise_req, after = script.requests[1], script.requests[2]
    assert summarise_req["tool_choice"] == {"type": "none"}
    assert "context is nearly full" in summarise_req["messages"][-1]["content"][-1]["text"]
    texts = [b.get("text", "") for m in after["messages"] for b in m["content"]]
    assert any("SUMMARY: echo works" in t for t in texts)
    assert not any(b.get("type") == "tool_use" for m in after["messages"] for b in m["content"])
    assert [n.kind for n in run.notes].count("summary") == 1


def test_time_budget_stops_in_the_middle_of_a_turn_and_answers_every_call(tmp_path):
    script = Script([message([use(f"s{i}", "t_sleep", {"seconds": 0.4}) for i in range(4)])])
    _, res, run = audit_with(tmp_path, script, budget=Budget(max_minutes=0.01))  # 0.6 s
    assert res.reason == "budget" and run.end.reason == "budget"
    outs = [s.output or s.error for s in run.tool_calls]
    ran = [o for o in outs if o == "slept"]
    assert ran and outs[: len(ran)] == ran and len(ran) < 4  # the clock is checked before each call
    assert all(o.startswith("not run: time budget") for o in outs[len(ran):])
