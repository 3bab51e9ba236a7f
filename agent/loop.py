"""The audit loop: a small explicit langgraph StateGraph.

    START -> auditor --(tool calls)--> tools --(report accepted)----------> finish -> END
               ^   |                   |   |                              ^
               |   +--(budget spent)---|---+--(time spent)--> finalize ---+
               +-----------------------+ (more to do)

The graph state is only the routing decision; the conversation lives in AuditState and is written to the transcript
as it happens (each event flushed), so a killed run can be resumed from its log (agent.audit.resume). Every tool_use
gets a tool_result: unknown tools, tools outside the toolset and bad arguments come back as tool errors, never as
exceptions, and a report submitted with other calls in the same turn still has those calls answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from pydantic import ValidationError

from agent import prompts
from agent.auditor import SUBMIT, AuditorStep, AuditState, Entry, ToolCall
from agent.budget import Budget, exhausted, nearly_exhausted
from agent.history import assistant_blocks, transcript_usage
from agent.pricing import total_tokens
from tools.registry import ToolContext
from tools.registry import call as call_tool
from transcripts.report import Report

Progress = Callable[[str, dict[str, Any]], None]


# tools.chat.next_seed derives each sampling call's seed from the run's seed and ToolContext.sample_calls. The loop
# records the counter with every tool result, and resume, re-execution and forks restore it, so that sampling
# reproduces.


def sample_counter(ctx: ToolContext) -> int:
    return ctx.sample_calls


def restore_sample_counter(ctx: ToolContext, n: int | None) -> None:
    if n is not None:
        ctx.sample_calls = n


def recorded_sample_counter(events: list[Any]) -> int | None:
    """The counter after the last recorded tool result that has one (None for a log written before it was kept)."""
    return next((n for ev in reversed(events) if (n := getattr(ev, "sample_calls", None)) is not None), None)


class GraphState(TypedDict, total=False):
    next: str
    reason: str


@dataclass
class LoopResult:
    report: Report
    reason: Literal["submitted", "budget", "error"]
    message: str = ""


class AuditLoop:
    """Runs one audit. `writer` is a transcripts.log.TranscriptWriter already holding run_start (and, on resume,
    everything before); `state.history` mirrors it."""

    def __init__(self, auditor: Any, ctx: ToolContext, state: AuditState, writer: Any, *,
                 progress: Progress | None = None, seconds_before: float = 0.0):
        self.auditor = auditor
        self.ctx = ctx
        self.state = state
        self.w = writer
        self.progress = progress or (lambda kind, info: None)
        self.t0 = time.monotonic()
        self.seconds_before = seconds_before
        self.report: Report | None = None
        self.draft: Report | None = None  # the last well-formed submission, kept for a budget stop after a nudge
        self.stop_reason = ""
        self.known_steps: dict[str, int] = {}  # resume: calls whose tool_call event was written before the crash
        self.warned = any(e.kind == "user" and e.text.startswith("Budget note") for e in state.history)

    # -- bookkeeping --------------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        self.state.spent.seconds = self.seconds_before + time.monotonic() - self.t0

    def _user(self, text: str) -> None:
        self.w.auditor_message("user", text)
        self.state.history.append(Entry("user", text=text))

    def _log_step(self, step: AuditorStep) -> None:
        self.w.auditor_message("assistant", assistant_blocks(step), usage=transcript_usage(step.usage),
                               cost_usd=step.cost, model=step.model, stop_reason=step.stop_reason)
        self.state.history.append(Entry("auditor", step=step))
        self.state.spent.add(turns=1, tokens=total_tokens(step.usage), usd=step.cost)

    # -- nodes --------------------------------------------------------------------------------------------------------

    def node_auditor(self, gs: GraphState) -> GraphState:
        self._tick()
        reason = exhausted(self.state.budget, self.state.spent)
        if reason:
            return {"next": "finalize", "reason": reason}
        if self.auditor.accepts_nudge and not self.warned:
            near = nearly_exhausted(self.state.budget, self.state.spent)
            if near:
                self.warned = True
                self._user(prompts.BUDGET_WARNING.format(what=near))
        step = self.auditor.next_action(self.state)
        if step.report is not None:
            # Offline auditors hand over a Report; it travels as a submit_report call like an LLM's would.
            n = sum(1 for e in self.state.history if e.kind == "auditor")
            call = ToolCall(id=f"submit-{n}", name=SUBMIT, args=step.report.model_dump(mode="json"))
            step = step.model_copy(update={"report": None, "tool_calls": [*step.tool_calls, call]})
        if step.summary:
            self._user(prompts.SUMMARISE)  # so the transcript shows what the summary answers
        self._log_step(step)
        self.progress("auditor", {"text": step.text, "calls": [c.name for c in step.tool_calls], "cost": step.cost,
                                  "spent": self.state.spent.as_dict()})
        if step.summary:
            self.w.note(step.text, kind="summary")
            self.state.history.append(Entry("summary", text=step.text))
            return {"next": "auditor"}
        if not step.tool_calls:
            self._user("Continue the audit: call tools, or call submit_report when you are done.")
            return {"next": "auditor"}
        return {"next": "tools"}

    def node_tools(self, gs: GraphState) -> GraphState:
        # Only the clock moves while tools run, so only the time budget can run out in the middle of a turn; the
        # calls left are still answered (as not run) so that every tool_use has its result.
        clock = Budget(max_minutes=self.state.budget.max_minutes)  # turns, tokens and dollars were spent already
        stop = None
        for call in self.state.pending_calls():
            self._tick()
            stop = stop or exhausted(clock, self.state.spent)
            self.run_call(call, skip=stop if call.name != SUBMIT else None)
        if self.report is not None:
            return {"next": "finish"}
        return {"next": "finalize", "reason": stop} if stop else {"next": "auditor"}

    def node_finalize(self, gs: GraphState) -> GraphState:
        reason = gs.get("reason", "budget spent")
        self.w.note(f"stopping: {reason}", kind="budget")
        self.progress("budget", {"reason": reason})
        self.report = self.draft or self.auditor.fallback_report(self.state, reason)
        self.stop_reason = "budget"
        return {"next": "finish", "reason": reason}

    # -- tool calls ---------------------------------------------------------------------------------------------------

    def run_call(self, call: ToolCall, step_no: int | None = None, skip: str | None = None) -> None:
        """Execute one call and record it (step_no: the call already has a tool_call event, e.g. after a crash;
        skip: answer it as not run, for this reason)."""
        if step_no is None:
            step_no = self.known_steps.pop(call.id, None)
        if step_no is None:
            step_no = self.w.tool_call(call.id, call.name, call.args)
        entry = Entry("tool", call=call, index=step_no, answered=False)
        self.state.history.append(entry)
        self.progress("tool_call", {"step": step_no, "name": call.name, "args": call.args})
        if self.report is not None:
            output, error, seconds = "", "not run: the report was already accepted in this turn", 0.0
        elif skip:
            output, error, seconds = "", f"not run: {skip}", 0.0
        elif call.name == SUBMIT:
            output, error, seconds = self._submit(call, step_no), None, 0.0
            if output.startswith("ERROR: "):
                output, error = "", output.removeprefix("ERROR: ")
        elif call.name not in self.state.tool_names:
            output, error, seconds = "", (f"tool {call.name!r} is not available in this audit; available: "
                                          f"{', '.join(self.state.tool_names)}, {SUBMIT}"), 0.0
        else:
            res = call_tool(self.ctx, call.name, call.args)
            output, error, seconds = res.output, res.error, res.seconds
        self.w.tool_result(call.id, output=output, error=error, seconds=seconds, sample_calls=sample_counter(self.ctx))
        entry.output, entry.error, entry.seconds, entry.answered = output, error, seconds, True
        self.progress("tool_result", {"step": step_no, "name": call.name, "error": error, "seconds": seconds,
                                      "chars": len(output)})

    def _submit(self, call: ToolCall, step_no: int) -> str:
        try:
            report = Report.model_validate(call.args)
        except ValidationError as e:
            errs = "; ".join(f"{'.'.join(str(x) for x in er['loc']) or 'report'}: {er['msg']}" for er in e.errors())
            return f"ERROR: the report does not match the schema: {errs}"
        cited = sorted({ev.step for b in report.behaviours for ev in b.evidence})
        real = {e.index for e in self.state.tool_entries() if e.call is not None and e.call.name != SUBMIT}
        bad = [s for s in cited if s not in real]
        if bad:
            return (f"ERROR: evidence cites steps {bad} that are not tool calls of this run; cite the [step N] "
                    f"numbers of tool results you received (0..{step_no - 1})")
        report = report.model_copy(update={"auditor": report.auditor or self.auditor.name})
        if self.auditor.accepts_nudge and not self.state.nudged:
            self.state.nudged = True
            self.draft = report
            self.w.note("first submission answered with a nudge to keep investigating", kind="nudge")
            self.progress("nudge", {})
            return prompts.NUDGE
        self.report = report
        self.stop_reason = "submitted"
        return "Report accepted."

    # -- graph --------------------------------------------------------------------------------------------------------

    def graph(self):
        g = StateGraph(GraphState)
        g.add_node("auditor", self.node_auditor)
        g.add_node("tools", self.node_tools)
        g.add_node("finalize", self.node_finalize)
        g.add_node("finish", lambda gs: {})
        g.add_edge(START, "auditor")
        g.add_conditional_edges("auditor", lambda gs: gs["next"], ["auditor", "tools", "finalize"])
        g.add_conditional_edges("tools", lambda gs: gs["next"], ["auditor", "finish", "finalize"])
        g.add_edge("finalize", "finish")
        g.add_edge("finish", END)
        return g.compile()

    def run(self) -> LoopResult:
        # Answer what a killed run left pending before the auditor speaks again (the API requires it, and the
        # offline investigator expects its results).
        if self.state.pending_calls():
            self.node_tools({})
        if self.report is None:
            # Each auditor turn is a few graph steps; the default recursion limit (25) would end real audits early.
            self.graph().invoke({"next": "auditor"}, {"recursion_limit": 1_000_000})
        self._tick()
        assert self.report is not None
        self.w.report(self.report)
        return LoopResult(self.report, "submitted" if self.stop_reason == "submitted" else "budget")
