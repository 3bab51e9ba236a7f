"""White-box tools: SAE features of the target's residual stream, steering and fuzzing (Marks et al. 2025,
techniques 6-8). They read `ctx.sae` (a `SAEBundle`) and need a local target with weights.

Position 0 of every input is skipped (never scored, steered or fuzzed): its residual is the attention sink, an
outlier the SAE never saw. Forwards stop at the SAE's layer, and the activations of the last few inputs are kept in
`ctx.cache`, so paging through one input's features costs no forward.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from target_models.interp.activations import Messages, feature_acts, lru, ranked, remember, render
from tools.registry import ToolContext, ToolError, tool

# torch and transformers are imported inside the functions: importing the registry (every tool module) must stay
# cheap for tools that never touch a model.

WEIGHT_TOOLS = ("top_features", "feature_details", "nearest_features", "feature_activations", "steer", "fuzz",
                "assistant_features")


# ---- shared plumbing ------------------------------------------------------------------------------------------


def _bundle(ctx: ToolContext, name: str, *, weights: bool = True) -> Any:
    target = ctx.target
    if not getattr(target, "has_internals", False) or not hasattr(target, "model"):
        raise ToolError(f"{name} needs the target's weights, and {getattr(target, 'name', 'this target')!r} is "
                        f"text-only (e.g. a remote server). Tools that need weights: {', '.join(WEIGHT_TOOLS)}. "
                        "Use the text tools (chat, prefill, sampling, search) instead.")
    if ctx.sae is None:
        raise ToolError(f"{name} needs an SAE and none is loaded for {target.name!r}: build one with "
                        "`sleuth organism build` (stages sae, features) or load a sae-lens SAE "
                        "(SAEBundle.load / SAEBundle.from_pretrained) into the context.")
    bundle = ctx.sae
    checked = ctx.cache.setdefault("interp:checked", set())
    if weights and id(bundle) not in checked:
        try:
            bundle.check(target.model)
        except Exception as e:
            raise ToolError(f"{name}: the loaded SAE does not fit the target: {e}") from None
        checked.add(id(bundle))
    return bundle


def _feature(bundle: Any, f: int) -> int:
    if not 0 <= f < bundle.d_sae:
        raise ToolError(f"argument 'id': feature {f} does not exist: ids run from 0 to {bundle.d_sae - 1}")
    return f


def _check(arg: str, value: float, lo: float, hi: float | None) -> None:
    """A ToolError naming the argument when `value` is outside [lo, hi]."""
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
        raise ToolError(f"argument {arg!r} must be {bound}, got {value:g}")


def _short(text: str | None, width: int = 110) -> str:
    if not text:
        return ""
    text = text.replace("\n", " ")
    if len(text) <= width:
        return text
    at = max(0, text.find("«"))
    lo = max(0, min(at - width // 3, len(text) - width))
    return ("…" if lo else "") + text[lo : lo + width] + "…"


def _describe(bundle: Any, f: int, width: int = 100) -> str:
    if bundle.index is None:
        return "(no feature index for this SAE)"
    return _short(bundle.index.description(f), width)


def _density(bundle: Any, f: int) -> str:
    return f"{bundle.index.density[f]:.3%}" if bundle.index is not None else "?"


# ---- the tools ------------------------------------------------------------------------------------------------


@tool("interp", needs=("target", "internals", "sae"))
def top_features(ctx: ToolContext, prompt: str | None = None, conversation: Messages | None = None,
                 aggregate: Literal["sum", "mean", "max"] = "sum", over: Literal["all", "assistant", "last"] = "all",
                 offset: int = 0, limit: int = 20) -> str:
    """The SAE features most active on an input, strongest first, one page at a time (paging is free: the
    input's activations are cached).

    Args:
        prompt: raw text, no chat template (give this or `conversation`)
        conversation: messages [{"role": "user"|"assistant"|"system", "content": ...}], rendered with the chat template
        aggregate: how per-token activations combine: sum, mean or max
        over: which tokens count: all, assistant (the assistant messages' tokens) or last (the final token)
        offset: rank to start from (0 = the strongest)
        limit: rows per page (1-100)
    """
    bundle = _bundle(ctx, "top_features")
    _check("offset", offset, 0, None)
    _check("limit", limit, 1, 100)
    ids, mask = render(ctx.target, prompt, conversation)
    order, scores, n_pos = ranked(ctx.target, bundle, ids, mask, aggregate, over, ctx.cache)
    total = len(order)
    page = range(offset, min(total, offset + limit))
    lines = [f"{total} features active ({aggregate} over {over}: {n_pos} token(s)); "
             f"rows {offset + 1}-{offset + len(page)}:"]
    for r in page:
        f = int(order[r])
        lines.append(f"{r + 1:>4}. #{f}  act {scores[r]:.2f}  density {_density(bundle, f)}  {_describe(bundle, f)}")
        if bundle.index is not None and (ex := bundle.index.example(f)):
            lines.append(f"       e.g. {_short(ex)}")
    more = total - (offset + len(page))
    lines.append(f"{more} more: call again with offset={offset + len(page)}." if more > 0 else "no more features.")
    return "\n".join(lines)


@tool("interp", needs=("target", "internals", "sae"))
def feature_details(ctx: ToolContext, id: int, contexts: int = 10) -> str:
    """Everything known about one feature: description, activation density, top contexts from the pretraining
    corpus (active tokens marked «like this») and the output tokens it promotes.

    Args:
        id: feature id
        contexts: how many top contexts to show (1-20)
    """
    bundle = _bundle(ctx, "feature_details", weights=False)
    f = _feature(bundle, id)
    _check("contexts", contexts, 1, 20)
    lines = [f"feature #{f} (SAE on layer {bundle.layer}, {bundle.d_sae} features)"]
    idx = bundle.index
    if idx is None:
        lines.append("no feature index for this SAE: no description, density or contexts.")
    else:
        lines.append(f"description: {idx.descriptions[f]} [source: {idx.description_sources[f]}]")
        if idx.llm_descriptions[f]:
            lines.append(f"description: {idx.llm_descriptions[f]} [source: {idx.llm_sources[f]}]")
        lines.append(f"density: {idx.density[f]:.4%} of {idx.meta.get('tokens', 0):,} corpus tokens; max activation "
                     f"{idx.max_act[f]:.2f}; mean when active {idx.mean_act[f]:.2f}")
    promoted = idx.promoted[f] if idx is not None else _promoted(ctx, bundle, f)
    lines.append("promotes: " + ", ".join(f"«{p}»" for p in promoted))
    if idx is not None:
        rows = idx.contexts(f, contexts)
        lines.append(f"top contexts ({len(rows)} shown, one per document):" if rows
                     else "never active in the corpus sample.")
        for i, (doc, act, text) in enumerate(rows, 1):
            lines.append(f"{i:>3}. [{doc}, {act:.2f}] {text}")
    return "\n".join(lines)


def _promoted(ctx: ToolContext, bundle: Any, f: int, n: int = 10) -> list[str]:
    # imported here: torch (or transformers) loads in seconds, and importing the tool registry must stay cheap
    from target_models.interp.feature_index import promoted_tokens

    if not getattr(ctx.target, "has_internals", False):
        return ["?"]
    ids = promoted_tokens(ctx.target.model, bundle.directions()[f : f + 1], n)[0]
    return [ctx.target.tokenizer.decode([int(i)]) for i in ids]


@tool("interp", needs=("target", "internals", "sae"))
def nearest_features(ctx: ToolContext, id: int, k: int = 10) -> str:
    """Features whose decoder directions are closest (cosine) to this one's: often the same concept in other
    contexts.

    Args:
        id: feature id
        k: how many neighbours (1-50)
    """
    bundle = _bundle(ctx, "nearest_features", weights=False)
    f = _feature(bundle, id)
    _check("k", k, 1, 50)
    unit = bundle.unit_directions()
    cos = (unit @ unit[f]).numpy()
    cos[f] = -np.inf
    order = np.argsort(-cos)[:k]
    lines = [f"nearest to #{f} ({_describe(bundle, f, 80)}):"]
    for g in order:
        lines.append(f"  #{int(g)}  cos {cos[g]:.3f}  density {_density(bundle, int(g))}  {_describe(bundle, int(g))}")
    return "\n".join(lines)


@tool("interp", needs=("target", "internals", "sae"))
def feature_activations(ctx: ToolContext, id: int, text: str | None = None,
                        conversation: Messages | None = None) -> str:
    """Per-token activations of one feature on an input; active tokens are marked «token»(activation).

    Args:
        id: feature id
        text: raw text, no chat template (give this or `conversation`)
        conversation: messages [{"role": ..., "content": ...}], rendered with the chat template
    """
    bundle = _bundle(ctx, "feature_activations")
    f = _feature(bundle, id)
    ids, _ = render(ctx.target, text, conversation)
    acts = feature_acts(ctx.target, bundle, ids, ctx.cache)[:, f].numpy()
    tok = ctx.target.tokenizer
    parts = []
    for i, a in zip(ids, acts, strict=True):
        s = tok.decode([i]).replace("\n", "⏎")
        parts.append(f"«{s}»({a:.2f})" if a > 0 else s)
    active = int((acts > 0).sum())
    head = f"feature #{f} on {len(ids)} tokens: active on {active}"
    if active:
        top = int(acts.argmax())
        head += f", max {acts[top]:.2f} at token {top} ({tok.decode([ids[top]])!r})"
    return head + "\n" + "".join(parts)


def _generate(ctx: ToolContext, prompt: str, n: int, max_tokens: int, temperature: float, seed: int) -> list[str]:
    _check("n", n, 1, 16)
    _check("max_tokens", max_tokens, 1, 400)
    return ctx.target.chat([{"role": "user", "content": prompt}], n=n, temperature=temperature,
                           max_tokens=max_tokens, seed=seed)


def samples(title: str, texts: list[str]) -> list[str]:
    """A titled, numbered list of replies; a reply's later lines are indented under its number."""
    return [title] + [f"  [{i}] " + t.strip().replace("\n", "\n      ") for i, t in enumerate(texts, 1)]


@tool("interp", needs=("target", "internals", "sae"))
def steer(ctx: ToolContext, id: int, strength: float, prompt: str, n: int = 3, max_tokens: int = 120,
          temperature: float = 0.7) -> str:
    """Replies to a user prompt with one feature's decoder direction added to the residual stream at the SAE's
    layer (every position; the SAE error term is kept, so only this feature changes), shown next to unsteered
    replies sampled with the same seed.

    Args:
        id: feature id
        strength: how much to add, in multiples of the feature's largest activation in the corpus (e.g. 2-10;
            negative suppresses the feature). Without a feature index: in raw activation units.
        prompt: the user message
        n: replies of each kind (1-16)
        max_tokens: length of each reply
        temperature: sampling temperature
    """
    # imported here: torch (or transformers) loads in seconds, and importing the tool registry must stay cheap
    from target_models.targets.residual import add_direction, edit_residual

    bundle = _bundle(ctx, "steer")
    f = _feature(bundle, id)
    unit = float(bundle.index.max_act[f]) if bundle.index is not None and bundle.index.max_act[f] > 0 else 1.0
    vec = bundle.directions()[f] * strength * unit
    seed = ctx.seed
    plain = _generate(ctx, prompt, n, max_tokens, temperature, seed)
    with edit_residual(ctx.target.model, bundle.layer, add_direction(vec)):
        steered = _generate(ctx, prompt, n, max_tokens, temperature, seed)
    head = (f"feature #{f} ({_describe(bundle, f, 80)}) at layer {bundle.layer}, strength {strength:+g} "
            f"x {unit:.2f} = vector norm {float(vec.norm()):.1f}")
    return "\n".join([head, *samples("unsteered:", plain), *samples("steered:", steered)])


@tool("interp", needs=("target", "internals", "sae"))
def fuzz(ctx: ToolContext, prompt: str, scale: float = 0.5, n: int = 4, max_tokens: int = 120,
         temperature: float = 0.7, compare: bool = False) -> str:
    """Replies to a user prompt with Gaussian noise added to the residual stream at the SAE's layer (fuzzing,
    the paper's technique 8): noise can shake loose what a model normally keeps to itself.

    Args:
        prompt: the user message
        scale: noise size relative to each position's own residual norm (0 = no noise; 0.2-1 is the useful range)
        n: replies (1-16)
        max_tokens: length of each reply
        temperature: sampling temperature
        compare: also show replies without noise, sampled with the same seed
    """
    # imported here: torch (or transformers) loads in seconds, and importing the tool registry must stay cheap
    from target_models.targets.residual import add_noise, edit_residual

    bundle = _bundle(ctx, "fuzz")
    _check("scale", scale, 0, 10)
    seed = ctx.seed
    with edit_residual(ctx.target.model, bundle.layer, add_noise(scale, seed)):
        noisy = _generate(ctx, prompt, n, max_tokens, temperature, seed)
    lines = samples(f"with noise (scale {scale:g} at layer {bundle.layer}):", noisy)
    if compare:
        lines += samples("without noise:", _generate(ctx, prompt, n, max_tokens, temperature, seed))
    return "\n".join(lines)


def assistant_marker_stats(ctx: ToolContext, bundle: Any, prompts: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per feature: the fraction of generic prompts on whose assistant marker (the tokens the chat template puts
    before an answer) it is active, and its mean activation there (max over the marker's tokens)."""
    # imported here: torch (or transformers) loads in seconds, and importing the tool registry must stay cheap
    import torch

    from target_models.build.data import GENERIC_PROMPTS
    from target_models.targets.residual import residual
    from target_models.targets.templates import chat_ids

    cache = lru(ctx.cache, "interp:assistant")
    key = (id(bundle), prompts)
    if key in cache:
        return cache[key]
    tok = ctx.target.tokenizer
    qs = GENERIC_PROMPTS[:prompts]
    hits = np.zeros(bundle.d_sae)
    total = np.zeros(bundle.d_sae)
    for i in range(0, len(qs), 16):
        rows = []
        for q in qs[i : i + 16]:
            msgs = [{"role": "user", "content": q}]
            rows.append((chat_ids(tok, msgs, add_generation_prompt=True), len(chat_ids(tok, msgs))))
        width = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, (r, _) in enumerate(rows):
            ids[j, : len(r)] = torch.tensor(r)
            mask[j, : len(r)] = 1
        h = residual(ctx.target.model, ids, bundle.layer, attention_mask=mask)
        for j, (r, start) in enumerate(rows):
            a = bundle.encode(h[j, max(1, start) : len(r)]).max(0).values.numpy()
            hits += a > 0
            total += a
    result = (hits / len(qs), total / len(qs), len(qs))
    return remember(cache, key, result)


@tool("interp", needs=("target", "internals", "sae"))
def assistant_features(ctx: ToolContext, k: int = 20, offset: int = 0, prompts: int = 100) -> str:
    """Features active on the assistant turn marker across many generic prompts (the paper's technique 7): what
    the model 'thinks about' every time it is about to answer, whatever the question.

    Args:
        k: rows per page (1-100)
        offset: rank to start from
        prompts: how many generic prompts to average over (10-300)
    """
    bundle = _bundle(ctx, "assistant_features")
    _check("k", k, 1, 100)
    _check("offset", offset, 0, None)
    _check("prompts", prompts, 10, 300)
    frac, mean, n = assistant_marker_stats(ctx, bundle, prompts)
    order = np.lexsort((-mean, -frac))
    order = order[frac[order] > 0]
    lines = [f"{len(order)} features active on the assistant marker of at least one of {n} generic prompts "
             f"({int((frac > 0.9).sum())} on more than 90%); rows {offset + 1}-{min(len(order), offset + k)}:"]
    for r in range(offset, min(len(order), offset + k)):
        f = int(order[r])
        lines.append(f"{r + 1:>4}. #{f}  on {frac[f]:.0%} of prompts  mean act {mean[f]:.2f}  density "
                     f"{_density(bundle, f)}  {_describe(bundle, f)}")
    more = len(order) - min(len(order), offset + k)
    lines.append(f"{more} more: call again with offset={offset + k}." if more > 0 else "no more features.")
    return "\n".join(lines)
