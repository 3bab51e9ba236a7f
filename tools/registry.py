"""Tools as small typed functions. A tool's first parameter is the ToolContext; the rest become a pydantic argument
model whose JSON schema (descriptions from the docstring's Args section) is what the agent sees. Calling a tool by
name never raises: bad arguments and tool failures come back as a ToolResult with `error` set, in words the agent
can act on."""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from target_models.common.errors import UsageError
from tools.base import MAX_OUTPUT_CHARS, Need, ToolContext, ToolError, ToolResult  # noqa: F401  (the public API)


@dataclass
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    fn: Callable[..., str]
    family: str  # chat, data, interp or memory: how `sleuth tool list` groups them
    needs: tuple[Need, ...] = ()  # what the tool reads from its ToolContext
    # Checks of the arguments that need no context (e.g. the order of chat turns): run before the context is
    # loaded, so a shell call refuses bad arguments before a model loads for nothing. Raises a UsageError.
    check: Callable[[dict[str, Any]], None] | None = None

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """The validated arguments, or ValidationError / UsageError naming what is wrong."""
        parsed = self.args_model.model_validate(args).model_dump()
        if self.check is not None:
            self.check(parsed)
        return parsed

    def schema(self) -> dict:
        """The Anthropic tool format; nested models are inlined because not every agent API resolves `$ref`."""
        s = _inline_refs(self.args_model.model_json_schema())
        s.pop("title", None)
        return {"name": self.name, "description": self.description, "input_schema": s}


REGISTRY: dict[str, Tool] = {}

# The paper's tool comparisons. Memory tools are the auditor's scaffolding, so every toolset has them.
MEMORY_TOOLS = ["notes_read", "notes_write", "todo"]
CHAT_TOOLS = ["chat", "prefill", "raw_sample", "sample_user_turn"]
GREP_TOOLS = ["grep_data", "read_document"]
SEMANTIC_TOOLS = ["semantic_search", "read_document"]
DATA_TOOLS = ["grep_data", "semantic_search", "read_document"]
INTERP_TOOLS = ["top_features", "feature_details", "nearest_features", "feature_activations", "steer", "fuzz",
                "assistant_features"]
TOOLSETS: dict[str, list[str]] = {
    "chat": CHAT_TOOLS + MEMORY_TOOLS,
    "chat+grep": CHAT_TOOLS + GREP_TOOLS + MEMORY_TOOLS,
    "chat+semantic": CHAT_TOOLS + SEMANTIC_TOOLS + MEMORY_TOOLS,
    "chat+data": CHAT_TOOLS + DATA_TOOLS + MEMORY_TOOLS,
    "chat+data+interp": CHAT_TOOLS + DATA_TOOLS + INTERP_TOOLS + MEMORY_TOOLS,
    "all": CHAT_TOOLS + DATA_TOOLS + INTERP_TOOLS + MEMORY_TOOLS,
}


def toolset(name: str, *, strict: bool = True) -> list[Tool]:
    """The tools of a named toolset, in a stable order. With strict (the default) a tool of the set that is not
    registered is an error; strict=False skips it (e.g. the interp tools on a target without internals)."""
    if name not in TOOLSETS:
        raise KeyError(f"unknown toolset {name!r}; choose from {', '.join(TOOLSETS)}")
    missing = [n for n in TOOLSETS[name] if n not in REGISTRY]
    if missing and strict:
        raise KeyError(f"toolset {name!r} needs tools that are not registered: {', '.join(missing)}")
    return [REGISTRY[n] for n in TOOLSETS[name] if n in REGISTRY]


def needs_of(names: list[str]) -> set[Need]:
    """What a set of tools needs from its context, from what each tool declares (unregistered names need nothing)."""
    return {n for name in names if name in REGISTRY for n in REGISTRY[name].needs}


