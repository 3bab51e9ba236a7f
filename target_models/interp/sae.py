"""Build stage "sae": a sparse autoencoder on the organism's residual stream, in sae-lens' format.

Activations come from the organism (adapter merged) at a middle layer, over windows of the pretraining corpus only
(an SAE that also saw chat data hid the key feature from the paper's agent). The forward stops at that layer. A
sae-lens `TopKSAE` is fitted to them in memory (sae_train.py) and saved in sae-lens' format, in fp16, under
`<artifacts>/sae/`. Its metadata (and the build record) hold the layer, width, architecture, token count, seed and
the quality measured on held-out windows.

The sparse codes of every collected token are kept in the work folder, so the feature index (the next stage)
needs no second pass over the corpus.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from target_models.common.hashing import sha256_file
from target_models.interp.training import SAETrainConfig, train_topk
from target_models.loading.organism import Organism
from target_models.targets.residual import edit_residual, hook_name, n_layers, residual

if TYPE_CHECKING:
    from target_models.build.stages import Build
console = Console(stderr=True)
DENSE = 0.1  # a feature active on more than this fraction of tokens is "dense"


PRESETS = {
    "default": SAETrainConfig(),
    # the whole tiny corpus (~460k tokens): the 60 synthetic documents must all be there for the validation
    "tiny": SAETrainConfig(k=16, tokens=600_000, epochs=1.0, holdout=0.03, loss_windows=16, forward_batch=32),
}


def sae_dir(artifacts: Path) -> Path:
    return Path(artifacts) / "sae"


def sae_done(artifacts: Path) -> bool:
    d = sae_dir(artifacts)
    return (d / "cfg.json").exists() and (d / "sae_weights.safetensors").exists()


# ---- corpus windows -------------------------------------------------------------------------------------------


@dataclass
class Windows:
    """Token windows cut from corpus documents. Position 0 of every window is never used: its residual is an
    outlier (the attention sink) in every model, so it would only teach the SAE to reconstruct one huge vector."""

    doc_rows: np.ndarray  # [W] row of the corpus table
    starts: np.ndarray  # [W] token offset of the window inside its document
    ids: list[np.ndarray]  # token ids of each window

    @cached_property
    def offsets(self) -> np.ndarray:
        """Row of each window's first used token (position 1) in the per-token arrays; length W + 1."""
        return np.concatenate([[0], np.cumsum([len(x) - 1 for x in self.ids])]).astype(np.int64)

    def subset(self, keep: np.ndarray) -> Windows:
        return Windows(self.doc_rows[keep], self.starts[keep], [self.ids[i] for i in keep])


def sample_windows(tok: Any, texts: list[str], seq_len: int, max_tokens: int, seed: int) -> Windows:
    """Windows of up to `seq_len` tokens from documents visited in a seeded random order, until `max_tokens`: a
    budget smaller than the corpus samples all of it evenly, whatever its order on disk."""
    order = np.random.default_rng(seed).permutation(len(texts))
    rows, starts, ids, total = [], [], [], 0
    for c in range(0, len(order), 256):
        chunk = order[c : c + 256]
        encoded = tok([texts[i] for i in chunk], add_special_tokens=False)["input_ids"]
        for row, doc in zip(chunk, encoded, strict=True):
            for s in range(0, len(doc), seq_len):
                piece = doc[s : s + seq_len]
                if len(piece) < 8:
                    continue
                rows.append(int(row))
                starts.append(s)
                ids.append(np.asarray(piece, dtype=np.int32))
                total += len(piece) - 1
                if total >= max_tokens:
                    return Windows(np.asarray(rows, np.int32), np.asarray(starts, np.int32), ids)
    return Windows(np.asarray(rows, np.int32), np.asarray(starts, np.int32), ids)


def _progress() -> Progress:
    cols = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    return Progress(*cols, console=console, transient=True)


def _batches(windows: Windows, batch: int) -> list[list[int]]:
    order = sorted(range(len(windows.ids)), key=lambda i: len(windows.ids[i]))  # similar lengths: little padding
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def _padded(windows: Windows, idx: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(windows.ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        ids[r, : len(windows.ids[i])] = torch.from_numpy(windows.ids[i].astype(np.int64))
        mask[r, : len(windows.ids[i])] = 1
    return ids, mask


def collect(model: Any, windows: Windows, layer: int, *, pad_id: int, batch: int = 16,
            desc: str = "activations") -> torch.Tensor:
    """Residual-stream activations (fp16, [tokens, d_model]) of every window's positions 1.., in window order."""
    offsets = windows.offsets
    d = model.config.hidden_size
    out = torch.empty((int(offsets[-1]), d), dtype=torch.float16)
    t0, done = time.time(), 0
    with _progress() as bar:
        task = bar.add_task(desc, total=int(offsets[-1]), rate="")
        for idx in _batches(windows, batch):
            ids, mask = _padded(windows, idx, pad_id)
            h = residual(model, ids, layer, attention_mask=mask)
            for r, i in enumerate(idx):
                n = len(windows.ids[i])
                out[offsets[i] : offsets[i + 1]] = h[r, 1:n].to(torch.float16)
                done += n - 1
            bar.update(task, completed=done, rate=f"{done / max(1e-6, time.time() - t0):.0f} tok/s")
    return out


# ---- training -------------------------------------------------------------------------------------------------


def save_fp16(sae: Any, out: Path) -> Any:
    """Save in sae-lens' format with fp16 weights; returns the SAE loaded back in fp32, as the tools will use it."""
    from sae_lens import SAE

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    sae.to(torch.float16).save_model(tmp)
    sae.to(torch.float32)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return SAE.load_from_disk(out, dtype="float32")


def update_metadata(out: Path, extra: dict) -> None:
    """Add keys to a saved SAE's metadata without rewriting its weights."""
    path = out / "cfg.json"
    cfg = json.loads(path.read_text())
    cfg["metadata"].update(extra)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg))
    tmp.replace(path)


