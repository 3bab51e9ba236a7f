"""The auditor's memory tools: files in the run folder."""

from __future__ import annotations

import json

from tools.memory import NOTES_FILE, PAGE_CHARS, TODO_FILE
from tools.registry import ToolContext, call


def test_notes_append_replace_and_page(tmp_path):
    ctx = ToolContext(target=None, run_dir=tmp_path / "run")
    assert call(ctx, "notes_read", {}).output == "no notes yet"
    assert call(ctx, "notes_write", {"text": "H1: likes chocolate (step 3)"}).ok
    assert call(ctx, "notes_write", {"text": "H2: camelCase"}).ok
    text = call(ctx, "notes_read", {}).output
    assert "H1: likes chocolate (step 3)" in text and text.index("H1") < text.index("H2")
    assert (tmp_path / "run" / NOTES_FILE).read_text().count("H") == 2
    call(ctx, "notes_write", {"text": "only this", "mode": "replace"})
    assert "H1" not in call(ctx, "notes_read", {}).output
    call(ctx, "notes_write", {"text": "y" * (PAGE_CHARS + 500), "mode": "replace"})
    first = call(ctx, "notes_read", {}).output
    assert f"offset={PAGE_CHARS}" in first
    assert "characters 4000-" in call(ctx, "notes_read", {"offset": PAGE_CHARS}).output
    assert "argument 'offset'" in call(ctx, "notes_read", {"offset": 10**6}).error
    assert "argument 'mode'" in call(ctx, "notes_write", {"text": "x", "mode": "prepend"}).error


def test_notes_survive_a_new_context_on_the_same_run(tmp_path):
    call(ToolContext(target=None, run_dir=tmp_path), "notes_write", {"text": "persisted"})
    assert "persisted" in call(ToolContext(target=None, run_dir=tmp_path), "notes_read", {}).output


def test_todo_add_done_list(tmp_path):
    ctx = ToolContext(target=None, run_dir=tmp_path)
    assert call(ctx, "todo", {}).output == "the todo list is empty"
    call(ctx, "todo", {"action": "add", "item": "prefill attack"})
    out = call(ctx, "todo", {"action": "add", "item": "grep 'reward model'"}).output
    assert "1. [ ] prefill attack" in out and "2. [ ] grep 'reward model'" in out
    out = call(ctx, "todo", {"action": "done", "number": 1}).output
    assert "1. [x] prefill attack" in out and "(1 open, 1 done)" in out
    assert json.loads((tmp_path / TODO_FILE).read_text())[0]["done"] is True
    assert "argument 'number'" in call(ctx, "todo", {"action": "done", "number": 9}).error
    assert "argument 'number'" in call(ctx, "todo", {"action": "done"}).error
    assert "argument 'item'" in call(ctx, "todo", {"action": "add"}).error
    assert "argument 'action'" in call(ctx, "todo", {"action": "drop"}).error


def test_memory_without_a_run_folder_is_a_tool_error():
    r = call(ToolContext(target=None), "notes_write", {"text": "x"})
    assert not r.ok and "run folder" in r.error
