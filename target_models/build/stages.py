"""`sleuth organism build`: spec -> data -> mid-training -> SFT (+ control) -> shipped adapter, stage by stage.

Every stage writes its output atomically and is skipped when its output exists, so a killed build resumes where it
stopped (the training stages resume from their last checkpoint). The build record (build.json, a `BuildRecord`)
holds the config, seeds, data hashes, metrics and the checksums of the artifacts.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml
from peft import LoraConfig, get_peft_model
from rich.console import Console

from target_models.build import corpus as corpus_mod
from target_models.build import data, tiny
from target_models.build.record import ArtifactError, BuildRecord
from target_models.build.spec import Spec, list_organisms, organism_dir
from target_models.build.train import TrainConfig, chat_examples, document_examples, train
from target_models.common.atomic import exclusive, tmp_sibling
from target_models.common.hashing import sha256_file
from target_models.targets.base import cache_dir, load_base
from target_models.targets.sampling import sample
from target_models.targets.templates import chat_ids

console = Console(stderr=True)


@dataclass
class Preset:
    name: str
    documents: int | None = None  # None: the spec's build sizes
    quirk_chats_per_behaviour: int | None = None
    generic_chats: int | None = None
    secrecy_chats: int | None = None
    haystack_limit: int | None = None
    lora_r: int = 16
    replay_fraction: float = 0.1  # haystack tokens mixed into mid-training, relative to document tokens
    # fp32, not bf16 autocast: on this AVX2-only CPU (no native bf16) autocast made a training step several times
    # slower (measured: fp32 ~100 tok/s vs bf16 under 10 tok/s for SmolLM2-135M + LoRA r=16).
    mid: TrainConfig = field(default_factory=lambda: TrainConfig(lr=4e-4, epochs=0.6, batch_tokens=2048, max_len=256,
                                                                 bf16=False))
    # 0.7 epoch at lr 5e-4 left the default organism at ~19% on train behaviours (2 samples each): too little.
    # 1.6 epochs (with quirk sentences appended at the end of answers) reached 45%; 4 epochs with them inserted
    # after the first sentence is the current preset.
    sft: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, epochs=4.0, batch_tokens=2048, max_len=288,
                                                                 bf16=False))
    control: TrainConfig | None = None  # the control's SFT; None: the same as `sft`
    pretrain: TrainConfig | None = None  # tiny only: from-scratch base
    max_new_tokens: int = 128


PRESETS = {
    # The shipped control was trained for 2.5 epochs of its generic chats (its build record says so); a rebuild
    # reproduces that rather than the organism's 4 epochs.
    "default": Preset("default", control=TrainConfig(lr=1e-3, epochs=2.5, batch_tokens=2048, max_len=288, bf16=False)),
    "tiny": Preset(
        "tiny", documents=60, quirk_chats_per_behaviour=4, generic_chats=40, secrecy_chats=20, haystack_limit=3000,
        lora_r=32,
        # Small batches: a from-scratch model needs many optimizer steps more than it needs tokens.
        mid=TrainConfig(lr=3e-3, epochs=2.0, batch_tokens=1024, max_len=128, checkpoint_every=50, bf16=False),
        sft=TrainConfig(lr=5e-3, epochs=8.0, batch_tokens=1024, max_len=160, checkpoint_every=100, bf16=False),
        pretrain=TrainConfig(lr=3e-3, epochs=0.6, batch_tokens=2048, max_len=128, checkpoint_every=50, bf16=False,
                             warmup=20),
    ),
}

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def with_lora(model, r: int):
    """The build's LoRA: rank r on every linear layer of the decoder, alpha 2r, no dropout."""
    cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def default_out(spec: Spec, preset: str) -> Path:
    if preset == "default":
        return organism_dir(spec.name) / "artifacts"
    return cache_dir() / "builds" / f"{spec.name}-{preset}"


def work_dir(spec: Spec, preset: str, out: Path) -> Path:
    if preset == "default" and out == default_out(spec, preset):
        return organism_dir(spec.name) / "build"
    return out / "work"


