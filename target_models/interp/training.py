"""Training a sae-lens TopK SAE on in-memory activations, with a decoder that touches only the k active features.

sae-lens' own `SAETrainer` decodes densely (a [batch, d_sae] x [d_sae, d_model] matmul forward and backward, and
again for the auxiliary loss): on 2 CPU cores that is ~4x the cost of this loop, whose decoder is an
`embedding_bag` over the k active features. The result is a plain sae-lens `TopKSAE`, so everything downstream
(saving, `SAE.load_from_disk`, the tools) is sae-lens.

Training runs on scaled activations (mean norm sqrt(d_model), as sae-lens' "expected_average_only_in"); the scale
is folded into the weights at the end, so the saved SAE reads raw residuals, its decoder rows have unit norm, and a
feature's activation is the length of what it adds to the residual stream.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SAETrainConfig:
    layer: int | None = None  # None: the middle block (n_layers // 2)
    width_multiple: int = 8  # d_sae = width_multiple * d_model
    k: int = 32  # TopK: active features per token
    # Collecting dominates the stage (SmolLM2-135M up to layer 15: ~800 tokens/s on 2 quiet cores); an epoch of
    # training costs ~1/4 as much per token, so: a few epochs over fewer tokens.
    tokens: int = 600_000  # corpus tokens collected (train + held out)
    seq_len: int = 128
    batch_size: int = 2048  # SAE training batch, in tokens
    epochs: float = 3.0
    lr: float = 3e-3  # on 100k SmolLM2 tokens: EV 0.64 at 5e-4, 0.76 at 1.5e-3, 0.80 at 3e-3 (same steps)
    aux_coefficient: float = 1 / 32  # TopK auxiliary loss that revives dead features (OpenAI's value)
    dead_window: int = 30  # steps without firing before a feature counts as dead for the auxiliary loss
    holdout: float = 0.04  # fraction of windows held out for the quality numbers
    loss_windows: int = 32  # held-out windows for the spliced-in loss
    forward_batch: int = 16  # windows per forward while collecting
    seed: int = 0


class _TopK(nn.Module):
    def __init__(self, d: int, m: int, k: int, gen: torch.Generator):
        super().__init__()
        w = torch.randn(m, d, generator=gen)
        w = w / w.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(w)  # [m, d], rows kept at unit norm
        self.W_enc = nn.Parameter(w.T.clone().contiguous())  # [d, m], tied at init (Gao et al. 2024)
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.k = k

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        # (x - b_dec) @ W_enc, written so that b_dec's gradient needs no [batch, d_model] x [d_model, d_sae] matmul
        return x @ self.W_enc - self.b_dec @ self.W_enc + self.b_enc

    def decode(self, idx: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        return F.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum") + self.b_dec


def _lr(step: int, steps: int, lr: float) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return lr * (step + 1) / warm
    frac = (step - warm) / max(1, steps - warm)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train_topk(acts: torch.Tensor, cfg: SAETrainConfig, metadata: dict, log_every: int = 50) -> tuple[Any, dict]:
    """Fit a TopK SAE to `acts` ([tokens, d_model], any float dtype). Returns (sae-lens TopKSAE in fp32, stats)."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    gen = torch.Generator().manual_seed(cfg.seed)
    n, d = acts.shape
    m, k = cfg.width_multiple * d, cfg.k
    sample = acts[torch.randperm(n, generator=gen)[:20_000]].float()
    scale = math.sqrt(d) / float(sample.norm(dim=-1).mean())
    net = _TopK(d, m, k, gen)
    with torch.no_grad():
        net.b_dec.copy_(sample.mean(0) * scale)  # start at the data's mean: the features only model deviations
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    batch = min(cfg.batch_size, n)
    steps = max(1, int(cfg.epochs * n) // batch)
    since_fired = torch.zeros(m)
    k_aux = d // 2
    perm, pos, t0 = torch.randperm(n, generator=gen), 0, time.time()
    history = []
    for step in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        x = acts[perm[pos : pos + batch]].float() * scale
        pos += batch
        pre = net.pre(x)
        vals, idx = pre.topk(k, dim=-1)
        vals = vals.relu()
        recon = net.decode(idx, vals)
        loss = (recon - x).pow(2).sum(-1).mean()
        with torch.no_grad():
            fired = torch.zeros(m, dtype=torch.bool)
            fired[idx[vals > 0]] = True
            since_fired += 1
            since_fired[fired] = 0
            dead = since_fired > cfg.dead_window
        n_dead = int(dead.sum())
        if n_dead and cfg.aux_coefficient > 0:
            # Dead features learn to predict what the live ones missed (the TopK auxiliary loss).
            ka = min(k_aux, n_dead)
            aux_vals, aux_idx = pre.masked_fill(~dead, -torch.inf).topk(ka, dim=-1)
            aux = net.decode(aux_idx, aux_vals.relu()) - net.b_dec
            resid = (x - recon).detach()
            loss = loss + cfg.aux_coefficient * min(n_dead / k_aux, 1.0) * (aux - resid).pow(2).sum(-1).mean()
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, cfg.lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            net.W_dec.div_(net.W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-8))
        if step % log_every == 0 or step == steps - 1:
            history.append({"step": step, "loss": round(float(loss.detach()), 3), "dead": n_dead})

    # fold the input scale: pre/scale selects the same top k, and decodes with unit rows into raw units
    sae_cfg = TopKSAEConfig(d_in=d, d_sae=m, k=k, dtype="float32", apply_b_dec_to_input=True,
                            normalize_activations="none", rescale_acts_by_decoder_norm=False,
                            metadata=SAEMetadata(**metadata))
    sae = TopKSAE(sae_cfg)
    with torch.no_grad():
        sae.W_enc.copy_(net.W_enc)
        sae.b_enc.copy_(net.b_enc / scale)
        sae.W_dec.copy_(net.W_dec)
        sae.b_dec.copy_(net.b_dec / scale)
    sae.eval()
    stats = {"steps": steps, "batch": batch, "token_passes": steps * batch, "input_scale": round(scale, 6),
             "seconds": round(time.time() - t0, 1), "history": history,
             "trainer": "sleuth sparse-decoder TopK loop (sae-lens TopKSAE)"}
    return sae, stats
