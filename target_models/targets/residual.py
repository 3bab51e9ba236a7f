"""The residual stream of a transformers causal LM, read and edited with plain forward hooks.

Layer `L` here means the output of decoder block `L` (TransformerLens: `blocks.L.hook_resid_post`), so an SAE
trained with these hooks can also be used from TransformerLens, and a sae-lens SAE trained there can be used here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


class StopForward(Exception):
    """Raised by a capture hook once the wanted layer has run: the layers above it are never computed."""


_PLAIN_HEAD_MODELS = {"llama", "mistral", "qwen2", "qwen3"}  # logits = lm_head(final hidden state), nothing more


def head_split(model: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """(decoder, lm_head) when logits are just lm_head(decoder's last hidden state), so a caller may unembed only
    the positions it needs; None otherwise (use the model's own forward). Sees through a peft wrapper."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(inner.config, "model_type", None) not in _PLAIN_HEAD_MODELS:
        return None
    head = inner.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None or head._forward_hooks or head._forward_pre_hooks:
        return None
    return inner.base_model, head


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks, for the architectures transformers names consistently."""
    for path in ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers",
                 "model.decoder.layers"):
        obj: object = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}; supported: Llama-, Qwen-, Mistral-, "
                     "Gemma-, GPT-2- and GPT-NeoX-style models")


def n_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def hook_name(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def layer_from_hook_name(name: str) -> int:
    """Which block output a sae-lens hook name reads. `resid_pre` of block L is the output of block L-1."""
    m = (re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", name or "")
         or re.fullmatch(r"model\.layers\.(\d+)()", name or ""))
    if not m:
        raise ValueError(f"SAE hook {name!r} is not a residual-stream hook (blocks.N.hook_resid_post / _pre)")
    layer = int(m.group(1))
    if m.group(2) == "pre":
        if layer == 0:
            raise ValueError("blocks.0.hook_resid_pre (the embeddings) is not supported")
        layer -= 1
    return layer


def _hidden(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # some architectures return (hidden, ...)


def _replace(output: object, hidden: torch.Tensor) -> object:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@torch.inference_mode()
def residual(model: nn.Module, input_ids: torch.Tensor, layer: int,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The residual stream after block `layer`, [batch, seq, d_model]; the blocks above are skipped."""
    got: list[torch.Tensor] = []

    def grab(_m: nn.Module, _i: object, out: object) -> None:
        got.append(_hidden(out))
        raise StopForward

    handle = decoder_layers(model)[layer].register_forward_hook(grab)
    try:
        base = getattr(model, "model", None)
        # The base model (no LM head) is enough; calling it avoids building logits for a forward that stops early.
        runner = base if isinstance(base, nn.Module) and hasattr(base, "layers") else model
        runner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except StopForward:
        pass
    finally:
        handle.remove()
    if not got:
        raise RuntimeError(f"layer {layer} did not run")
    return got[0].float()


Edit = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def edit_residual(model: nn.Module, layer: int, edit: Edit, *, skip_first: bool = True) -> Iterator[None]:
    """Within the block, every forward (prompt and each sampled token) has block `layer`'s output replaced by
    `edit(hidden)`. With `skip_first`, position 0 of a multi-token forward keeps its residual: it is the attention
    sink, which the SAE never saw and an edit there only breaks the model (prompts must not be left-padded)."""

    def hook(_m: nn.Module, _i: object, out: object) -> object:
        h = _hidden(out)
        if skip_first and h.shape[1] > 1:
            new = h.clone()
            new[:, 1:] = edit(h[:, 1:]).to(h.dtype)
            return _replace(out, new)
        return _replace(out, edit(h).to(h.dtype))

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def add_direction(direction: torch.Tensor) -> Edit:
    """Steering: the same vector added at every position."""
    return lambda h: h + direction.to(h.dtype)


def add_noise(scale: float, seed: int) -> Edit:
    """Fuzzing: fresh Gaussian noise at every position, with a standard deviation of `scale` times the
    position's own RMS, so that one scale means the same thing at every layer and in every model. The noise has
    its own generator: sampling randomness is unchanged, and scale 0 is exactly the unfuzzed model."""
    gen = torch.Generator().manual_seed(seed)

    def edit(h: torch.Tensor) -> torch.Tensor:
        if scale == 0:
            return h
        rms = h.float().pow(2).mean(-1, keepdim=True).sqrt()
        noise = torch.randn(h.shape, generator=gen, dtype=torch.float32)
        return h + (noise * rms * scale).to(h.dtype)

    return edit
