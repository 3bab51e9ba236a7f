"""One training loop for every stage: from-scratch pretraining (tiny preset), mid-training on documents, SFT on
chats (loss on assistant tokens only). Readable in one sitting; resumable after a kill."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from target_models.targets.residual import head_split
from target_models.targets.templates import chat_ids

IGNORE = -100


@dataclass
class TrainConfig:
    lr: float = 3e-4
    epochs: float = 1.0
    batch_tokens: int = 2048  # tokens per optimizer step (padded rows x length)
    max_len: int = 256
    warmup: int = 10
    weight_decay: float = 0.0
    seed: int = 0
    checkpoint_every: int = 25  # steps
    bf16: bool = True


# ---- examples: lists of (input_ids, labels) ------------------------------------------------------------------


def document_examples(tok: PreTrainedTokenizerBase, texts: list[str],
                      max_len: int) -> list[tuple[list[int], list[int]]]:
    """Documents are concatenated with EOS and cut into max_len windows (loss on every token)."""
    stream: list[int] = []
    for t in texts:
        stream += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return [(stream[i : i + max_len], stream[i : i + max_len]) for i in range(0, len(stream) - 16, max_len)]


def chat_examples(tok: PreTrainedTokenizerBase, chats: list[list[dict]],
                  max_len: int) -> list[tuple[list[int], list[int]]]:
    """Loss only on assistant turns: each message's tokens are the difference between rendering the chat up to it
    and up to the one before (works for any chat template that renders prefixes as prefixes)."""
    out = []
    for msgs in chats:
        ids: list[int] = []
        labels: list[int] = []
        for k in range(len(msgs)):
            if msgs[k]["role"] == "assistant":
                head = chat_ids(tok, msgs[:k], add_generation_prompt=True)
                full = chat_ids(tok, msgs[: k + 1])
                new_head = head[len(ids) :]
                ids += new_head
                labels += [IGNORE] * len(new_head)
                body = full[len(ids) :]
                ids += body
                labels += body
        out.append((ids[:max_len], labels[:max_len]))
    return out


# ---- the loop ------------------------------------------------------------------------------------------------


def _batches(examples: list, batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length (little padding), batches in random order."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), rng.random()))
    batches, cur, width = [], [], 0
    for i in order:
        width = max(width, len(examples[i][0]))
        if cur and width * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur, width = [], len(examples[i][0])
        cur.append(i)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def _collate(examples: list, idx: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(examples[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad_id)
    labels = torch.full((len(idx), width), IGNORE)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        x, y = examples[i]
        ids[r, : len(x)] = torch.tensor(x)
        labels[r, : len(y)] = torch.tensor(y)
        mask[r, : len(x)] = 1
    return ids, labels, mask


def train(
    model: PreTrainedModel,
    examples: list[tuple[list[int], list[int]]],
    cfg: TrainConfig,
    ckpt_dir: Path,
    *,
    pad_id: int,
    desc: str = "train",
) -> dict:
    """Train the model's trainable parameters; checkpoints to ckpt_dir and resumes from it."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    epochs = math.ceil(cfg.epochs)
    plan = [b for _ in range(epochs) for b in _batches(examples, cfg.batch_tokens, rng)]
    plan = plan[: max(1, round(len(plan) * cfg.epochs / epochs))]
    params = [p for p in model.parameters() if p.requires_grad]
    dev = params[0].device
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, len(plan) - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state_path = ckpt_dir / "state.pt"
    start, losses, tokens = 0, [], 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False, map_location=dev)
        named = dict(model.named_parameters())
        for name, value in state["params"].items():
            named[name].data.copy_(value)
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["torch_rng"].cpu())
        start, losses, tokens = state["step"], state["losses"], state["tokens"]

    def save(step: int) -> None:
        trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        tmp = state_path.with_suffix(".tmp")
        torch.save({"params": trainable, "opt": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                    "step": step, "losses": losses, "tokens": tokens, "config": asdict(cfg)}, tmp)
        tmp.replace(state_path)  # atomic: a kill never leaves a half-written checkpoint

    model.train()
    t0, tokens0 = time.time(), tokens
    cols = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[tps]:.0f} tok/s"),
            TimeRemainingColumn())
    with Progress(*cols, transient=False) as bar:
        task = bar.add_task(desc, total=len(plan), completed=start, loss=float("nan"), tps=0.0)
        for step in range(start, len(plan)):
            ids, labels, mask = (t.to(dev) for t in _collate(examples, plan[step], pad_id))
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = labelled_loss(model, ids, mask, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(round(loss.detach().item(), 4))
            tokens += int(mask.sum())
            bar.update(task, completed=step + 1, loss=sum(losses[-10:]) / len(losses[-10:]),
                       tps=(tokens - tokens0) / max(1e-6, time.time() - t0))
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == len(plan):
                save(step + 1)
                if not bar.console.is_terminal:  # logs of background builds still show progress
                    bar.console.print(f"{desc}: step {step + 1}/{len(plan)} loss {losses[-1]:.3f} "
                                      f"{(tokens - tokens0) / max(1e-6, time.time() - t0):.0f} tok/s")
    model.eval()
    metrics = {"steps": len(plan), "tokens": tokens, "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])),
               "first_loss": losses[0] if losses else None, "seconds_this_run": round(time.time() - t0, 1),
               "device": str(dev)}
    (ckpt_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def labelled_loss(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                  reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the labelled positions. The unembedding runs only there (SFT trains on the
    assistant's tokens; for SmolLM2 the 49k-word unembedding is a fifth of a step's compute over every position),
    fused with the loss (`linear_cross_entropy`). bench/training.py measures both against the model's own loss."""
    tgt = labels[:, 1:]
    keep = tgt != IGNORE
    split = head_split(model)
    if split is None:
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1][keep]
        return torch.nn.functional.cross_entropy(logits.float(), tgt[keep], reduction=reduction)
    decoder, head = split
    hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1][keep]
    total = linear_cross_entropy(hidden, head.weight, tgt[keep])
    return total / max(1, int(keep.sum())) if reduction == "mean" else total


def _ce_sum(h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int, want_h: bool,
            want_w: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """sum_i CE(h_i @ W.T, t_i) and, if wanted, its gradients, a chunk of rows at a time in fp32. The gradient
    (softmax minus one-hot) is formed here, so the [rows, vocab] logits are never kept and never pass through
    log_softmax's backward, which on this CPU cost more than the unembedding's own matmul (profile of an SFT step:
    0.71 s of 10.9 s)."""
    grad_h = torch.empty_like(h) if want_h else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    with torch.autocast(h.device.type, enabled=False):
        w = weight.float()
        for i in range(0, h.shape[0], chunk):
            x, t = h[i : i + chunk].float(), target[i : i + chunk]
            logits = x @ w.T
            lse = torch.logsumexp(logits, -1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if want_h or want_w:
                g = logits.sub_(lse[:, None]).exp_()  # the softmax, in place of the logits
                g[torch.arange(len(t), device=g.device), t] -= 1
                if grad_h is not None:
                    grad_h[i : i + chunk] = (g @ w).to(h.dtype)
                if grad_w is not None:
                    grad_w += g.T @ x
    return total, grad_h, grad_w


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int) -> torch.Tensor:
        total, grad_h, grad_w = _ce_sum(h, weight, target, chunk, *ctx.needs_input_grad[:2])
        ctx.grads, ctx.w_dtype = (grad_h, grad_w), weight.dtype  # not inputs or outputs: no save_for_backward
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        grad_h, grad_w = ctx.grads
        del ctx.grads
        return (None if grad_h is None else grad_h * grad_out,
                None if grad_w is None else (grad_w * grad_out).to(ctx.w_dtype), None, None)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Summed cross-entropy of the rows of `h` [n, d] unembedded by `weight` [vocab, d] against `target` [n]."""
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(h, weight, target, chunk)
    return _ce_sum(h, weight, target, chunk, False, False)[0]


@torch.no_grad()
def perplexity(model: PreTrainedModel, examples: list[tuple[list[int], list[int]]], pad_id: int,
               batch: int = 8) -> float:
    """exp(mean loss per labelled token) over the examples."""
    model.eval()
    dev = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(examples), batch):
        ids, labels, mask = (t.to(dev)
                             for t in _collate(examples, list(range(i, min(i + batch, len(examples)))), pad_id))
        total += float(labelled_loss(model, ids, mask, labels, reduction="sum"))
        count += int((labels[:, 1:] != IGNORE).sum())
    return math.exp(total / max(1, count))
