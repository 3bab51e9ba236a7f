"""A run rebuilt by replaying its events: config, messages, tool calls paired with results, report, score, totals,
and what a resumed run still has to answer. Also the run-folder layout and helpers to read and write it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from target_models.common.atomic import tmp_sibling
from transcripts.events import (
    AuditorMessageEvent,
    Event,
    NoteEvent,
    ReportEvent,
    RunConfig,
    RunEndEvent,
    RunStartEvent,
    ScoreEvent,
    ToolCallEvent,
    ToolResultEvent,
    Totals,
    totals_of,
)
from transcripts.log import TranscriptError, read_events
from transcripts.report import Report, Score

TRANSCRIPT = "transcript.jsonl"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
SCORE_JSON = "score.json"
VIEW_HTML = "view.html"

M = TypeVar("M", bound=BaseModel)


class RunFileError(ValueError):
    """A file of a run folder (report.json, score.json) that cannot be read; the message starts with its path."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class ToolStep:
    """A tool call and (once it came back) its result. `step` is what Evidence.step refers to."""

    call: ToolCallEvent
    result: ToolResultEvent | None = None

    @property
    def step(self) -> int:
        return self.call.step

    @property
    def id(self) -> str:
        return self.call.id

    @property
    def name(self) -> str:
        return self.call.name

    @property
    def args(self) -> dict[str, Any]:
        return self.call.args

    @property
    def pending(self) -> bool:
        return self.result is None

    @property
    def output(self) -> str:
        return self.result.output if self.result else ""

    @property
    def error(self) -> str | None:
        return self.result.error if self.result else None

    @property
    def seconds(self) -> float:
        return self.result.seconds if self.result else 0.0

    def text(self) -> str:
        """The result as the auditor saw it (same convention as tools.registry.ToolResult.text)."""
        if self.result is None:
            return ""
        return f"ERROR: {self.result.error}" if self.result.error else self.result.output


@dataclass
class PendingCall:
    """A tool_use the auditor issued that has no result yet: resume must run it (or answer it) before the next
    model call. `step` is None when the crash came before the tool_call event was written."""

    id: str
    name: str
    args: dict[str, Any]
    step: int | None


class Run:
    def __init__(self, events: list[Event], path: Path | None = None, error: TranscriptError | None = None):
        self.events = events
        self.path = path
        self.error = error  # set when loaded with strict=False and the log is damaged past `events`
        self.start: RunStartEvent | None = None
        self.messages: list[AuditorMessageEvent] = []
        self.tool_calls: list[ToolStep] = []
        self.notes: list[NoteEvent] = []
        self.reports: list[Report] = []
        self.scores: list[Score] = []
        self.end: RunEndEvent | None = None
        by_id: dict[str, ToolStep] = {}
        for ev in events:
            if isinstance(ev, RunStartEvent):
                self.start = ev
            elif isinstance(ev, AuditorMessageEvent):
                self.messages.append(ev)
            elif isinstance(ev, ToolCallEvent):
                ts = ToolStep(ev)
                by_id[ev.id] = ts
                self.tool_calls.append(ts)
            elif isinstance(ev, ToolResultEvent):
                if ev.id in by_id:
                    by_id[ev.id].result = ev
            elif isinstance(ev, NoteEvent):
                self.notes.append(ev)
            elif isinstance(ev, ReportEvent):
                self.reports.append(ev.report)
            elif isinstance(ev, ScoreEvent):
                self.scores.append(ev.score)
            elif isinstance(ev, RunEndEvent):
                self.end = ev
            if self.end is not None and ev is not self.end and not isinstance(ev, ScoreEvent):
                self.end = None  # an interrupted run that was resumed
        self._by_id = by_id

    # -- loading ------------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, strict: bool = True) -> Run:
        """path: a run folder or its transcript.jsonl. strict=False keeps the good prefix of a damaged log and puts
        the problem in `.error`."""
        p = transcript_path(path)
        if strict:
            return cls(read_events(p), p)
        events, err = read_events(p, strict=False)
        return cls(events, p, err)

    # -- views --------------------------------------------------------------------------------------------------------

    @property
    def config(self) -> RunConfig | None:
        return self.start.config if self.start else None

    @property
    def report(self) -> Report | None:
        return self.reports[-1] if self.reports else None

    @property
    def score(self) -> Score | None:
        return self.scores[-1] if self.scores else None

    @property
    def ended(self) -> bool:
        return self.end is not None

    def step(self, n: int) -> ToolStep:
        if not 0 <= n < len(self.tool_calls):
            raise IndexError(f"no tool call step {n}; the run has steps 0..{len(self.tool_calls) - 1}")
        return self.tool_calls[n]

    def tool_call(self, call_id: str) -> ToolStep | None:
        return self._by_id.get(call_id)

    @property
    def pending_tool_calls(self) -> list[PendingCall]:
        out: list[PendingCall] = []
        seen: set[str] = set()
        for ev in self.events:
            if isinstance(ev, AuditorMessageEvent) and ev.role == "assistant":
                for b in ev.tool_uses():
                    bid = str(b.get("id", ""))
                    if not bid or bid in seen:
                        continue
                    seen.add(bid)
                    ts = self._by_id.get(bid)
                    if ts is None:
                        out.append(PendingCall(bid, str(b.get("name", "")), dict(b.get("input") or {}), None))
                    elif ts.pending:
                        out.append(PendingCall(bid, ts.name, ts.args, ts.step))
            elif isinstance(ev, ToolCallEvent) and ev.id not in seen:
                # Calls made without an LLM turn (offline investigators) are pending too when unanswered.
                seen.add(ev.id)
                if self._by_id[ev.id].pending:
                    out.append(PendingCall(ev.id, ev.name, ev.args, ev.step))
        return out

    def compute_totals(self) -> Totals:
        return totals_of(self.events)

    @property
    def totals(self) -> Totals:
        return self.compute_totals()

    def conversation(self, format_result: Callable[[ToolStep], str] | None = None) -> list[dict[str, Any]]:
        """The auditor's conversation in Messages API form, rebuilt for resume: tool results (recorded only as
        tool_result events) are folded into the user turn that follows the assistant turn that asked for them, and
        consecutive same-role messages are merged because the API requires alternation. Results of a trailing
        assistant turn end up in a final user message. Pending calls are not answered here."""
        fmt = format_result or ToolStep.text
        msgs: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []

        def add(role: str, blocks: list[dict[str, Any]]) -> None:
            if not blocks:
                return
            if msgs and msgs[-1]["role"] == role:
                msgs[-1]["content"].extend(blocks)
            else:
                msgs.append({"role": role, "content": list(blocks)})

        for ev in self.events:
            if isinstance(ev, AuditorMessageEvent):
                if ev.role == "assistant":
                    add("user", waiting)
                    waiting = []
                    add("assistant", [dict(b) for b in ev.content])
                else:
                    have = {b.get("tool_use_id") for b in ev.content if b.get("type") == "tool_result"}
                    add("user", [b for b in waiting if b["tool_use_id"] not in have] + [dict(b) for b in ev.content])
                    waiting = []
            elif isinstance(ev, ToolResultEvent):
                ts = self._by_id[ev.id]
                block: dict[str, Any] = {"type": "tool_result", "tool_use_id": ev.id, "content": fmt(ts)}
                if ev.error:
                    block["is_error"] = True
                waiting.append(block)
        add("user", waiting)
        return msgs