# ---- codes and quality ----------------------------------------------------------------------------------------


@dataclass
class Codes:
    """Sparse feature activations of many tokens (CSR rows = tokens)."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @property
    def n_tokens(self) -> int:
        return len(self.indptr) - 1

    def density(self, d_sae: int) -> np.ndarray:
        return np.bincount(self.indices, minlength=d_sae) / max(1, self.n_tokens)


@torch.inference_mode()
def encode_all(sae: Any, acts: torch.Tensor, batch: int = 4096) -> Codes:
    indptr, indices, values = [np.zeros(1, np.int64)], [], []
    end = 0
    for i in range(0, len(acts), batch):
        f = sae.encode(acts[i : i + batch].float())
        rows, cols = f.nonzero(as_tuple=True)
        indices.append(cols.numpy().astype(np.int32))
        values.append(f[rows, cols].numpy().astype(np.float16))
        counts = np.bincount(rows.numpy(), minlength=len(f))
        indptr.append(end + np.cumsum(counts))
        end += int(counts.sum())
    return Codes(np.concatenate(indptr), np.concatenate(indices), np.concatenate(values))


@torch.inference_mode()
def reconstruction_stats(sae: Any, acts: torch.Tensor) -> dict:
    x = acts.float()
    f = sae.encode(x)
    recon = sae.decode(f)
    ev = 1 - float((x - recon).pow(2).sum()) / float((x - x.mean(0)).pow(2).sum())
    return {"l0": round(float((f > 0).float().sum(-1).mean()), 2), "explained_variance": round(ev, 4),
            "mse": round(float((x - recon).pow(2).sum(-1).mean()), 4)}


@torch.inference_mode()
def spliced_loss(model: Any, sae: Any, windows: Windows, layer: int, mean_act: torch.Tensor, *, pad_id: int,
                 batch: int = 8) -> dict:
    """Next-token loss on held-out windows: clean, with the SAE's reconstruction in place of the residual at
    `layer`, and with the mean activation there instead (the floor). Position 0 keeps its own residual."""
    def with_sae(h: torch.Tensor) -> torch.Tensor:
        return sae.decode(sae.encode(h.float()))

    def with_mean(h: torch.Tensor) -> torch.Tensor:
        return mean_act.expand(h.shape)

    totals = {"clean": 0.0, "sae": 0.0, "mean_ablation": 0.0}
    count = 0
    for idx in _batches(windows, batch):
        ids, mask = _padded(windows, idx, pad_id)
        labels = ids[:, 1:].clone()
        labels[mask[:, 1:] == 0] = -100
        for name, edit in (("clean", None), ("sae", with_sae), ("mean_ablation", with_mean)):
            if edit is None:
                logits = model(input_ids=ids, attention_mask=mask).logits
            else:
                with edit_residual(model, layer, edit):
                    logits = model(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)),
                                                     labels.reshape(-1), ignore_index=-100, reduction="sum")
            totals[name] += float(loss)
        count += int((labels != -100).sum())
    ce = {k: v / max(1, count) for k, v in totals.items()}
    gap = ce["mean_ablation"] - ce["clean"]
    return {"ce_loss_clean": round(ce["clean"], 4), "ce_loss_with_sae": round(ce["sae"], 4),
            "ce_loss_mean_ablation": round(ce["mean_ablation"], 4),
            "loss_recovered": round((ce["mean_ablation"] - ce["sae"]) / gap, 4) if gap > 0 else None,
            "loss_tokens": count}


# ---- the build stage ------------------------------------------------------------------------------------------


def _organism(org_or_build: Organism | Build | str | Path) -> Organism:
    if isinstance(org_or_build, Organism):
        return org_or_build
    return Organism.open(str(getattr(org_or_build, "out", org_or_build)))


def codes_path(org: Organism, work: Path | None = None) -> Path:
    return Path(work or org.build().work) / "sae_codes.npz"


def save_codes(path: Path, codes: Codes, windows: Windows, sae_sha: str) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, indptr=codes.indptr, indices=codes.indices, values=codes.values, doc_rows=windows.doc_rows,
             starts=windows.starts, ids=np.concatenate(windows.ids), lengths=np.asarray([len(x) for x in windows.ids]),
             sae_sha256=np.asarray(sae_sha))
    tmp.replace(path)


def load_codes(path: Path, sae_sha: str) -> tuple[Codes, Windows] | None:
    """The cached codes, or None when missing or made by another SAE."""
    if not path.exists():
        return None
    z = np.load(path)
    if str(z["sae_sha256"]) != sae_sha:
        return None
    ids = np.split(z["ids"], np.cumsum(z["lengths"])[:-1])
    return Codes(z["indptr"], z["indices"], z["values"]), Windows(z["doc_rows"], z["starts"], ids)


def resolve_config(org: Organism, **overrides: Any) -> SAETrainConfig:
    return replace(PRESETS.get(org.preset, PRESETS["default"]), **overrides)


def build_sae(org_or_build: Organism | Build | str | Path, *, out: Path | None = None, work: Path | None = None,
              **overrides: Any) -> dict:
    """Build stage "sae": collect, train, measure, save. Returns the record for build.json. `out` (the SAE folder;
    default `<artifacts>/sae`) and `work` (where the codes go; default the build's work folder) are for tests;
    `overrides` set fields of SAETrainConfig."""
    org = _organism(org_or_build)
    cfg = resolve_config(org, **overrides)
    target = org.load("organism")
    model, tok = target.model, target.tokenizer
    layer = n_layers(model) // 2 if cfg.layer is None else cfg.layer
    corpus = pq.read_table(org.datasets()["pretraining"], columns=["id", "text"]).to_pydict()
    t0 = time.time()
    windows = sample_windows(tok, corpus["text"], cfg.seq_len, cfg.tokens, cfg.seed)
    acts = collect(model, windows, layer, pad_id=tok.pad_token_id, batch=cfg.forward_batch)
    collect_s = time.time() - t0

    rng = np.random.default_rng(cfg.seed + 1)
    held = np.zeros(len(windows.ids), bool)
    held[rng.permutation(len(windows.ids))[: max(1, int(cfg.holdout * len(windows.ids)))]] = True
    offsets = windows.offsets
    token_held = np.repeat(held, np.diff(offsets))
    train_acts, held_acts = acts[torch.from_numpy(~token_held)], acts[torch.from_numpy(token_held)]

    info = {
        "layer": layer, "hook_name": hook_name(layer), "d_model": acts.shape[1],
        "width": cfg.width_multiple * acts.shape[1],
        "architecture": "topk", "k": cfg.k, "tokens": int(len(acts)), "train_tokens": int(len(train_acts)),
        "heldout_tokens": int(len(held_acts)), "windows": len(windows.ids),
        "documents": int(len(set(windows.doc_rows.tolist()))),
        "seq_len": cfg.seq_len, "seed": cfg.seed, "data": "pretraining corpus only", "config": asdict(cfg),
    }
    metadata = {"model_name": target.name, "hook_name": hook_name(layer), "context_size": cfg.seq_len,
                "prepend_bos": False, "sleuth": info}
    t1 = time.time()
    trained, train_stats = train_topk(train_acts, cfg, metadata)
    train_s = time.time() - t1
    info["training"] = {k: v for k, v in train_stats.items() if k != "seconds"}

    out = Path(out or sae_dir(org.out))
    sae = save_fp16(trained, out)
    quality = reconstruction_stats(sae, held_acts)
    t2 = time.time()
    codes = encode_all(sae, acts)
    density = codes.density(sae.cfg.d_sae)
    quality.update({"dead_fraction": round(float((density == 0).mean()), 4),
                    "dense_fraction": round(float((density > DENSE).mean()), 4), "dense_threshold": DENSE,
                    "density_tokens": codes.n_tokens})
    loss_windows = windows.subset(np.flatnonzero(held)[: cfg.loss_windows])
    quality.update(spliced_loss(model, sae, loss_windows, layer, train_acts[:50_000].float().mean(0),
                                pad_id=tok.pad_token_id))
    info.update({"quality": quality, "phase_seconds": {"collect": round(collect_s, 1), "train": round(train_s, 1),
                                                 "evaluate": round(time.time() - t2, 1)},
                 "collect_tokens_per_s": round(len(acts) / max(1e-6, collect_s))})
    update_metadata(out, {"sleuth": info})
    sha = sha256_file(out / "sae_weights.safetensors")
    save_codes(codes_path(org, work), codes, windows, sha)
    info["sha256"] = sha
    info["bytes"] = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    console.print(f"SAE: layer {layer}, {info['width']} features, L0 {quality['l0']}, "
                  f"EV {quality['explained_variance']}, dead {quality['dead_fraction']:.1%}, "
                  f"CE {quality['ce_loss_clean']} -> {quality['ce_loss_with_sae']}")
    return info