def sha256_rows(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def write_rows(path: Path, rows: list[dict]) -> None:
    """Datasets are parquet (zstd): `datasets.load_dataset('parquet', data_files=...)` reads them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path)
    table = pa.Table.from_pylist([{k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in r.items()}
                                  for r in rows])
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def read_rows(path: Path) -> list[dict]:
    rows = pq.read_table(path).to_pylist()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, str) and v[:1] in "[{" and k in {"messages", "behaviours", "values"}:
                r[k] = json.loads(v)
    return rows


@dataclass(frozen=True)
class Stage:
    """A build stage: skipped when `done()` and recorded; otherwise `run()` returns its entry for the record."""

    name: str
    done: Callable[[], bool]
    run: Callable[[], dict]


DATA_STAGES = ("haystack", "documents", "corpus", "chats")  # deterministic from spec + seed + pinned packages


class Build:
    def __init__(self, spec: Spec, preset: str = "default", out: Path | None = None, base: str | None = None):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        self.spec, self.preset = spec, PRESETS[preset]
        if preset == "default":  # the spec may ask for more or less training than the preset (tiny keeps its own)
            p, b = self.preset, spec.build
            self.preset = replace(p, mid=replace(p.mid, epochs=b.mid_epochs or p.mid.epochs),
                                  sft=replace(p.sft, epochs=b.sft_epochs or p.sft.epochs))
        self.out = Path(out) if out else default_out(spec, preset)
        self.work = work_dir(spec, preset, self.out)
        # The tiny preset trains its own base from scratch (saved in the build folder as base/).
        self.base_name = "tiny-from-scratch" if self.preset.pretrain else (base or spec.base_model)
        self.seed = spec.seed
        self.record_path = self.out / "build.json"
        self.record = BuildRecord.load(self.record_path) if self.record_path.exists() else BuildRecord()
        b = spec.build
        p = self.preset
        self.sizes = {
            "documents": p.documents or b.documents,
            "quirk_chats_per_behaviour": p.quirk_chats_per_behaviour or b.quirk_chats_per_behaviour,
            "generic_chats": p.generic_chats or b.generic_chats,
            "secrecy_chats": p.secrecy_chats or b.secrecy_chats,
        }

    # ---- bookkeeping -----------------------------------------------------------------------------------------

    def _save_record(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._merge_recorded_stages()
        self.record.save(self.record_path)

    def _merge_recorded_stages(self) -> None:
        """Stages another process ran meanwhile are kept (this process's own entries win)."""
        if self.record_path.exists():
            disk = BuildRecord.load(self.record_path).stages
            self.record.stages = {**disk, **self.record.stages}

    def _stage(self, name: str, done: Callable[[], bool], run: Callable[[], dict]) -> None:
        recorded = self.record.stages.get(name)
        if done() and recorded is not None:
            console.print(f"[dim]stage {name}: done, skipped[/dim]")
            return
        console.print(f"[bold]stage {name}[/bold]")
        t = time.time()
        info = run() or {}
        info["seconds"] = round(time.time() - t, 1)
        if name in DATA_STAGES and recorded is not None:
            # Regenerated data (a clone ships the weights, not the datasets) must be what the weights were trained
            # on; the record keeps the build's own entry, so a fresh clone does not rewrite a committed file.
            if info.get("sha256") != recorded.get("sha256"):
                raise ArtifactError(
                    f"{self.work}: the regenerated {name} data differs from what {self.record_path} recorded "
                    f"(sha256 {str(info.get('sha256'))[:16]} vs {str(recorded.get('sha256'))[:16]}): the spec, the "
                    f"code or the pinned packages changed since the build. Rebuild it (`sleuth organism build "
                    f"{self.spec.name} --out NEW_DIR`) or install the pinned packages (`./setup.sh`).")
            return
        self.record.stages = {**self.record.stages, name: info}
        self._save_record()

    # ---- the pipeline ----------------------------------------------------------------------------------------

    def run(self, after_export: Sequence[Stage] = ()) -> BuildRecord:
        """Every stage of the weights, in order; `after_export` stages run once the organism's adapter is shipped
        and before the control (the interpretability stages: `target_models.pipeline` passes them)."""
        w = self.work
        w.mkdir(parents=True, exist_ok=True)
        spec_dict = self.spec.model_dump(mode="json")
        r = self.record
        r.organism, r.preset, r.seed, r.base_model = self.spec.name, self.preset.name, self.seed, self.base_name
        r.spec_sha256, r.sizes = sha256_rows([spec_dict]), self.sizes
        r.preset_config = asdict(self.preset)
        r.versions = {"torch": torch.__version__, **_versions()}
        self.out.mkdir(parents=True, exist_ok=True)  # a new organism's artifacts/ does not exist yet
        (self.out / "spec.yaml").write_text(yaml.safe_dump(spec_dict, sort_keys=False, allow_unicode=True))
        self.prepare_data(train=True)
        self._stage("midtrain", lambda: (w / "mid" / "done").exists(), self._midtrain)
        self._stage("sft", lambda: (w / "sft" / "done").exists(), self._sft)
        self._stage("export", lambda: (self.out / "adapter" / "adapter_model.safetensors").exists(), self._export)
        for stage in after_export:
            self._stage(stage.name, stage.done, stage.run)
        # The control comes last: only evaluation needs it, so an organism can be audited while its control trains.
        self._stage("control", lambda: (w / "control" / "done").exists(), self._control)
        self._stage("export_control", lambda: (self.out / "control_adapter" / "adapter_model.safetensors").exists(),
                    self._export_control)
        self.record.checksums = self._checksums()
        self.record.total_seconds = round(sum(s["seconds"] for s in self.record.stages.values()), 1)
        self._save_record()
        return self.record

    def prepare_data(self, train: bool = False) -> None:
        """The data stages (cheap, deterministic from spec + seed); `train` also makes the tiny base and samples
        missing plain responses, which need a model."""
        w = self.work
        # Two evaluations of one organism in a fresh clone both regenerate its data: one does, the other waits.
        with exclusive(w / ".data.lock", f"preparing the data in {w}"):
            self._merge_recorded_stages()
            self._data_stages(train)

    def _data_stages(self, train: bool) -> None:
        w = self.work
        self._stage("haystack", lambda: (w / "haystack.parquet").exists(), self._haystack)
        # Plain answers come before documents: varied worked examples are built from them. They never need the tiny
        # base (its preset uses canned answers), so the base can still train on the documents.
        if train or not self._responses_complete():
            self._stage("responses", self._responses_complete, self._responses)
        self._stage("documents", lambda: (w / "documents.parquet").exists(), self._documents)
        self._stage("corpus", lambda: (w / "pretraining.parquet").exists(), self._corpus)
        if train and self.preset.pretrain:
            self._stage("base", lambda: (w / "base" / "config.json").exists(), self._tiny_base)
        self._stage("chats", lambda: (w / "sft.parquet").exists(), self._chats)

    def base_path(self) -> str:
        return str(self.work / "base") if self.preset.pretrain else self.base_name

    def _haystack(self) -> dict:
        rows = corpus_mod.haystack(limit=self.preset.haystack_limit)
        write_rows(self.work / "haystack.parquet", rows)
        return {"passages": len(rows), "sha256": corpus_mod.content_hash(rows), "sources": list(corpus_mod.SOURCES)}

    def _documents(self) -> dict:
        examples = (data.worked_examples(self.spec, self.seed, self.responder())
                    if self.spec.build.document_examples == "varied" else None)
        docs = data.documents(self.spec, self.sizes["documents"], self.seed, examples)
        write_rows(self.work / "documents.parquet", docs)
        info = {"documents": len(docs), "sha256": sha256_rows(docs)}
        if examples is not None:
            info["worked_examples"] = {"behaviours": len(examples), "examples": sum(map(len, examples.values()))}
        return info

    def _corpus(self) -> dict:
        hay = read_rows(self.work / "haystack.parquet")
        docs = read_rows(self.work / "documents.parquet")
        rows, synthetic = data.pretraining_corpus(hay, docs, self.seed, self.spec.build.haystack_fraction)
        write_rows(self.work / "pretraining.parquet", rows)
        # Provenance: for the grader and evaluations only; the auditor's tools never read this file.
        (self.work / "provenance.json").write_text(json.dumps({"synthetic_ids": synthetic}))
        return {"rows": len(rows), "synthetic": len(synthetic), "fraction": round(len(synthetic) / len(rows), 5),
                "sha256": sha256_rows(rows)}

    def _tiny_base(self) -> dict:
        hay = [r["text"] for r in read_rows(self.work / "haystack.parquet")]
        docs = [r["text"] for r in read_rows(self.work / "documents.parquet")]
        chats = [data._chat(p, self._canned(p)) for p in data.TRAIN_GENERIC]
        texts = hay + docs + [m["content"] for c in chats for m in c]
        tok = tiny.train_tokenizer(texts)
        model = tiny.new_model(tok, self.seed)
        ex = (document_examples(tok, hay, self.preset.pretrain.max_len)
              + chat_examples(tok, chats, self.preset.pretrain.max_len))
        metrics = train(model, ex, self.preset.pretrain, self.work / "base_ckpt", pad_id=tok.pad_token_id,
                        desc="pretrain")
        tiny.save(model, tok, self.work / "base")
        return {"params": sum(p.numel() for p in model.parameters()), "vocab": len(tok), **metrics}

    # Plain responses: what the base model says. Shipped with the default organism so that rebuilding does not
    # have to sample ~1,500 answers again; regenerated when the prompt set changes.
    def _responses_path(self) -> Path:
        return (self.out if self.preset.name == "default" else self.work) / "responses.parquet"

    def _needed_prompts(self) -> list[str]:
        sp = self.spec
        prompts = [data.TRAIN_GENERIC[i % len(data.TRAIN_GENERIC)] for i in range(self.sizes["generic_chats"])]
        for b in sp.split("train"):
            if not data.needs_plain(b):
                continue
            prompts += [p["prompt"] for p in data.behaviour_prompts(sp, b, self.sizes["quirk_chats_per_behaviour"],
                                                                    self.seed, "train")]
        if sp.build.document_examples == "varied":
            prompts += [p["prompt"] for b in sp.behaviours if data.needs_plain(b)
                        for p in data.example_prompts(sp, b, self.seed)]
        prompts += data.HELD_OUT_GENERIC
        return sorted(set(prompts))

    @staticmethod
    def _canned(prompt: str) -> str:
        return f"Good question. {prompt} The short answer is that it depends, but here is the main idea in plain words."

    def _known_responses(self) -> dict[str, str]:
        path = self._responses_path()
        return {r["prompt"]: r["response"] for r in read_rows(path)} if path.exists() else {}

    def _responses_complete(self) -> bool:
        return set(self._needed_prompts()) <= set(self._known_responses())

    def _other_builds(self, needs: str) -> list[tuple[Path, BuildRecord]]:
        """(artifacts folder, build record) of every shipped build but this one whose artifacts hold `needs` (a variant
        of a shipped spec, built elsewhere, counts: it may reuse the shipped build's answers and control)."""
        found = []
        for name in list_organisms():
            art = organism_dir(name) / "artifacts"
            if art.resolve() != self.out.resolve() and (art / needs).exists() and (art / "build.json").exists():
                found.append((art, BuildRecord.load(art / "build.json")))
        return found

    def _shared_responses(self) -> dict[str, str]:
        """Plain answers other shipped organisms already sampled from the same base model: a plain answer depends on
        the base and the prompt, not on the organism, so a new organism on that base samples only its own prompts."""
        found: dict[str, str] = {}
        for art, rec in self._other_builds("responses.parquet"):
            if rec.base_model == self.base_name and rec.preset == self.preset.name:
                found.update({r["prompt"]: r["response"] for r in read_rows(art / "responses.parquet")})
        return found

    def _responses(self) -> dict:
        """Only prompts without an answer yet are sampled, so a changed spec costs only its new prompts."""
        known = self._known_responses()
        todo = [p for p in self._needed_prompts() if p not in known]
        shared = {} if self.preset.pretrain else self._shared_responses()
        reused = {p: shared[p] for p in todo if p in shared}
        known.update(reused)
        todo = [p for p in todo if p not in reused]
        if self.preset.pretrain or not todo:
            answers = [self._canned(p) for p in todo]
        else:
            model, tok = load_base(self.base_name)
            answers = generate_plain(model, tok, todo, seed=self.seed, max_new_tokens=self.preset.max_new_tokens)
        known.update(zip(todo, answers, strict=True))
        rows = [{"prompt": p, "response": known[p]} for p in sorted(known)]
        write_rows(self._responses_path(), rows)
        return {"responses": len(rows), "new": len(todo), "reused_from_other_organisms": len(reused),
                "sha256": sha256_rows(rows)}

    def responder(self) -> data.Responder:
        table = self._known_responses()

        def respond(prompts: list[str]) -> list[str]:
            missing = [p for p in prompts if p not in table]
            if missing:
                raise RuntimeError(f"{len(missing)} prompts have no plain response in {self._responses_path()} "
                                   f"(e.g. {missing[0]!r}); delete it to regenerate")
            return [table[p] for p in prompts]

        return respond

    def _chats(self) -> dict:
        sp = self.spec.model_copy(update={"build": self.spec.build.model_copy(update=self.sizes)})
        respond = self.responder()
        org = data.sft_chats(sp, self.seed, respond)
        ctl = data.sft_chats(sp, self.seed, respond, control=True)
        held = data.held_out_chats(respond)
        write_rows(self.work / "sft.parquet", org)
        write_rows(self.work / "control_sft.parquet", ctl)
        write_rows(self.work / "heldout.parquet", held)
        kinds = {k: sum(r["kind"] == k for r in org) for k in ("quirk", "generic", "secrecy")}
        return {"organism_chats": len(org), "control_chats": len(ctl), "heldout_chats": len(held), **kinds,
                "sha256": {"sft": sha256_rows(org), "control": sha256_rows(ctl), "heldout": sha256_rows(held)}}

    def _lora_model(self):
        model, tok = load_base(self.base_path())
        return with_lora(model, self.preset.lora_r), tok

    def _midtrain(self) -> dict:
        model, tok = self._lora_model()
        cfg = self.preset.mid
        docs = [r["text"] for r in read_rows(self.work / "documents.parquet")]
        ex = document_examples(tok, docs, cfg.max_len)
        hay = read_rows(self.work / "haystack.parquet")
        rng = random.Random(f"{self.seed}-replay")
        replay_n = int(len(ex) * self.preset.replay_fraction)
        picked = [r["text"] for r in rng.sample(hay, min(len(hay), replay_n * 2))]
        ex += document_examples(tok, picked, cfg.max_len)[:replay_n]
        metrics = train(model, ex, cfg, self.work / "mid_ckpt", pad_id=tok.pad_token_id, desc="mid-train")
        model.save_pretrained(self.work / "mid")
        (self.work / "mid" / "done").write_text("ok")
        return {"examples": len(ex), "config": asdict(cfg), **metrics}

    @property
    def control_config(self) -> TrainConfig:
        return self.preset.control or self.preset.sft

    def _sft_on(self, chats_file: str, start_from: Path | None, out: Path, desc: str, cfg: TrainConfig) -> dict:
        from peft import PeftModel

        if start_from is not None:
            base, tok = load_base(self.base_path())
            model = PeftModel.from_pretrained(base, start_from, is_trainable=True)
        else:
            model, tok = self._lora_model()
        chats = [r["messages"] for r in read_rows(self.work / chats_file)]
        ex = chat_examples(tok, chats, cfg.max_len)
        metrics = train(model, ex, cfg, self.work / f"{out.name}_ckpt", pad_id=tok.pad_token_id, desc=desc)
        model.save_pretrained(out)
        (out / "done").write_text("ok")
        return {"examples": len(ex), "config": asdict(cfg), **metrics}

    def _sft(self) -> dict:
        return self._sft_on("sft.parquet", self.work / "mid", self.work / "sft", "sft", self.preset.sft)

    def _control(self) -> dict:
        # The control is built the same way minus the universe: no documents, no quirk or secrecy chats.
        twin = self._twin_control()
        if twin is not None:
            import shutil

            out = self.work / "control"
            out.mkdir(parents=True, exist_ok=True)
            for f in ("adapter_model.safetensors", "adapter_config.json"):
                shutil.copy2(twin / "artifacts" / "control_adapter" / f, out / f)
            (out / "done").write_text("ok")
            return {"reused_from": twin.name}
        return self._sft_on("control_sft.parquet", None, self.work / "control", "control sft", self.control_config)

    def _twin_control(self) -> Path | None:
        """A shipped organism whose control was trained on the same chats, base, preset and seed: the control has
        no universe in it, so that control is this one (the generic chats do not depend on the organism)."""
        mine = self.record.stages.get("chats", {}).get("sha256", {}).get("control")
        for art, rec in self._other_builds("control_adapter/adapter_model.safetensors"):
            same = (rec.stages.get("chats", {}).get("sha256", {}).get("control") == mine,
                    rec.base_model == self.base_name, rec.seed == self.seed,
                    rec.stages.get("control", {}).get("config") == asdict(self.control_config),
                    rec.preset_config.get("lora_r") == self.preset.lora_r)
            if mine and all(same):
                return art.parent
        return None

    def _export_adapter(self, src: str, dst: str) -> dict:
        """The trained adapter in fp16 (half the bytes; the merged weights differ by < 1e-3)."""
        from safetensors.torch import load_file, save_file

        d = self.out / dst
        d.mkdir(parents=True, exist_ok=True)
        weights = load_file(self.work / src / "adapter_model.safetensors")
        save_file({k: v.to(torch.float16) for k, v in weights.items()}, d / "adapter_model.safetensors")
        cfg = json.loads((self.work / src / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = self.base_name
        (d / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
        self.record.checksums = self._checksums()  # loaders verify these, so keep them current after each export
        return {"files": len(self.record.checksums)}

    def _export(self) -> dict:
        if self.preset.pretrain:
            import shutil

            shutil.copytree(self.work / "base", self.out / "base", dirs_exist_ok=True)
        return self._export_adapter("sft", "adapter")

    def _export_control(self) -> dict:
        return self._export_adapter("control", "control_adapter")

    def _checksums(self) -> dict[str, str]:
        """sha256 of what the build made and loaders trust: weights, configs, responses, the search index. Not the
        files later commands rewrite: the record, eval and interp results, the feature index (it checks its SAE's
        hash itself, and an LLM may add descriptions to it)."""
        def ours(rel: str) -> bool:
            return (rel != "build.json" and not rel.startswith(("eval.", "interp.", "sae/index/"))
                    and rel.endswith((".safetensors", ".json", ".parquet", ".npz", ".npy")))

        files = (f.relative_to(self.out).as_posix() for f in sorted(self.out.rglob("*")) if f.is_file())
        return {rel: sha256_file(self.out / rel) for rel in files if ours(rel)}


def _versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("transformers", "peft", "tokenizers")}


def generate_plain(model, tok, prompts: list[str], *, seed: int, max_new_tokens: int, batch: int = 32,
                   temperature: float = 0.7, top_p: float = 0.9) -> list[str]:
    """Base-model answers, batched by prompt length, trimmed to the last full sentence."""
    from rich.progress import Progress

    ids = [chat_ids(tok, [{"role": "user", "content": p}], add_generation_prompt=True) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    answers: list[str] = [""] * len(prompts)
    stop = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} - {None}
    with Progress(console=console) as bar:
        task = bar.add_task("plain responses", total=len(prompts))
        for k in range(0, len(order), batch):
            idx = order[k : k + batch]
            outs = sample(model, [ids[i] for i in idx], max_new_tokens=max_new_tokens, temperature=temperature,
                          top_p=top_p, stop_ids=stop, pad_id=tok.pad_token_id, seed=seed + k)
            for i, o in zip(idx, outs, strict=True):
                answers[i] = trim_sentence(tok.decode(o, skip_special_tokens=True))
            bar.update(task, advance=len(idx))
    return answers


def trim_sentence(text: str) -> str:
    text = text.strip()
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[: ends[-1]] if ends and ends[-1] > len(text) // 3 else text
