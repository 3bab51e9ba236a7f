"""The append-only transcript log: a writer that makes each event durable before returning, and a reader that
rebuilds the event list and says exactly where and why a damaged log stops making sense.

Rules both sides enforce (so a log the writer produced always reads back):
- `seq` starts at 0 with run_start and increases by one per event;
- tool_call ids are unique and `step` counts tool calls from 0; a tool_result answers a known, unanswered call;
- after a run_end only score events may follow (grading happens after the audit), except after a run_end with
  reason "interrupted", which a resumed run may continue.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, overload

from pydantic import BaseModel, ValidationError

from transcripts.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    AuditorMessageEvent,
    EndReason,
    Event,
    NoteEvent,
    ReportEvent,
    Role,
    RunConfig,
    RunEndEvent,
    RunStartEvent,
    ScoreEvent,
    ToolCallEvent,
    ToolResultEvent,
    Totals,
    Usage,
    totals_of,
)
from transcripts.report import Report, Score

E = TypeVar("E", bound=Event)  # one event model; what TranscriptWriter._write hands back


class TranscriptError(ValueError):
    """A transcript that cannot be read (or written) past some point. `line` is 1-based (None for writer errors),
    `events` holds every good event before the problem, `good_bytes` where they end in the file."""

    def __init__(
        self,
        path: str | Path,
        line: int | None,
        reason: str,
        events: list[Event] | None = None,
        *,
        good_bytes: int = 0,
        truncated: bool = False,
    ):
        self.path = Path(path)
        self.line = line
        self.reason = reason
        self.events: list[Event] = list(events or [])
        self.good_bytes = good_bytes
        self.truncated = truncated
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


class _Checker:
    """Cross-event consistency, shared by reader and writer."""

    def __init__(self) -> None:
        self.next_seq = 0
        self.calls: dict[str, ToolCallEvent] = {}
        self.answered: set[str] = set()
        self.end: RunEndEvent | None = None

    def problem(self, ev: Event) -> str | None:
        if ev.seq != self.next_seq:
            return f"seq {ev.seq} where {self.next_seq} was expected (events missing or out of order)"
        if self.next_seq == 0 and not isinstance(ev, RunStartEvent):
            return f"first event is {ev.type!r}; a transcript starts with run_start"
        if self.next_seq > 0 and isinstance(ev, RunStartEvent):
            return "a second run_start; one transcript holds one run"
        if self.end is not None and self.end.reason != "interrupted" and not isinstance(ev, ScoreEvent):
            return f"{ev.type!r} after run_end (reason {self.end.reason!r}); only score events may follow it"
        if isinstance(ev, ToolCallEvent):
            if ev.id in self.calls:
                return f"duplicate tool_call id {ev.id!r}"
            if ev.step != len(self.calls):
                return f"tool_call step {ev.step} where {len(self.calls)} was expected"
        if isinstance(ev, ToolResultEvent):
            if ev.id not in self.calls:
                return f"tool_result for unknown tool_call id {ev.id!r}"
            if ev.id in self.answered:
                return f"second tool_result for tool_call id {ev.id!r}"
        return None

    def accept(self, ev: Event) -> None:
        self.next_seq += 1
        if self.end is not None and self.end.reason == "interrupted" and not isinstance(ev, ScoreEvent):
            self.end = None  # the run was resumed
        if isinstance(ev, ToolCallEvent):
            self.calls[ev.id] = ev
        elif isinstance(ev, ToolResultEvent):
            self.answered.add(ev.id)
        elif isinstance(ev, RunEndEvent):
            self.end = ev


def _validation_reason(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        # The union's discriminator adds the type name as the first loc element; it says nothing useful.
        loc = [str(x) for x in err["loc"]]
        parts.append(f"{'.'.join(loc) or 'event'}: {err['msg']}")
    return "schema error: " + "; ".join(parts)


def parse_line(raw: bytes) -> Event | str:
    """One line -> an event, or the reason it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 ({e.reason} at byte {e.start})"
    if not text.strip():
        return "empty line"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return f"bad JSON: {e.msg} at column {e.colno}"
    if not isinstance(obj, dict):
        return f"an event must be a JSON object, got {type(obj).__name__}"
    if "v" not in obj:
        return "missing schema version 'v'"
    if obj["v"] != SCHEMA_VERSION:
        return f"unsupported schema version {obj['v']!r} (this reader knows {SCHEMA_VERSION})"
    etype = obj.get("type")
    if etype not in EVENT_TYPES:
        return f"unknown event type {etype!r}; known: {', '.join(EVENT_TYPES)}"
    try:
        return EVENT_TYPES[etype].model_validate(obj)
    except ValidationError as e:
        return _validation_reason(e)


