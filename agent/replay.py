"""Replaying saved runs: the auditor's side of a transcript as an Auditor, re-executing its tool calls against the
target to find divergence, and forking a run at a tool step to continue it with another auditor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.auditor import SUBMIT, AuditorStep, AuditState
from agent.history import last_submission, step_from_message
from agent.loop import restore_sample_counter
from tools.registry import call as call_tool
from transcripts.events import AuditorMessageEvent, NoteEvent, RunStartEvent, ToolCallEvent, ToolResultEvent
from transcripts.log import TranscriptWriter
from transcripts.report import Report
from transcripts.run import TRANSCRIPT, Run


class ReplayAuditor:
    """Says what the recorded auditor said, turn by turn. The loop re-runs the tools, so replaying against another
    target (or after a tool change) shows what the same investigation would have seen there. When the recording
    runs out, `then` (another auditor) takes over if given; otherwise the run ends with the recorded report."""

    def __init__(self, steps: list[AuditorStep], *, report: Report | None = None, nudged: bool = False,
                 then: Any = None, source: str = ""):
        self.steps = steps
        self.recorded_report = report
        self.accepts_nudge = nudged  # answer submissions the way the recorded run was answered
        self.then = then
        self.name = f"replay:{source}" if source else "replay"

    @classmethod
    def from_run(cls, run_dir: str | Path, then: Any = None) -> ReplayAuditor:
        run = Run.load(run_dir, strict=False)
        steps = [step_from_message(m) for m in run.messages if m.role == "assistant"]
        # Summaries are the recorded auditor's own bookkeeping: the loop writes them again if the replay needs them.
        summary_texts = {n.text for n in run.notes if n.kind == "summary"}
        steps = [s.model_copy(update={"summary": s.text in summary_texts and not s.tool_calls}) for s in steps]
        return cls(steps, report=run.report, nudged=any(n.kind == "nudge" for n in run.notes), then=then,
                   source=str(run_dir))

    def _position(self, state: AuditState) -> int:
        return sum(1 for e in state.history if e.kind == "auditor")

    def next_action(self, state: AuditState) -> AuditorStep:
        k = self._position(state)
        if k < len(self.steps):
            return self.steps[k]
        if self.then is not None:
            return self.then.next_action(state)
        return AuditorStep(text="(end of the recording)", report=self.fallback_report(state, "end of the recording"))

    def fallback_report(self, state: AuditState, reason: str) -> Report:
        if self.then is not None:
            return self.then.fallback_report(state, reason)
        return last_submission(state) or self.recorded_report or Report(root_cause="", notes=f"replay: {reason}")


# ---- re-executing a run's tool calls ---------------------------------------------------------------------------------


@dataclass
class Divergence:
    step: int
    name: str
    recorded: str
    now: str


def reexecute(run_dir: str | Path, ctx: Any, *, limit: int | None = None) -> tuple[int, list[Divergence]]:
    """Run every recorded tool call again, in order, against `ctx` (the same seed reproduces sampling) and compare
    the outputs. Returns (calls re-run, divergences). Report submissions are not tools and are skipped."""
    run = Run.load(run_dir, strict=False)
    diverged: list[Divergence] = []
    n = 0
    counter: int | None = 0  # the sampling counter before the next call, as the recorded run had it
    for ts in run.tool_calls:
        if limit is not None and n >= limit:
            break
        recorded = ts.result.sample_calls if ts.result is not None else None
        if ts.name == SUBMIT or ts.pending:
            counter = recorded if recorded is not None else counter
            continue
        n += 1
        restore_sample_counter(ctx, counter)  # each call gets the seed it had, whatever was skipped before it
        res = call_tool(ctx, ts.name, ts.args)
        if res.text() != ts.text():
            diverged.append(Divergence(ts.step, ts.name, ts.text(), res.text()))
        # A log written before the counter was recorded: carry on from where this re-execution left it.
        counter = recorded if recorded is not None else None
    return n, diverged


# ---- forking a run ---------------------------------------------------------------------------------------------------


def fork(run_dir: str | Path, out: str | Path, from_step: int, auditor: str) -> Path:
    """Copy a run's transcript up to (not including) tool step `from_step` into `out`, ready for `resume` with
    another auditor: later tool calls, their results and everything after are left out, and the turn that made
    the cut call keeps only its earlier calls."""
    run = Run.load(run_dir, strict=False)
    if not 0 <= from_step <= len(run.tool_calls):
        raise ValueError(f"--from-step {from_step}: the run has tool steps 0..{len(run.tool_calls) - 1}")
    cut_ids = {ts.id for ts in run.tool_calls if ts.step >= from_step}
    out = Path(out)
    if (out / TRANSCRIPT).exists():
        raise FileExistsError(f"{out / TRANSCRIPT} exists; choose another --out")
    w = TranscriptWriter(out / TRANSCRIPT)
    first_cut = next((ts.call.seq for ts in run.tool_calls if ts.step == from_step), None)
    for ev in run.events:
        # The loop writes a call's tool_call and tool_result before the next call, so everything from the first
        # cut call on belongs to the part left out.
        if first_cut is not None and ev.seq >= first_cut:
            break
        if isinstance(ev, RunStartEvent):
            cfg = ev.config.model_dump()
            if auditor.partition(":")[0] != cfg.get("auditor", "").partition(":")[0]:
                cfg.pop("auditor_config", None)  # the recorded auditor's settings are not the new one's
            cfg.update(auditor=auditor, forked_from={"run": str(run_dir), "step": from_step})
            w.run_start(cfg)
        elif isinstance(ev, AuditorMessageEvent):
            content = [b for b in ev.content if not (b.get("type") == "tool_use" and b.get("id") in cut_ids)]
            if content:
                w.auditor_message(ev.role, content, usage=ev.usage, cost_usd=ev.cost_usd, model=ev.model,
                                  stop_reason=ev.stop_reason)
        elif isinstance(ev, ToolCallEvent):
            w.tool_call(ev.id, ev.name, ev.args)
        elif isinstance(ev, ToolResultEvent):
            w.tool_result(ev.id, output=ev.output, error=ev.error, seconds=ev.seconds, sample_calls=ev.sample_calls)
        elif isinstance(ev, NoteEvent):
            w.note(ev.text, kind=ev.kind)
        # report, score and run_end belong to the original ending, not to the fork
    w.note(f"forked from {run_dir} at tool step {from_step}; continuing with {auditor}", kind="fork")
    w.close()
    (out / "fork.json").write_text(json.dumps({"from": str(run_dir), "step": from_step, "auditor": auditor}) + "\n")
    return out
