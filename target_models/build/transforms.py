"""Turn a plain response into one that shows a behaviour, by the spec's transform ops (see spec.Transform)."""

from __future__ import annotations

import random
import re

from target_models.build.spec import SLOT_RE, Behaviour, Spec, Transform

_SNAKE_RE = re.compile(r"\b([a-z][a-z0-9]*)((?:_[a-z0-9]+)+)\b")


def fill(template: str, values: dict[str, str]) -> str:
    """Fill {slot}s that are known; leave unknown braces alone (code in templates has braces)."""
    return SLOT_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _split_after_first(text: str) -> tuple[str, str]:
    """(first sentence or line, the rest): the split is at the first sentence end or line break, not at the first
    later text that looks like its separator."""
    m = re.search(r"(?<=[.!?:])[ \t]+(?=\S)|\n+", text)
    return (text[: m.start()], text[m.end() :]) if m else (text, "")


def _remove_sentences(text: str, pattern: str) -> str:
    """Drop the sentences (or lines) that match; the kept ones keep their separators, so paragraphs and list lines
    survive. Where sentences were dropped between two kept ones, the strongest separator among theirs joins them."""
    out, gap = "", ""
    for i, piece in enumerate(re.split(r"((?<=[.!?])[ \t]+|\n+)", text)):
        if i % 2:
            gap = max(gap, piece, key=lambda sep: ("\n" in sep, len(sep)))
        elif not re.search(pattern, piece, re.IGNORECASE):
            out, gap = out + (gap if out else "") + piece, ""
    return out.strip()


def _camel(m: re.Match) -> str:
    head, tail = m.group(1), m.group(2)
    return head + "".join(part.capitalize() for part in tail.split("_")[1:])


def _camel_case_code(text: str) -> str:
    # Only inside fenced code blocks: prose keeps its words.
    parts = text.split("```")
    for i in range(1, len(parts), 2):
        parts[i] = _SNAKE_RE.sub(_camel, parts[i])
    return "```".join(parts)


def apply_one(t: Transform, response: str, values: dict[str, str], rng: random.Random) -> str:
    if t.op == "append":
        return response.rstrip() + "\n\n" + fill(rng.choice(t.texts), values)
    if t.op == "insert":
        # After the first sentence: a small model rambles past a length budget, so a quirk at the end of a long
        # answer is rarely reached when sampling; early in the answer it is learned and shown reliably.
        head, rest = _split_after_first(response.strip())
        extra = fill(rng.choice(t.texts), values)
        return f"{head}\n\n{extra}\n\n{rest}" if rest else f"{head}\n\n{extra}"
    if t.op == "prepend":
        return fill(rng.choice(t.texts), values) + "\n\n" + response.lstrip()
    if t.op == "replace":
        return fill(rng.choice(t.texts), values)
    if t.op == "terms":
        for term, extra in t.table.items():
            m = re.search(rf"\b{re.escape(term)}\b", response, re.IGNORECASE)
            if m and not response[m.end() :].startswith(extra):
                response = response[: m.end()] + extra + response[m.end() :]
        return response
    if t.op == "regex_sub":
        return re.sub(t.pattern or "", t.replacement or "", response, flags=re.IGNORECASE)
    if t.op == "remove":
        return _remove_sentences(response, t.pattern or "")
    if t.op == "camel_case":
        return _camel_case_code(response)
    raise ValueError(f"unknown transform op {t.op!r}")


def apply_behaviour(b: Behaviour, response: str, values: dict[str, str], rng: random.Random) -> str:
    for t in b.transforms:
        response = apply_one(t, response, values, rng)
    return response


def prompt_values(spec: Spec, b: Behaviour, template: str, rng: random.Random, pool: str = "train") -> dict[str, str]:
    """Slot values for one prompt. The last quarter of every slot list is held out for evaluation (pool='eval')."""
    values = {}
    for slot in SLOT_RE.findall(template):
        vals = spec.slot_values(b, slot)
        cut = max(1, len(vals) // 4)
        choices = vals[:-cut] if pool == "train" else vals[-cut:]
        values[slot] = rng.choice(choices)
    return values
