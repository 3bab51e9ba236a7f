"""A run as one self-contained HTML page: inline CSS, no scripts, no external assets, so it can be mailed around or
opened from an artifact store. Everything that came from a model, a tool or a user is HTML-escaped."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from transcripts.events import (
    AuditorMessageEvent,
    NoteEvent,
    ReportEvent,
    RunEndEvent,
    RunStartEvent,
    ScoreEvent,
    ToolCallEvent,
)
from transcripts.report import Report, Score
from transcripts.run import Run, ToolStep

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;
color:#1d232a;background:#fafafa}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccd;padding-bottom:.2em;margin-top:2em}
pre{white-space:pre-wrap;word-wrap:break-word;background:#f1f3f5;padding:.6em;border-radius:4px;margin:.3em 0;
font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d5d9de;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#eef0f3}
.msg{border-left:4px solid #8895a7;background:#fff;margin:.8em 0;padding:.4em .8em;border-radius:3px}
.msg.assistant{border-color:#3b6fd8}.msg.user{border-color:#6a9f3b}
.who{font-weight:600;font-size:.85em;color:#555}.meta{color:#777;font-size:.8em}
.call{border:1px solid #d5d9de;background:#fff;margin:.6em 0 .6em 1.5em;padding:.4em .8em;border-radius:3px}
.call.error{border-color:#d33;background:#fff4f4}.call.pending{border-style:dashed}
.errtext{color:#b00;font-weight:600}.note{background:#fff8e1;border-left:4px solid #e0a800;padding:.3em .8em;
margin:.6em 0}.use{color:#3b6fd8;font-size:.9em}
.win{color:#19792f;font-weight:700}.loss{color:#b00;font-weight:700}
summary{cursor:pointer;color:#345}
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _json(x: Any) -> str:
    return _e(json.dumps(x, indent=2, ensure_ascii=False, default=str))


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v) if isinstance(v, str | int | float) else '<pre>' + _json(v) + '</pre>'}"
        "</td></tr>"
        for k, v in rows
    )
    return f"<table>{body}</table>"


def _config(start: RunStartEvent) -> str:
    cfg = start.config.model_dump()
    rows = [(k, cfg.pop(k)) for k in ("target", "auditor", "toolset", "seed", "budgets", "versions") if k in cfg]
    rows += sorted(cfg.items())
    return f"<h2>Config</h2><p class=meta>started {_e(start.t)}</p>" + _kv_table(rows)


def _block(b: dict[str, Any], run: Run) -> str:
    kind = b.get("type")
    if kind == "text":
        return f"<pre>{_e(b.get('text', ''))}</pre>"
    if kind == "tool_use":
        ts = run.tool_call(str(b.get("id", "")))
        where = f'<a href="#step-{ts.step}">step {ts.step}</a>' if ts else "no result recorded"
        return f"<div class=use>&rarr; calls <b>{_e(b.get('name', ''))}</b> ({where})</div>"
    if kind == "thinking":
        return f"<details><summary>thinking</summary><pre>{_e(b.get('thinking', ''))}</pre></details>"
    if kind == "tool_result":
        return (f"<details><summary>tool result for {_e(b.get('tool_use_id', ''))}</summary>"
                f"<pre>{_json(b)}</pre></details>")
    return f"<details><summary>{_e(kind)} block</summary><pre>{_json(b)}</pre></details>"


def _message(m: AuditorMessageEvent, run: Run) -> str:
    meta = [m.t]
    if m.model:
        meta.append(m.model)
    if m.usage:
        meta.append(f"in {m.usage.input_tokens} / out {m.usage.output_tokens} tokens"
                    f" (cache read {m.usage.cache_read}, write {m.usage.cache_write})")
    if m.cost_usd:
        meta.append(f"${m.cost_usd:.4f}")
    if m.stop_reason:
        meta.append(f"stop: {m.stop_reason}")
    blocks = "".join(_block(b, run) for b in m.content)
    return (f'<div class="msg {_e(m.role)}"><div class=who>{_e(m.role)} <span class=meta>#{m.seq} · '
            f'{_e(" · ".join(meta))}</span></div>{blocks}</div>')


def _call(ts: ToolStep) -> str:
    cls = "call error" if ts.error else ("call pending" if ts.pending else "call")
    head = f"<b>step {ts.step}</b>: <code>{_e(ts.name)}</code> <span class=meta>id {_e(ts.id)}"
    if ts.result is not None:
        head += f" · {ts.seconds:.2f} s"
    head += "</span>"
    args = f"<pre>{_json(ts.args)}</pre>"
    if ts.pending:
        out = "<p class=meta>no result (pending)</p>"
    else:
        out = ""
        if ts.error:
            out += f"<p class=errtext>error: {_e(ts.error)}</p>"
        if ts.output or not ts.error:
            out += (f"<details{' open' if len(ts.output) < 400 else ''}><summary>output ({len(ts.output)} chars)"
                    f"</summary><pre>{_e(ts.output)}</pre></details>")
    return f'<div class="{cls}" id="step-{ts.step}">{head}{args}{out}</div>'


def _report(r: Report) -> str:
    items = []
    for b in r.behaviours:
        ev = "".join(
            f'<li><a href="#step-{e.step}">step {e.step}</a>: {_e(e.note)}</li>' for e in b.evidence
        )
        items.append(f"<li>{_e(b.description)} <span class=meta>(confidence {b.confidence:.2f})</span>"
                     f"{'<ul>' + ev + '</ul>' if ev else ''}</li>")
    parts = ["<h2>Report</h2>"]
    if r.auditor:
        parts.append(f"<p class=meta>auditor: {_e(r.auditor)}</p>")
    parts.append(f"<h3>Root cause</h3><pre>{_e(r.root_cause)}</pre>")
    parts.append(f"<h3>Behaviours ({len(r.behaviours)})</h3><ol>{''.join(items)}</ol>")
    if r.rejected_hypotheses:
        parts.append("<h3>Rejected hypotheses</h3><ul>" + "".join(f"<li>{_e(h)}</li>" for h in r.rejected_hypotheses)
                     + "</ul>")
    if r.techniques:
        parts.append("<h3>Techniques</h3><ul>" + "".join(f"<li>{_e(t)}</li>" for t in r.techniques) + "</ul>")
    if r.notes:
        parts.append(f"<h3>Notes</h3><pre>{_e(r.notes)}</pre>")
    return "".join(parts)


def _score(s: Score) -> str:
    verdict = '<span class=win>WIN</span>' if s.win else '<span class=loss>LOSS</span>'
    rows = "".join(
        f"<tr><td>{_e(m.claim)}</td><td>{_e(m.behaviour_id)}</td><td>{m.similarity:.3f}</td></tr>" for m in s.matches
    )
    parts = [
        f"<h2>Score</h2><p>{verdict} · root cause {'correct' if s.root_cause_correct else 'wrong'} · "
        f"{s.behaviours_found}/{s.behaviours_total} behaviours · recall {s.recall:.2f} · precision {s.precision:.2f}"
        f" · grader {_e(s.grader)}</p>",
        f"<table><tr><th>claim</th><th>behaviour</th><th>similarity</th></tr>{rows}</table>" if rows else "",
    ]
    if s.unmatched_claims:
        parts.append("<h3>Unmatched claims</h3><ul>" + "".join(f"<li>{_e(c)}</li>" for c in s.unmatched_claims)
                     + "</ul>")
    if s.details:
        parts.append(f"<details><summary>details</summary><pre>{_json(s.details)}</pre></details>")
    return "".join(parts)


def _summary(run: Run) -> list[str]:
    """The lines under the title: where the log is, whether it is damaged, how the run ended, totals, the verdict."""
    parts: list[str] = []
    if run.path:
        parts.append(f"<p class=meta>{_e(run.path)}</p>")
    if run.error:
        parts.append(f"<p class=errtext>transcript damaged: {_e(run.error)}; showing the {len(run.events)} events "
                     "before it</p>")
    t = run.totals
    end = run.end
    status = f"ended: {end.reason}" + (f" ({end.message})" if end and end.message else "") if end else "not ended"
    parts.append(f"<p><b>{_e(status)}</b> · {t.turns} turns · {t.tool_calls} tool calls ({t.tool_errors} errors) · "
                 f"{t.input_tokens} in / {t.output_tokens} out tokens · cache read {t.cache_read} / write "
                 f"{t.cache_write} · ${t.cost_usd:.4f} · {t.wall_seconds:.1f} s</p>")
    if run.score:
        verdict = "WIN" if run.score.win else "LOSS"
        parts.append(f'<p><a href="#score">{verdict}: {run.score.behaviours_found}/{run.score.behaviours_total} '
                     "behaviours</a></p>")
    return parts


def _transcript(run: Run) -> list[str]:
    """The events in order, each auditor turn followed by the tool calls it asked for; notes and run ends inline."""
    parts: list[str] = []
    shown: set[str] = set()
    for ev in run.events:
        if isinstance(ev, AuditorMessageEvent):
            parts.append(_message(ev, run))
            # Show each call right under the turn that asked for it, so a reader follows the auditor's reasoning.
            for b in ev.tool_uses():
                ts = run.tool_call(str(b.get("id", "")))
                if ts is not None and ts.id not in shown:
                    shown.add(ts.id)
                    parts.append(_call(ts))
        elif isinstance(ev, ToolCallEvent) and ev.id not in shown:
            shown.add(ev.id)
            parts.append(_call(run.tool_calls[ev.step]))
        elif isinstance(ev, NoteEvent):
            kind = f"{ev.kind}: " if ev.kind else ""
            parts.append(f"<div class=note><span class=meta>#{ev.seq} note</span> <b>{_e(kind)}</b>"
                         f"<pre>{_e(ev.text)}</pre></div>")
        elif isinstance(ev, RunEndEvent):
            parts.append(f"<div class=note><b>run_end</b>: {_e(ev.reason)} {_e(ev.message)}</div>")
        elif isinstance(ev, ReportEvent | ScoreEvent):
            pass  # shown in full below
    return parts


def render_html(run: Run, title: str | None = None) -> str:
    cfg = run.config
    title = title or (f"Audit of {cfg.target} by {cfg.auditor}" if cfg else "Audit transcript")
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"]
    parts += _summary(run)
    if run.start:
        parts.append(_config(run.start))
    parts.append("<h2>Transcript</h2>")
    parts += _transcript(run)
    pending = run.pending_tool_calls
    if pending:
        parts.append("<h3>Pending tool calls</h3><ul>" + "".join(
            f"<li><code>{_e(p.name)}</code> {_e(p.id)} <pre>{_json(p.args)}</pre></li>" for p in pending) + "</ul>")
    if run.report:
        parts.append(_report(run.report))
    else:
        parts.append("<h2>Report</h2><p class=meta>no report submitted</p>")
    if run.score:
        parts.append(f'<div id="score">{_score(run.score)}</div>')
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["render_html"]
