"""The conversation as transcript events and back: what the loop writes, and what resume and replay rebuild.

An auditor turn is an assistant `auditor_message` (text + tool_use blocks; an offline report travels as a
submit_report tool_use so every auditor reads back the same way); each tool call is a tool_call/tool_result pair;
harness messages (task, budget notes) are user `auditor_message`s; a context compaction is a `note` of kind
"summary" after the assistant message that wrote it."""

from __future__ import annotations

from typing import Any

from agent.auditor import SUBMIT, AuditorStep, Entry, ToolCall
from transcripts.events import AuditorMessageEvent, NoteEvent, ToolCallEvent, ToolResultEvent
from transcripts.report import Report


def assistant_blocks(step: AuditorStep) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if step.text:
        blocks.append({"type": "text", "text": step.text})
    for c in step.tool_calls:
        blocks.append({"type": "tool_use", "id": c.id, "name": c.name, "input": c.args})
    return blocks


def transcript_usage(usage: dict[str, int]) -> dict[str, int] | None:
    if not usage:
        return None
    return {
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "cache_read": usage.get("cache_read_input_tokens", 0),
        "cache_write": usage.get("cache_creation_input_tokens", 0),
    }


def api_usage(u: Any) -> dict[str, int]:
    if u is None:
        return {}
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read,
        "cache_creation_input_tokens": u.cache_write,
    }


def step_from_message(msg: Any) -> AuditorStep:
    """An assistant auditor_message event -> the AuditorStep that produced it."""
    text = "\n".join(b.get("text", "") for b in msg.content if b.get("type") == "text")
    calls = [ToolCall(id=str(b["id"]), name=str(b["name"]), args=dict(b.get("input") or {}))
             for b in msg.content if b.get("type") == "tool_use"]
    return AuditorStep(text=text, tool_calls=calls, usage=api_usage(msg.usage), cost=msg.cost_usd, model=msg.model,
                       stop_reason=msg.stop_reason)


def entries_from_events(events: list[Any]) -> list[Entry]:
    """Rebuild the loop's conversation from a transcript's events (resume, replay)."""

    out: list[Entry] = []
    by_id: dict[str, Entry] = {}
    calls: dict[str, ToolCall] = {}
    for ev in events:
        if isinstance(ev, AuditorMessageEvent):
            if ev.role == "assistant":
                step = step_from_message(ev)
                out.append(Entry("auditor", step=step))
                calls.update({c.id: c for c in step.tool_calls})
            else:
                text = "\n".join(b.get("text", "") for b in ev.content if b.get("type") == "text")
                if text:
                    out.append(Entry("user", text=text))
        elif isinstance(ev, ToolCallEvent):
            call = calls.get(ev.id) or ToolCall(id=ev.id, name=ev.name, args=ev.args)
            e = Entry("tool", call=call, index=ev.step, answered=False)
            by_id[ev.id] = e
            out.append(e)
        elif isinstance(ev, ToolResultEvent) and ev.id in by_id:
            e = by_id[ev.id]
            e.output, e.error, e.seconds, e.answered = ev.output, ev.error, ev.seconds, True
        elif isinstance(ev, NoteEvent) and ev.kind == "summary":
            out.append(Entry("summary", text=ev.text))
    # A tool_call whose result never came back is not part of the conversation: resume re-runs it.
    return [e for e in out if e.kind != "tool" or e.answered]


def submitted_report(call: ToolCall) -> Report:
    """The Report a submit_report call carries (raises pydantic.ValidationError when malformed)."""
    assert call.name == SUBMIT
    return Report.model_validate(call.args)


def last_submission(state: Any) -> Report | None:
    """The newest submit_report call that passed validation (e.g. the one answered with the nudge)."""
    for e in reversed(state.history):
        if e.kind == "tool" and e.call is not None and e.call.name == SUBMIT and not e.error and e.answered:
            try:
                return submitted_report(e.call)
            except ValueError:
                continue
    return None
