"""The auditor's memory: free-form notes and a todo list, kept as files in the run folder so that they survive a
resumed run and are read with the transcript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from tools.registry import ToolContext, ToolError, tool

NOTES_FILE = "notes.md"
TODO_FILE = "todo.json"
MAX_NOTES = 100_000  # characters kept; a notebook past this is not being read anyway
PAGE_CHARS = 4000


def _run_dir(ctx: ToolContext) -> Path:
    if ctx.run_dir is None:
        raise ToolError("memory tools need a run folder, and this context has none (pass --run-dir)")
    d = Path(ctx.run_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@tool("memory", needs=())
def notes_read(ctx: ToolContext, offset: Annotated[int, Field(ge=0)] = 0) -> str:
    """Read your notes (what you wrote with notes_write), a page at a time.

    Args:
        offset: the character to start from, for paging.
    """
    path = _run_dir(ctx) / NOTES_FILE
    text = path.read_text() if path.exists() else ""
    if not text:
        return "no notes yet"
    if offset >= len(text):
        raise ToolError(f"argument 'offset': {offset} is past the end of the notes ({len(text)} characters)")
    end = min(len(text), offset + PAGE_CHARS)
    more = f"\n[continues: call again with offset={end}]" if end < len(text) else ""
    return f"notes, characters {offset}-{end} of {len(text)}:\n{text[offset:end]}{more}"


@tool("memory", needs=())
def notes_write(ctx: ToolContext, text: Annotated[str, Field(min_length=1, max_length=20_000)],
                mode: Literal["append", "replace"] = "append") -> str:
    """Write to your notes: hypotheses, evidence (with step numbers), what to try next.

    Args:
        text: what to write.
        mode: "append" adds to the end of the notes; "replace" overwrites all of them.
    """
    path = _run_dir(ctx) / NOTES_FILE
    old = path.read_text() if path.exists() and mode == "append" else ""
    new = (old.rstrip("\n") + "\n\n" + text if old else text).rstrip("\n") + "\n"
    if len(new) > MAX_NOTES:
        raise ToolError(f"argument 'text': the notes would be {len(new)} characters, over the {MAX_NOTES} limit; "
                        f"condense them with mode='replace'")
    _write(path, new)
    return f"notes saved ({mode}); they are now {len(new)} characters"


@tool("memory", needs=())
def todo(ctx: ToolContext, action: Literal["add", "done", "list"] = "list",
         item: Annotated[str, Field(min_length=1, max_length=500)] | None = None,
         number: Annotated[int, Field(ge=1)] | None = None) -> str:
    """Keep a todo list of things to investigate.

    Args:
        action: "add" a new item, mark item `number` "done", or "list" the items.
        item: the text of the item to add (for add).
        number: the item's number as list shows it (for done).
    """
    path = _run_dir(ctx) / TODO_FILE
    items: list[dict] = json.loads(path.read_text()) if path.exists() else []
    if action == "add":
        if item is None:
            raise ToolError("argument 'item': give the text of the item to add")
        if len(items) >= 200:
            raise ToolError("the todo list is full (200 items); mark some done")
        items.append({"text": item, "done": False})
    elif action == "done":
        if number is None:
            raise ToolError("argument 'number': give the number of the item to mark done")
        if number > len(items):
            raise ToolError(f"argument 'number': there is no item {number}; the list has {len(items)} items")
        items[number - 1]["done"] = True
    if action != "list":
        _write(path, json.dumps(items, indent=1))
    if not items:
        return "the todo list is empty"
    open_n = sum(not i["done"] for i in items)
    lines = [f"todo ({open_n} open, {len(items) - open_n} done):"]
    lines += [f"{k}. [{'x' if i['done'] else ' '}] {i['text']}" for k, i in enumerate(items, 1)]
    return "\n".join(lines)
