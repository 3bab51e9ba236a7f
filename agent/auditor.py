"""The Auditor protocol: given the audit so far, choose the next action.

An action is either tool calls (plus optional text: the auditor's reasoning) or a final Report. The loop owns the
conversation (AuditState.history) and executes tool calls; auditors only read it, so every backend sees the same
facts: tool results as strings, numbered by step (the index of the tool call in the transcript, which reports cite
as evidence)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from agent.budget import Budget, Spent
from transcripts.report import Report

SUBMIT = "submit_report"


class ToolCall(BaseModel):
    id: str
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class AuditorStep(BaseModel):
    """One auditor turn. `tool_calls` may include a submit_report call (the LLM way to finish); `report` is the
    direct way (offline auditors). `usage`/`cost`/`model` describe the LLM call that produced it, if any."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    report: Report | None = None
    summary: bool = False  # `text` is a summary that replaces the conversation so far (context compaction)
    usage: dict[str, int] = Field(default_factory=dict)
    cost: float = 0.0
    model: str = ""
    stop_reason: str | None = None


EntryKind = Literal["auditor", "tool", "user", "summary"]


@dataclass
class Entry:
    """One item of the conversation. auditor: `step` (AuditorStep). tool: `call` and the result fields. user: a
    message from the harness (nudge, budget note). summary: a compaction of everything before it."""

    kind: EntryKind
    step: AuditorStep | None = None
    call: ToolCall | None = None
    index: int | None = None  # tool calls: the step number cited as evidence
    output: str = ""
    error: str | None = None
    seconds: float = 0.0
    text: str = ""
    answered: bool = True  # tool entries: False while the call has no result (a crash mid-call)

    def result_text(self) -> str:
        body = f"ERROR: {self.error}" if self.error else self.output
        return f"[step {self.index}] {body}" if self.index is not None else body


@dataclass
class AuditState:
    task: str
    tools: list[dict]  # JSON schemas (name, description, input_schema) of the tools the auditor may call
    history: list[Entry] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)
    spent: Spent = field(default_factory=Spent)
    seed: int = 0
    nudged: bool = False
    target_name: str = ""
    context: dict[str, Any] = field(default_factory=dict)  # e.g. earlier reports for the super-agent

    @property
    def tool_names(self) -> list[str]:
        return [t["name"] for t in self.tools]

    def tool_entries(self) -> list[Entry]:
        return [e for e in self.history if e.kind == "tool" and e.index is not None]

    @property
    def n_tool_calls(self) -> int:
        return len(self.tool_entries())

    def result(self, call_id: str) -> Entry | None:
        for e in reversed(self.history):
            if e.kind == "tool" and e.call is not None and e.call.id == call_id:
                return e
        return None

    def pending_calls(self) -> list[ToolCall]:
        """Tool calls of the last auditor turn that have no result yet (after a crash mid-turn)."""
        for e in reversed(self.history):
            if e.kind == "auditor" and e.step is not None:
                answered = {x.call.id for x in self.history if x.kind == "tool" and x.call is not None and x.answered}
                return [c for c in e.step.tool_calls if c.id not in answered]
        return []


@runtime_checkable
class Auditor(Protocol):
    name: str
    accepts_nudge: bool

    def next_action(self, state: AuditState) -> AuditorStep: ...

    def fallback_report(self, state: AuditState, reason: str) -> Report:
        """A report when the run must stop without the auditor's own submission (budget spent)."""
        ...