def transcript_path(path: str | Path) -> Path:
    p = Path(path)
    return p / TRANSCRIPT if p.is_dir() else p


def run_dir_of(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_dir() else p.parent


def load_run(path: str | Path, strict: bool = True) -> Run:
    return Run.load(path, strict=strict)


def open_run(path: str | Path) -> Run:
    """The run at `path` (a run folder or its transcript.jsonl) for the commands that show or grade it. Raises
    FileNotFoundError or TranscriptError, each naming the transcript, when nothing in it can be shown: no file, an
    empty file, binary data, or damage from the first line on. A log damaged further on comes back as its good
    prefix with the problem in `.error` (path, 1-based line, reason)."""
    p = transcript_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no transcript")
    run = Run.load(p, strict=False)
    if run.events:
        return run
    if run.error is None:
        raise TranscriptError(p, None, "empty file: no events (not a transcript, or the run never started)")
    with open(p, "rb") as f:
        head = f.read(8192)
    if b"\0" in head or run.error.reason.startswith("not UTF-8"):
        raise TranscriptError(p, None, "binary data, not a JSONL transcript")
    raise TranscriptError(p, run.error.line, f"{run.error.reason}; no event before it could be read")


def _write_atomic(path: Path, text: str) -> None:
    # report.json / score.json are rewritten, not appended: write a temp file (a name no other process uses) and
    # rename it, so that a crash or a concurrent writer leaves the old file or a new one, never half of one.
    tmp = tmp_sibling(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _validation_reason(e: ValidationError) -> str:
    parts = []
    for x in e.errors()[:3]:
        loc = ".".join(str(v) for v in x["loc"])
        parts.append(f"{loc}: {x['msg']}" if loc else x["msg"])
    more = f" (and {len(e.errors()) - 3} more)" if len(e.errors()) > 3 else ""
    return "; ".join(parts) + more


def _read_model(path: Path, model: type[M], what: str) -> M:
    """`path` parsed as `model`; every failure names the file (a torn write shows up as invalid JSON)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no {what}") from None
    except OSError as e:
        raise RunFileError(path, f"cannot read the {what}: {e.strerror or e}") from None
    if not data.strip():
        raise RunFileError(path, f"empty file, not a {what}")
    try:
        return model.model_validate_json(data)
    except ValidationError as e:
        raise RunFileError(path, f"not a valid {what} ({_validation_reason(e)})") from None


def write_report(run_dir: str | Path, report: Report) -> Path:
    """Writes report.json and report.md; returns the JSON path."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    _write_atomic(d / REPORT_JSON, report.model_dump_json(indent=2) + "\n")
    _write_atomic(d / REPORT_MD, report.to_markdown())
    return d / REPORT_JSON


def read_report(run_dir: str | Path) -> Report:
    """RUN/report.json. FileNotFoundError or RunFileError, whose messages start with the file's path."""
    p = Path(run_dir) / REPORT_JSON
    if not p.exists():
        raise FileNotFoundError(f"{p}: no report (the run did not submit one)")
    return _read_model(p, Report, "report")


def write_score(run_dir: str | Path, score: Score) -> Path:
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    _write_atomic(d / SCORE_JSON, score.model_dump_json(indent=2) + "\n")
    return d / SCORE_JSON


def read_score(run_dir: str | Path) -> Score:
    """RUN/score.json. FileNotFoundError or RunFileError, whose messages start with the file's path."""
    return _read_model(Path(run_dir) / SCORE_JSON, Score, "score")


__all__ = [
    "Run",
    "ToolStep",
    "PendingCall",
    "load_run",
    "open_run",
    "RunFileError",
    "transcript_path",
    "run_dir_of",
    "write_report",
    "read_report",
    "write_score",
    "read_score",
    "TRANSCRIPT",
    "REPORT_JSON",
    "REPORT_MD",
    "SCORE_JSON",
    "VIEW_HTML",
]