@overload
def read_events(path: str | Path, strict: Literal[True] = ...) -> list[Event]: ...
@overload
def read_events(path: str | Path, strict: Literal[False]) -> tuple[list[Event], TranscriptError | None]: ...
def read_events(path: str | Path, strict: bool = True) -> list[Event] | tuple[list[Event], TranscriptError | None]:
    """All events of a transcript. strict: the first problem raises TranscriptError (its `.events` is the good
    prefix). strict=False: returns (good prefix, the error or None) instead of raising."""
    path = Path(path)
    data = path.read_bytes()
    events: list[Event] = []
    checker = _Checker()
    pos = 0
    lineno = 0
    error: TranscriptError | None = None
    while pos < len(data):
        lineno += 1
        nl = data.find(b"\n", pos)
        if nl < 0:
            # The writer puts each event and its newline down in one write; a missing newline means it was killed
            # mid-write, so the tail is an event in flight, never a committed one.
            error = TranscriptError(
                path, lineno, f"truncated last line ({len(data) - pos} bytes without a newline; the writer was "
                "probably killed mid-write)", events, good_bytes=pos, truncated=True,
            )
            break
        parsed = parse_line(data[pos:nl])
        if isinstance(parsed, str):
            error = TranscriptError(path, lineno, parsed, events, good_bytes=pos)
            break
        reason = checker.problem(parsed)
        if reason:
            error = TranscriptError(path, lineno, reason, events, good_bytes=pos)
            break
        checker.accept(parsed)
        events.append(parsed)
        pos = nl + 1
    if strict:
        if error:
            raise error
        return events
    return events, error


class TranscriptLocked(TranscriptError):
    """Another live process is writing this transcript."""


def lock_path(transcript: Path) -> Path:
    return transcript.with_name(transcript.name + ".lock")