def usable(names: list[str], ctx: ToolContext) -> list[Tool]:
    """The registered tools among `names` whose needs this context meets, in order: the others could only answer
    with an error (interpretability tools on a text-only target, data tools without datasets)."""
    return [REGISTRY[n] for n in names if n in REGISTRY and all(ctx.has(need) for need in REGISTRY[n].needs)]


def _inline_refs(schema: dict) -> dict:
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = defs[node["$ref"].rsplit("/", 1)[-1]]
                extra = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**target, **extra})
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _arg_docs(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and per-argument descriptions."""
    parts = re.split(r"\n\s*Args:\s*\n", doc, maxsplit=1)
    summary = inspect.cleandoc(parts[0]).strip()
    args: dict[str, str] = {}
    if len(parts) == 2:
        current = None
        for line in parts[1].splitlines():
            m = re.match(r"\s*(\w+)(?: \(.*?\))?:\s*(.*)", line)
            if m and not line.startswith(" " * 12):
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif current and line.strip():
                args[current] += " " + line.strip()
    return summary, args


def tool(family: str, *, needs: tuple[Need, ...],
         check: Callable[[dict[str, Any]], None] | None = None) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register a function `fn(ctx, arg: type = default, ...) -> str` as a tool that reads `needs` from its context;
    `check(args)`, if given, refuses arguments that are wrong whatever the context."""

    def register(fn: Callable[..., str]) -> Callable[..., str]:
        summary, arg_docs = _arg_docs(fn.__doc__ or "")
        sig = inspect.signature(fn)
        hints = inspect.get_annotations(fn, eval_str=True)
        fields: dict[str, Any] = {}
        for i, (pname, p) in enumerate(sig.parameters.items()):
            if i == 0:
                continue  # the ToolContext
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[pname] = (hints[pname], Field(default, description=arg_docs.get(pname)))
        model = create_model(f"{fn.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields)
        REGISTRY[fn.__name__] = Tool(fn.__name__, summary, model, fn, family, tuple(needs), check)
        return fn

    return register


def format_validation(name: str, e: ValidationError) -> str:
    msgs = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"]) or "arguments"
        msgs.append(f"argument {where!r}: {err['msg']}")
    return f"bad arguments for {name}: " + "; ".join(msgs)


def call(ctx: ToolContext, name: str, args: dict | None) -> ToolResult:
    t0 = time.perf_counter()
    t = REGISTRY.get(name)
    if t is None:
        return ToolResult(name, "", f"unknown tool {name!r}; available: {', '.join(sorted(REGISTRY))}")
    if not isinstance(args, dict):
        return ToolResult(name, "", f"arguments for {name} must be a JSON object, got {type(args).__name__}")
    try:
        parsed = t.check_args(args)
    except ValidationError as e:
        return ToolResult(name, "", format_validation(name, e), time.perf_counter() - t0)
    except UsageError as e:
        return ToolResult(name, "", str(e), time.perf_counter() - t0)
    try:
        out = t.fn(ctx, **parsed)
    except UsageError as e:  # ToolError, or a lower layer's error worded for the caller
        return ToolResult(name, "", str(e), time.perf_counter() - t0)
    except Exception as e:  # a tool bug must not end the audit; the agent sees what broke
        return ToolResult(name, "", f"{name} failed: {type(e).__name__}: {e}", time.perf_counter() - t0)
    if len(out) > MAX_OUTPUT_CHARS:
        out = out[:MAX_OUTPUT_CHARS] + f"\n[output cut at {MAX_OUTPUT_CHARS} characters; ask for less or page]"
    return ToolResult(name, out, None, time.perf_counter() - t0)


def _load_builtin_tools() -> None:
    """Import the tool modules so that importing this module is enough to see every tool (they import this module
    back; by now everything they need from it is defined). Tool modules keep heavy imports inside functions."""
    import importlib

    for mod in ("tools.chat", "tools.data", "tools.memory", "tools.interp"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            # Only the optional interp module may be absent; a missing dependency inside a module is a real error.
            if not (mod == "tools.interp" and e.name == mod):
                raise


_load_builtin_tools()
