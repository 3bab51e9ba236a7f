"""Tools as small typed functions. A tool's first parameter is the ToolContext; the rest become a pydantic argument
model whose JSON schema (descriptions from the docstring's Args section) is what the agent sees. Calling a tool by
name never raises: bad arguments and tool failures come back as a ToolResult with `error` set, in words the agent
can act on."""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

MAX_OUTPUT_CHARS = 6000


class ToolError(Exception):
    """Raised inside a tool for a problem the caller can fix; the message goes back to the agent verbatim."""


@dataclass
class ToolContext:
    """What tools may see: the target, the datasets an auditor may search, the run folder (memory), the SAE.
    Never the spec, the ground truth or the provenance file."""

    target: Any
    datasets: dict[str, Path] = field(default_factory=dict)
    run_dir: Path | None = None
    sae: Any = None
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    name: str
    output: str
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def text(self) -> str:
        return f"ERROR: {self.error}" if self.error else self.output


@dataclass
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    fn: Callable[..., str]
    family: str

    def schema(self) -> dict:
        s = self.args_model.model_json_schema()
        s.pop("title", None)
        return {"name": self.name, "description": self.description, "input_schema": s}


REGISTRY: dict[str, Tool] = {}


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


def tool(family: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register a function `fn(ctx, arg: type = default, ...) -> str` as a tool."""

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
        REGISTRY[fn.__name__] = Tool(fn.__name__, summary, model, fn, family)
        return fn

    return register


def _format_validation(name: str, e: ValidationError) -> str:
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
        parsed = t.args_model.model_validate(args)
    except ValidationError as e:
        return ToolResult(name, "", _format_validation(name, e), time.perf_counter() - t0)
    try:
        out = t.fn(ctx, **parsed.model_dump())
    except ToolError as e:
        return ToolResult(name, "", str(e), time.perf_counter() - t0)
    except Exception as e:  # a tool bug must not end the audit; the agent sees what broke
        return ToolResult(name, "", f"{name} failed: {type(e).__name__}: {e}", time.perf_counter() - t0)
    if len(out) > MAX_OUTPUT_CHARS:
        out = out[:MAX_OUTPUT_CHARS] + f"\n[output cut at {MAX_OUTPUT_CHARS} characters; ask for less or page]"
    return ToolResult(name, out, None, time.perf_counter() - t0)
