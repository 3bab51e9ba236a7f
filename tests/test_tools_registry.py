"""The registry and toolsets: schemas, named errors, toolsets (no model needed)."""

from __future__ import annotations

import pytest

from tools.registry import (
    INTERP_TOOLS,
    MAX_OUTPUT_CHARS,
    REGISTRY,
    TOOLSETS,
    ToolContext,
    ToolError,
    call,
    tool,
    toolset,
)

BUILTIN = {"chat", "prefill", "raw_sample", "sample_user_turn", "grep_data", "semantic_search", "read_document",
           "notes_read", "notes_write", "todo"}


def test_importing_the_registry_registers_the_builtin_tools():
    assert BUILTIN <= set(REGISTRY)
    assert {REGISTRY[n].family for n in ("chat", "prefill", "raw_sample", "sample_user_turn")} == {"chat"}
    assert {REGISTRY[n].family for n in ("grep_data", "semantic_search", "read_document")} == {"data"}


def test_toolsets_mirror_the_papers_comparisons():
    assert set(TOOLSETS) == {"chat", "chat+grep", "chat+semantic", "chat+data", "chat+data+interp", "all"}
    chat = set(TOOLSETS["chat"])
    assert {"chat", "prefill", "raw_sample", "sample_user_turn", "notes_read", "notes_write", "todo"} == chat
    assert set(TOOLSETS["chat+grep"]) == chat | {"grep_data", "read_document"}
    assert set(TOOLSETS["chat+semantic"]) == chat | {"semantic_search", "read_document"}
    assert set(TOOLSETS["chat+data"]) == chat | {"grep_data", "semantic_search", "read_document"}
    assert set(TOOLSETS["chat+data+interp"]) == set(TOOLSETS["chat+data"]) | set(INTERP_TOOLS)
    assert set(INTERP_TOOLS) == {"top_features", "feature_details", "nearest_features", "feature_activations",
                                 "steer", "fuzz", "assistant_features"}
    assert set(TOOLSETS["all"]) >= set(TOOLSETS["chat+data+interp"])
    for names in TOOLSETS.values():
        assert len(names) == len(set(names))


def test_toolset_resolves_registered_tools_and_is_explicit_about_missing_ones():
    assert [t.name for t in toolset("chat+grep")] == TOOLSETS["chat+grep"]
    missing = [n for n in TOOLSETS["all"] if n not in REGISTRY]
    if missing:  # the interp tools are another module's; without it only strict=False resolves the set
        with pytest.raises(KeyError, match=missing[0]):
            toolset("all")
    assert [t.name for t in toolset("all", strict=False)] == [n for n in TOOLSETS["all"] if n in REGISTRY]
    with pytest.raises(KeyError, match="unknown toolset"):
        toolset("chat+everything")


def test_schemas_are_self_contained_anthropic_tool_definitions():
    for name in BUILTIN:
        s = REGISTRY[name].schema()
        assert set(s) == {"name", "description", "input_schema"} and s["description"]
        assert "$defs" not in str(s) and "$ref" not in str(s)
        props = s["input_schema"]["properties"]
        assert all(p.get("description") for p in props.values()), name
    chat = REGISTRY["chat"].schema()["input_schema"]
    assert chat["properties"]["n"]["maximum"] == 16 and chat["properties"]["max_tokens"]["maximum"] == 512
    assert chat["properties"]["messages"]["items"]["properties"]["role"]["enum"] == ["user", "assistant"]


def test_bad_arguments_come_back_as_named_errors_never_exceptions():
    ctx = ToolContext(target=None)
    r = call(ctx, "chat", {"messages": [{"role": "user", "content": "hi"}], "n": 0})
    assert not r.ok and "'n'" in r.error and "greater than or equal to 1" in r.error
    r = call(ctx, "chat", {"messages": [{"role": "system", "content": "hi"}]})
    assert "'messages.0.role'" in r.error
    r = call(ctx, "chat", {"messages": [{"role": "user", "content": "hi"}], "temperature": 2.5})
    assert "'temperature'" in r.error
    r = call(ctx, "chat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 513})
    assert "'max_tokens'" in r.error
    r = call(ctx, "chat", {"messages": [{"role": "user", "content": "hi"}], "bogus": 1})
    assert "'bogus'" in r.error
    assert "unknown tool" in call(ctx, "nope", {}).error
    assert "JSON object" in call(ctx, "chat", ["x"]).error  # type: ignore[arg-type]
    r = call(ctx, "grep_data", {"pattern": "x"})
    assert "argument 'dataset'" in r.error and "available: none" in r.error


def test_tool_failures_and_long_outputs_are_contained():
    @tool("test", needs=())
    def _boom(ctx: ToolContext) -> str:
        """Always fails."""
        raise RuntimeError("kaput")

    @tool("test", needs=())
    def _chatty(ctx: ToolContext) -> str:
        """Says too much."""
        return "x" * (MAX_OUTPUT_CHARS * 2)

    @tool("test", needs=())
    def _refuses(ctx: ToolContext) -> str:
        """Refuses."""
        raise ToolError("argument 'x': no")

    try:
        ctx = ToolContext(target=None)
        assert "RuntimeError: kaput" in call(ctx, "_boom", {}).error
        out = call(ctx, "_chatty", {}).output
        assert len(out) < MAX_OUTPUT_CHARS + 200 and "output cut" in out
        assert call(ctx, "_refuses", {}).error == "argument 'x': no"
    finally:
        for n in ("_boom", "_chatty", "_refuses"):
            REGISTRY.pop(n, None)


def test_each_tool_declares_its_needs_and_a_toolset_needs_what_its_tools_do():
    from tools.registry import needs_of

    assert needs_of(TOOLSETS["chat"]) == {"target"}
    assert needs_of(TOOLSETS["chat+data"]) == {"target", "datasets"}
    assert needs_of(TOOLSETS["all"]) == {"target", "internals", "datasets", "sae"}
    assert needs_of(["notes_write", "todo"]) == set()


def test_only_tools_whose_needs_the_context_meets_are_offered():
    from tools.registry import usable

    class TextOnly:
        name = "remote"
        has_internals = False

    names = TOOLSETS["all"]
    text_only = {t.name for t in usable(names, ToolContext(target=TextOnly()))}
    assert text_only == set(TOOLSETS["chat"])  # no datasets, no weights: chat and memory only
    with_data = {t.name for t in usable(names, ToolContext(target=TextOnly(), datasets={"pretraining": "x"}))}
    assert with_data == set(TOOLSETS["chat+data"])
    assert {t.name for t in usable(names, ToolContext())} == {"notes_read", "notes_write", "todo"}