def _take_lock(transcript: Path) -> IO[str]:
    """An exclusive lock on the transcript's lock file, or TranscriptLocked naming the process that holds it. The
    kernel drops a flock when its process dies, so a run whose writer was killed is taken over without a stale lock;
    the pid in the file is only there to name the holder."""
    f = open(lock_path(transcript), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise TranscriptLocked(transcript, None, f"another process (pid {holder}) is writing this run; wait for it to "
                               f"end or stop it before resuming or scoring") from None
    except BaseException:
        f.close()
        raise
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def check_unlocked(transcript: Path) -> None:
    """Raise TranscriptLocked now if a live process writes `transcript`: callers that would load a model first refuse
    before paying for it (the writer takes the lock for real when it opens)."""
    if transcript.exists():
        _take_lock(transcript).close()


class TranscriptWriter:
    """Appends events to transcript.jsonl. Each event is one line, written in one call, flushed and fsync'd before
    the method returns, so a `kill -9` loses at most the event being written.

    A fresh file starts a run; an existing one is refused unless resume=True, which reads it, cuts off a torn last
    line and continues the numbering (after a run_end only score events, or anything after an interrupted one).
    """

    def __init__(self, path: str | Path, *, resume: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # before anything is read or written: one writer per transcript
        self._lock: IO[str] | None = _take_lock(self.path)
        try:
            self.events: list[Event] = []
            self._checker = _Checker()
            if self.path.exists() and self.path.stat().st_size > 0:
                if not resume:
                    raise TranscriptError(self.path, None,
                                          "transcript already exists; pass resume=True to append to it")
                events, err = read_events(self.path, strict=False)
                if err is not None:
                    if not err.truncated:
                        raise err
                    with open(self.path, "r+b") as f:
                        f.truncate(err.good_bytes)
                        f.flush()
                        os.fsync(f.fileno())
                for ev in events:
                    self._checker.accept(ev)
                self.events = events
            self._f: IO[bytes] | None = open(self.path, "ab")
        except BaseException:
            self._lock.close()  # type: ignore[union-attr]  # a refused or unreadable transcript must not keep the run locked
            raise

    # -- core -------------------------------------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        return self._checker.next_seq

    @property
    def ended(self) -> bool:
        return self._checker.end is not None

    @property
    def tool_steps(self) -> int:
        return len(self._checker.calls)

    def _write(self, ev: E) -> E:
        """Check `ev` against what is already there, append it as one line and make it durable."""
        if self._f is None:
            raise TranscriptError(self.path, None, "writer is closed")
        reason = self._checker.problem(ev)
        if reason:
            raise TranscriptError(self.path, None, f"refusing to write: {reason}")
        line = ev.model_dump_json(exclude_none=False).encode("utf-8") + b"\n"
        self._f.write(line)
        self._f.flush()
        os.fsync(self._f.fileno())
        self._checker.accept(ev)
        self.events.append(ev)
        return ev

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._lock is not None:
            # Unlock explicitly: a process forked meanwhile (the grep tool's worker) shares the open file, and the
            # lock would live on with its copy.
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one method per event type ------------------------------------------------------------------------------------

    def run_start(self, config: RunConfig | dict[str, Any]) -> RunStartEvent:
        cfg = config if isinstance(config, RunConfig) else RunConfig.model_validate(config)
        return self._write(RunStartEvent(seq=self.next_seq, config=cfg))

    def auditor_message(
        self,
        role: Role,
        content: str | list[dict[str, Any]] | list[Any],
        *,
        usage: Usage | dict[str, Any] | None = None,
        cost_usd: float = 0.0,
        model: str = "",
        stop_reason: str | None = None,
    ) -> AuditorMessageEvent:
        """content: a string, or content blocks as dicts or SDK objects (anything with model_dump())."""
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [_block(b) for b in content]
        u = usage if usage is None or isinstance(usage, Usage) else Usage.model_validate(usage)
        return self._write(AuditorMessageEvent(
            seq=self.next_seq, role=role, content=blocks, usage=u, cost_usd=cost_usd, model=model,
            stop_reason=stop_reason,
        ))

    def tool_call(self, id: str, name: str, args: dict[str, Any] | None = None) -> int:
        """Record a tool call; returns its step number (what the auditor cites as evidence)."""
        ev = self._write(ToolCallEvent(seq=self.next_seq, id=id, name=name, args=args or {}, step=self.tool_steps))
        return ev.step

    def tool_result(self, id: str, output: str = "", error: str | None = None, seconds: float = 0.0,
                    sample_calls: int | None = None) -> ToolResultEvent:
        return self._write(ToolResultEvent(seq=self.next_seq, id=id, output=output, error=error, seconds=seconds,
                                           sample_calls=sample_calls))

    def note(self, text: str, kind: str = "") -> NoteEvent:
        return self._write(NoteEvent(seq=self.next_seq, text=text, kind=kind))

    def report(self, report: Report) -> ReportEvent:
        return self._write(ReportEvent(seq=self.next_seq, report=report))

    def score(self, score: Score) -> ScoreEvent:
        return self._write(ScoreEvent(seq=self.next_seq, score=score))

    def run_end(self, reason: EndReason, totals: Totals | None = None, message: str = "") -> RunEndEvent:
        """totals default to what the events written so far add up to."""
        if totals is None:
            totals = totals_of(self.events)
        return self._write(RunEndEvent(seq=self.next_seq, reason=reason, totals=totals, message=message))


def _block(b: Any) -> dict[str, Any]:
    if isinstance(b, dict):
        return b
    if isinstance(b, BaseModel):
        return b.model_dump(mode="json", exclude_none=True)
    if hasattr(b, "model_dump"):
        return b.model_dump()
    raise TypeError(f"content block must be a dict or a pydantic model, got {type(b).__name__}")


def append_event(path: str | Path, etype: str, **fields: Any) -> Event:
    """Append one event to an existing transcript (e.g. a score after the run); validates against what is there."""
    if etype not in EVENT_TYPES:
        raise TranscriptError(path, None, f"unknown event type {etype!r}")
    with TranscriptWriter(path, resume=True) as w:
        return w._write(EVENT_TYPES[etype](seq=w.next_seq, **fields))


__all__ = ["TranscriptError", "TranscriptLocked", "TranscriptWriter", "check_unlocked", "read_events", "parse_line",
           "append_event"]
