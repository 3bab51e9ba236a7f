"""Transcript events: one pydantic model per event type, joined in a discriminated union on `type`.

Every line of transcript.jsonl is one event `{"v": 1, "seq": n, "type": ..., "t": iso-time, ...}`. `v` is the schema
version: a reader meeting a version it does not know stops there instead of guessing at the fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from transcripts.report import Report, Score

SCHEMA_VERSION = 1
EndReason = Literal["submitted", "budget", "error", "interrupted"]
END_REASONS: tuple[EndReason, ...] = get_args(EndReason)
Role = Literal["user", "assistant"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_time(t: str) -> datetime:
    return datetime.fromisoformat(t)


class _Event(BaseModel):
    # Events are a record of what happened: unknown fields are errors so that a typo in a writer is caught by the
    # reader's tests rather than silently dropped.
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    seq: int = Field(ge=0)
    type: str  # narrowed to a Literal by each event; declared here so it is serialised right after seq
    t: str = Field(default_factory=now_iso)

    @field_validator("t")
    @classmethod
    def _iso_time(cls, v: str) -> str:
        try:
            parse_time(v)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {v!r}") from None
        return v


class RunConfig(BaseModel):
    """What a run was started with. Extra keys are kept (the agent loop may record more, e.g. the system prompt)."""

    model_config = ConfigDict(extra="allow")

    target: str = Field(description="organism name or build folder; `sleuth score` loads the spec from it")
    auditor: str = Field(description="auditor model or investigator name")
    toolset: list[str] = Field(default_factory=list)
    seed: int = 0
    budgets: dict[str, float | int | None] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict, description="package versions")


class Usage(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0


class RunStartEvent(_Event):
    type: Literal["run_start"] = "run_start"
    config: RunConfig


class AuditorMessageEvent(_Event):
    """One message of the auditor's conversation in Anthropic Messages form. Tool results are not repeated here:
    they live in tool_result events and Run.conversation() folds them back into user messages."""

    type: Literal["auditor_message"] = "auditor_message"
    role: Role
    content: list[dict[str, Any]]
    usage: Usage | None = None
    cost_usd: float = 0.0
    model: str = ""
    stop_reason: str | None = None

    def text(self) -> str:
        return "\n".join(b.get("text", "") for b in self.content if b.get("type") == "text")

    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]


class ToolCallEvent(_Event):
    type: Literal["tool_call"] = "tool_call"
    id: str = Field(min_length=1)
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    step: int = Field(ge=0, description="0-based index among the run's tool calls; what Evidence.step cites")


class ToolResultEvent(_Event):
    type: Literal["tool_result"] = "tool_result"
    id: str = Field(min_length=1)
    output: str = ""
    error: str | None = None
    seconds: float = 0.0
    sample_calls: int | None = Field(default=None, description=(
        "sampling calls the tool context had made after this one (the next call's seed derives from it); resume, "
        "re-execution and forks restore it so that sampling reproduces"))


class NoteEvent(_Event):
    type: Literal["note"] = "note"
    text: str
    kind: str = Field(default="", description="e.g. nudge, summary, resume")


class ReportEvent(_Event):
    type: Literal["report"] = "report"
    report: Report


class ScoreEvent(_Event):
    type: Literal["score"] = "score"
    score: Score


class Totals(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float = 0.0
    turns: int = Field(default=0, description="assistant messages")
    tool_calls: int = 0
    tool_errors: int = 0
    wall_seconds: float = 0.0


class RunEndEvent(_Event):
    type: Literal["run_end"] = "run_end"
    reason: EndReason
    totals: Totals = Field(default_factory=Totals)
    message: str = ""


Event = Annotated[
    RunStartEvent
    | AuditorMessageEvent
    | ToolCallEvent
    | ToolResultEvent
    | NoteEvent
    | ReportEvent
    | ScoreEvent
    | RunEndEvent,
    Field(discriminator="type"),
]
EVENT_TYPES: dict[str, type[Event]] = {
    m.model_fields["type"].default: m
    for m in (
        RunStartEvent,
        AuditorMessageEvent,
        ToolCallEvent,
        ToolResultEvent,
        NoteEvent,
        ReportEvent,
        ScoreEvent,
        RunEndEvent,
    )
}
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def totals_of(events: list[Event]) -> Totals:
    """What a run's events add up to: tokens, cost, turns, tool calls and errors, live wall-clock seconds."""
    t = Totals()
    errored: dict[str, bool] = {}  # per call id; a repeated id (not written by our writer) counts its last call
    calls = 0
    for ev in events:
        if isinstance(ev, AuditorMessageEvent):
            if ev.usage:
                t.input_tokens += ev.usage.input_tokens
                t.output_tokens += ev.usage.output_tokens
                t.cache_read += ev.usage.cache_read
                t.cache_write += ev.usage.cache_write
            t.cost_usd += ev.cost_usd
            t.turns += ev.role == "assistant"
        elif isinstance(ev, ToolCallEvent):
            calls += 1
            errored[ev.id] = False
        elif isinstance(ev, ToolResultEvent) and ev.id in errored:
            errored[ev.id] = bool(ev.error)
    t.tool_calls = calls
    t.tool_errors = sum(errored.values())
    t.wall_seconds = _wall_seconds(events)
    return t


def _wall_seconds(events: list[Event]) -> float:
    # Time the run was actually alive: a resumed run restarts the clock at the resume, so the hours it sat dead
    # between an interrupt and the resume are not counted.
    total = 0.0
    seg_start = None
    last = None
    for ev in events:
        if isinstance(ev, ScoreEvent):
            continue
        t = parse_time(ev.t)
        if seg_start is None:
            seg_start = t
        elif isinstance(ev, NoteEvent) and ev.kind == "resume" and last is not None:
            total += (last - seg_start).total_seconds()
            seg_start = t
        last = t
        if isinstance(ev, RunEndEvent):
            total += (t - seg_start).total_seconds()
            seg_start = None
    if seg_start is not None and last is not None:
        total += (last - seg_start).total_seconds()
    return round(total, 3)

__all__ = [
    "SCHEMA_VERSION",
    "END_REASONS",
    "EndReason",
    "Role",
    "Event",
    "EVENT_TYPES",
    "RunConfig",
    "Usage",
    "RunStartEvent",
    "AuditorMessageEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "NoteEvent",
    "ReportEvent",
    "ScoreEvent",
    "RunEndEvent",
    "Totals",
    "event_adapter",
    "totals_of",
    "now_iso",
    "parse_time",
]
