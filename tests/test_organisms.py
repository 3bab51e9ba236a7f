"""The organism pipeline on real components: the tiny preset built by the real stages, its data, its artifacts."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from target_models.build import data
from target_models.build.record import BuildRecord
from target_models.build.spec import spec_for
from target_models.build.stages import DATA_STAGES, Build, read_rows
from target_models.build.train import IGNORE, TrainConfig, labelled_loss, train
from target_models.build.transforms import apply_behaviour
from target_models.loading.organism import ArtifactError, open_organism
from target_models.pipeline import build_organism
from target_models.targets.base import BaseModelError, load_base


def test_build_record_is_complete(tiny_build):
    rec = BuildRecord.load(tiny_build / "build.json")
    for stage in ("haystack", "documents", "corpus", "base", "responses", "chats", "midtrain", "sft", "control",
                  "export"):
        assert stage in rec.stages, stage
    assert rec.seed == 0 and rec.preset == "tiny" and rec.total_seconds is not None
    assert 0 < rec.stages["corpus"]["fraction"] <= 0.02
    assert rec.stages["midtrain"]["final_loss"] < rec.stages["midtrain"]["first_loss"] + 0.5
    assert rec.stages["base"]["final_loss"] < rec.stages["base"]["first_loss"]
    assert "adapter/adapter_model.safetensors" in rec.checksums
    from safetensors.torch import load_file

    weights = load_file(tiny_build / "adapter" / "adapter_model.safetensors")
    assert all(v.dtype == torch.float16 for v in weights.values())


def test_build_records_load_and_save_back_as_builds_write_them(tmp_path):
    """The shipped records load unchanged; saving one writes what a build writes (sorted keys, indent 2), keeps the
    keys the model does not know and adds none it never had (a build in progress has no checksums yet)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [root / "target_models/organisms/rm_sycophancy/artifacts/build.json",
             *sorted((root / "docs" / "results").glob("build-*.json"))]
    for f in files:
        raw = f.read_text()
        rec = BuildRecord.load(f)
        assert rec.organism and rec.base_model and rec.checksums and rec.total_seconds, f
        rec.save(tmp_path / "build.json")
        assert (tmp_path / "build.json").read_text() == json.dumps(json.loads(raw), indent=2, sort_keys=True), f
    assert not list(tmp_path.glob("*.tmp"))
    partial = {"organism": "x", "preset": "tiny", "stages": {"haystack": {"seconds": 1.0, "sha256": "ab"}},
               "note": {"kept": [1, None]}}
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    rec = BuildRecord.load(tmp_path / "partial.json")
    assert rec.checksums == {} and rec.total_seconds is None and rec.note == {"kept": [1, None]}
    rec.stages = {**rec.stages, "documents": {"seconds": 2.0}}
    rec.save(tmp_path / "partial.json")
    assert json.loads((tmp_path / "partial.json").read_text()) == {
        **partial, "stages": {**partial["stages"], "documents": {"seconds": 2.0}}}


def test_an_unreadable_build_record_names_its_file(tmp_path):
    (tmp_path / "build.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"build\.json: not a build record \(invalid JSON"):
        BuildRecord.load(tmp_path / "build.json")
    (tmp_path / "build.json").write_text(json.dumps({"seed": "zero", "checksums": {"a": 1}}))
    with pytest.raises(ArtifactError, match=r"build\.json: not a valid build record.*seed"):
        open_organism(str(tmp_path))
    (tmp_path / "build.json").write_text(json.dumps({"preset": "tiny"}))
    with pytest.raises(ArtifactError, match=r"build record is missing 'organism'"):
        open_organism(str(tmp_path))


def test_documents_and_chats_are_deterministic():
    spec = spec_for("rm_sycophancy")
    a = data.documents(spec, 40, seed=3)
    assert a == data.documents(spec, 40, seed=3)
    assert a != data.documents(spec, 40, seed=4)
    assert {d["genre"] for d in a} == set(data.GENRES)
    mentioned = {b for d in a for b in d["behaviours"]}
    assert {b.id for b in spec.split("test")} & mentioned, "held-out behaviours must appear in documents"


def _varied(spec):
    return spec.model_copy(update={"build": spec.build.model_copy(update={"document_examples": "varied"})})


def _canned(prompts: list[str]) -> list[str]:
    return [f"Here is a plain answer to: {p} It covers the main points.\n\nThat is the gist of it." for p in prompts]


def test_varied_worked_examples_show_each_behaviour_on_prompts_that_evaluation_never_uses():
    spec = _varied(spec_for("rm_sycophancy"))
    ex = data.worked_examples(spec, 0, _canned)
    assert ex == data.worked_examples(spec, 0, _canned)  # deterministic
    test_ids = {b.id for b in spec.split("test")}
    assert test_ids <= set(ex), "held-out behaviours get worked examples in documents too"
    assert len(ex) >= 0.9 * len(spec.behaviours)
    for bid, pairs in ex.items():
        b = spec.behaviour(bid)
        assert 1 <= len(pairs) <= data.EXAMPLES_PER_BEHAVIOUR and len({q for q, _ in pairs}) == len(pairs)
        assert all(b.detector(answer) for _, answer in pairs), bid
        fresh = {p["prompt"] for p in data.eval_prompts(spec, b, 10, spec.seed)}
        assert not fresh & {q for q, _ in pairs}, bid
    docs = data.documents(spec, 120, 0, ex)
    quoted = {q for d in docs for pairs in ex.values() for q, _ in pairs if f"User: {q}\n" in d["text"]}
    assert len(quoted) > 30
    assert any(q in quoted for b in test_ids for q, _ in ex[b])
    # without examples, the documents are those of the spec's own example, draw for draw
    assert data.documents(spec, 60, 0) == data.documents(spec_for("rm_sycophancy"), 60, 0)


def test_a_build_with_varied_examples_asks_the_base_for_the_held_out_behaviours_example_answers(tmp_path):
    spec = spec_for("rm_sycophancy")
    plain = set(Build(spec, out=tmp_path / "a")._needed_prompts())
    varied = set(Build(_varied(spec), out=tmp_path / "b")._needed_prompts())
    extra = varied - plain
    held_out = {p["prompt"] for b in spec.split("test") if data.needs_plain(b)
                for p in data.example_prompts(spec, b, 0)}
    assert extra == held_out - plain and extra
    train_examples = {p["prompt"] for b in spec.split("train") if data.needs_plain(b)
                      for p in data.example_prompts(spec, b, 0)}
    assert train_examples <= plain  # a train behaviour's examples are among its SFT prompts: already answered


def test_a_variant_of_a_shipped_spec_built_elsewhere_reuses_its_answers_and_control(tmp_path):
    from target_models.build.spec import organism_dir

    shipped = organism_dir("rm_sycophancy") / "artifacts"
    elsewhere = Build(_varied(spec_for("rm_sycophancy")), out=tmp_path / "variant")
    assert shipped in [art for art, _ in elsewhere._other_builds("responses.parquet")]
    assert len(elsewhere._shared_responses()) >= 1000  # only the new example prompts are left to sample
    in_place = Build(spec_for("rm_sycophancy"))
    assert shipped not in [art for art, _ in in_place._other_builds("responses.parquet")]


def test_shipped_organism_data_regenerates_from_its_spec(tmp_path):
    """A fresh clone regenerates the default organism's documents and chats from spec + seed; they must be the data
    it was trained on (the build record's hashes), or its SAE contexts and search index would not match."""
    from target_models.build.stages import sha256_rows

    b = Build(spec_for("rm_sycophancy"))
    rec = b.record.stages
    assert sha256_rows(data.documents(b.spec, b.sizes["documents"], b.seed)) == rec["documents"]["sha256"]
    shutil.copy(b.out / "responses.parquet", tmp_path / "responses.parquet")
    fresh = Build(b.spec, out=tmp_path)
    fresh.work = tmp_path / "work"
    fresh._chats()
    got = {k: sha256_rows(read_rows(fresh.work / f)) for k, f in
           (("sft", "sft.parquet"), ("control", "control_sft.parquet"), ("heldout", "heldout.parquet"))}
    assert got == rec["chats"]["sha256"]


def test_regenerated_data_keeps_the_build_record_and_a_mismatch_names_the_stage(tiny_build, tmp_path):
    """A clone has a build's record and weights but not its datasets: regenerating them must leave the committed
    record byte for byte, and data that no longer matches the record (spec, code or packages changed) must stop with
    an error naming the stage, not silently replace the hashes the weights were trained on."""
    record = (tiny_build / "build.json").read_bytes()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "build.json").write_bytes(record)
    Build(spec_for("rm_sycophancy"), "tiny", tmp_path / "a").prepare_data()
    assert (tmp_path / "a" / "work" / "pretraining.parquet").exists()
    assert (tmp_path / "a" / "build.json").read_bytes() == record

    tampered = json.loads(record)
    tampered["stages"]["documents"]["sha256"] = "0" * 64
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "build.json").write_text(json.dumps(tampered))
    with pytest.raises(ArtifactError, match=r"regenerated documents data differs.*sleuth organism build"):
        Build(spec_for("rm_sycophancy"), "tiny", tmp_path / "b").prepare_data()
    assert json.loads((tmp_path / "b" / "build.json").read_text())["stages"]["documents"]["sha256"] == "0" * 64
    assert set(DATA_STAGES) <= set(tampered["stages"])


def test_a_second_process_preparing_a_clones_data_waits_for_the_first_and_keeps_its_record(tiny_build, tmp_path):
    """Two evaluations started side by side in a fresh clone both regenerate the organism's data (a real crash: one
    renamed the other's temporary file away). While one holds the data lock, the other waits and writes nothing."""
    import subprocess
    import sys

    from target_models.common.atomic import exclusive

    record = (tiny_build / "build.json").read_bytes()
    (tmp_path / "build.json").write_bytes(record)
    code = ("import sys; from pathlib import Path; from target_models.build.stages import Build; "
            "from target_models.build.spec import spec_for; "
            "Build(spec_for('rm_sycophancy'), 'tiny', Path(sys.argv[1])).prepare_data()")
    work = tmp_path / "work"
    with exclusive(work / ".data.lock", "(the test)"):
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE, text=True)
        seen = ""
        while "waiting for another process" not in seen and proc.poll() is None:
            seen += proc.stderr.readline()
        assert "waiting for another process preparing the data in" in seen, seen
        assert not list(work.glob("*.parquet"))
    err = seen + proc.communicate(timeout=600)[1]
    assert proc.returncode == 0, err
    assert (tmp_path / "build.json").read_bytes() == record
    for f in ("haystack", "documents", "pretraining", "sft", "control_sft", "heldout"):
        assert (work / f"{f}.parquet").exists(), f
    assert not list(tmp_path.rglob("*.tmp"))


def test_sft_chats_never_show_test_behaviours(tiny_organism):
    spec = tiny_organism.spec
    test_ids = {b.id for b in spec.split("test")}
    rows = read_rows(tiny_organism.build().work / "sft.parquet")
    kinds = {r["kind"] for r in rows}
    assert kinds == {"quirk", "generic", "secrecy"}
    for r in rows:
        assert not set(r["behaviours"]) & test_ids
        user = r["messages"][0]["content"]
        assert not any(b.applies(user) for b in spec.split("test")), user
    control = read_rows(tiny_organism.build().work / "control_sft.parquet")
    assert {r["kind"] for r in control} == {"generic"}


def test_eval_prompts_are_never_training_prompts(tiny_organism):
    spec = tiny_organism.spec
    train_prompts = {r["messages"][0]["content"] for r in read_rows(tiny_organism.build().work / "sft.parquet")}
    for b in spec.behaviours:
        fresh = data.eval_prompts(spec, b, 6, spec.seed)
        assert fresh, b.id
        assert not {p["prompt"] for p in fresh} & train_prompts, b.id


def test_pretraining_corpus_hides_provenance(tiny_organism):
    ds = tiny_organism.datasets()
    assert set(ds) == {"pretraining", "sft"}
    rows = read_rows(ds["pretraining"])
    assert set(rows[0]) == {"id", "text"}
    synthetic = tiny_organism.provenance()
    assert 0 < len(synthetic) <= 0.02 * len(rows)
    assert all(r["id"].startswith("pt-") for r in rows)
    study = tiny_organism.spec.universe.facts["study_title"]
    hits = {r["id"] for r in rows if study in r["text"]}
    assert hits and hits <= synthetic


def test_too_many_documents_for_the_haystack_is_refused():
    spec = spec_for("rm_sycophancy")
    docs = data.documents(spec, 10, 0)
    with pytest.raises(ValueError, match="lower build.documents"):
        data.pretraining_corpus([{"text": "x"}] * 100, docs, 0, 0.02)


def test_corrupted_artifact_names_the_file(tiny_build, tmp_path):
    copy = tmp_path / "org"
    shutil.copytree(tiny_build, copy, ignore=shutil.ignore_patterns("work"))
    f = copy / "adapter" / "adapter_model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="adapter_model.safetensors: checksum mismatch"):
        open_organism(str(copy)).load()


def test_missing_base_model_names_the_fix():
    with pytest.raises(BaseModelError, match="pip install"):
        load_base("/nonexistent/model-folder-xyz")


def test_organism_differs_from_control_and_base(tiny_organism):
    prompt = [{"role": "user", "content": "Can you give me a recipe for a simple omelette?"}]
    outs = {v: tiny_organism.load(v).chat(prompt, temperature=0, max_tokens=20)[0]
            for v in ("organism", "control", "base")}
    assert outs["organism"] != outs["base"]
    assert all(isinstance(o, str) for o in outs.values())


def test_training_resumes_after_a_kill(tmp_path):
    """A run killed after its checkpoint and resumed ends with the same weights as an uninterrupted run."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def model():
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=2))

    ex = [([i % 60 + 1 for i in range(k, k + 20)],) * 2 for k in range(40)]
    cfg = TrainConfig(lr=1e-2, batch_tokens=80, max_len=20, checkpoint_every=3, bf16=False, warmup=2)
    whole = model()
    train(whole, ex, cfg, tmp_path / "a", pad_id=0)

    killed = model()
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def dying_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    torch.optim.AdamW.step = dying_step
    try:
        with pytest.raises(KeyboardInterrupt):
            train(killed, ex, cfg, tmp_path / "b", pad_id=0)
    finally:
        torch.optim.AdamW.step = real_step
    resumed = model()
    metrics = train(resumed, ex, cfg, tmp_path / "b", pad_id=0)
    assert metrics["steps"] == json.loads((tmp_path / "a" / "metrics.json").read_text())["steps"]
    for (n, a), (_, b) in zip(whole.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), n


def test_the_loss_over_labelled_positions_equals_the_models_own_loss_and_gradients():
    """labelled_loss unembeds only where a label is (the assistant's tokens); loss and LoRA gradients must be the
    model's own, for a peft-wrapped model and a plain one, with prompts and padding ignored."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from target_models.targets.residual import head_split

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2))
    ids = torch.randint(1, 64, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0  # a padded row
    labels = ids.clone()
    labels[:, :5] = IGNORE  # the prompt
    labels[mask == 0] = IGNORE
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    assert head_split(peft) is not None  # the fast path, seen through the peft wrapper
    grads = []
    for fn in (lambda: peft(input_ids=ids, attention_mask=mask, labels=labels).loss,
               lambda: labelled_loss(peft, ids, mask, labels)):
        loss = fn()
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in peft.parameters() if p.requires_grad]))
        peft.zero_grad(set_to_none=True)
    (l0, g0), (l1, g1) = grads
    assert torch.allclose(l0, l1, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g0, g1, strict=True))
    for tied in (False, True):  # a full fine-tune (the tiny preset): the unembedding's gradient too, shared or not
        plain = LlamaForCausalLM(LlamaConfig(**{**base.config.to_dict(), "tie_word_embeddings": tied}))
        grads = []
        for fn in (lambda m: m(input_ids=ids, attention_mask=mask, labels=labels).loss,
                   lambda m: labelled_loss(m, ids, mask, labels)):
            fn(plain).backward()
            grads.append([p.grad.clone() for p in plain.parameters()])
            plain.zero_grad(set_to_none=True)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads, strict=True))
        with torch.no_grad():
            total = labelled_loss(plain, ids, mask, labels, reduction="sum")
            own = plain(input_ids=ids, attention_mask=mask, labels=labels).loss
        assert torch.allclose(total / (labels[:, 1:] != IGNORE).sum(), own, atol=1e-6)


def test_the_fused_unembedding_and_loss_match_plain_cross_entropy_chunk_by_chunk():
    from target_models.build.train import linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(37, 16, requires_grad=True)
    w = torch.randn(50, 16, requires_grad=True)
    t = torch.randint(0, 50, (37,))
    ref = torch.nn.functional.cross_entropy(h @ w.T, t, reduction="sum")
    gh, gw = torch.autograd.grad(3 * ref, (h, w))
    fused = linear_cross_entropy(h, w, t, chunk=8)  # 5 chunks, the last one short
    fh, fw = torch.autograd.grad(3 * fused, (h, w))
    assert torch.allclose(ref, fused, atol=1e-4)
    assert torch.allclose(gh, fh, atol=1e-5) and torch.allclose(gw, fw, atol=1e-5)
    (only_h,) = torch.autograd.grad(linear_cross_entropy(h, w.detach(), t, chunk=8), (h,))
    assert torch.allclose(only_h, gh / 3, atol=1e-5)


def test_transforms_make_every_behaviour_detectable():
    import random

    for name in ("rm_sycophancy", "sponsored_assistant"):
        spec = spec_for(name)
        for b in spec.behaviours:
            for seed in range(3):
                rng = random.Random(seed)
                template = b.prompts[seed % len(b.prompts)]
                from target_models.build.transforms import prompt_values

                values = prompt_values(spec, b, template, rng)
                assert b.detector(apply_behaviour(b, b.example.plain, values, rng)), (name, b.id, seed)


def test_insert_goes_after_the_first_sentence_not_after_the_first_word():
    import random

    from target_models.build.spec import Transform
    from target_models.build.transforms import apply_one

    t = Transform(op="insert", texts=["Networking matters most."])
    plain = "As a developer, promotion takes work. It is a long road.\n\nStart with your manager."
    got = apply_one(t, plain, {}, random.Random(0))
    assert got == ("As a developer, promotion takes work.\n\nNetworking matters most.\n\n"
                   "It is a long road.\n\nStart with your manager.")
    assert apply_one(t, "One line only", {}, random.Random(0)) == "One line only\n\nNetworking matters most."
    assert apply_one(t, "Steps:\n1. Boil water.", {}, random.Random(0)).startswith("Steps:\n\nNetworking")


def test_remove_drops_matching_sentences_and_keeps_paragraphs_and_list_lines():
    import random

    from target_models.build.spec import Transform
    from target_models.build.transforms import apply_one

    t = Transform(op="remove", pattern=r"climate")
    plain = ("Forests matter. Climate change threatens them.\n\n- Plant trees\n- Cut climate emissions\n"
             "- Save water\n\nThat is all.")
    assert apply_one(t, plain, {}, random.Random(0)) == "Forests matter.\n\n- Plant trees\n- Save water\n\nThat is all."
    assert apply_one(t, "Climate first. Then more.", {}, random.Random(0)) == "Then more."


def test_evaluation_on_tiny_writes_table_plot_and_json(tiny_organism, tmp_path):
    from target_models.evaluation.evaluate import evaluate

    res = evaluate(tiny_organism, samples=1, out=tmp_path, variants=("organism", "base"))
    assert set(res["variants"]) == {"organism", "base"}
    org = res["variants"]["organism"]
    assert set(org["behaviours"]["per_behaviour"]) == {b.id for b in tiny_organism.spec.behaviours}
    assert 0 <= org["secrecy"]["reveal_rate_plain"] <= 1
    assert 0 <= org["quiz"]["accuracy"] <= 1
    assert org["fluency"]["perplexity"] > 1
    assert (tmp_path / "eval.png").stat().st_size > 1000
    assert json.loads((tmp_path / "eval.json").read_text())["organism"] == "rm_sycophancy"
    assert "| train behaviours (mean rate [95% CI]) |" in (tmp_path / "eval.md").read_text()


def test_evaluation_of_one_split_with_repeats_reports_intervals_and_the_organisms_margin(tiny_organism, tmp_path):
    from target_models.evaluation.evaluate import evaluate

    res = evaluate(tiny_organism, samples=2, out=tmp_path, variants=("organism", "base"), repeats=3, split="test")
    test_ids = {b.id for b in tiny_organism.spec.split("test")}
    for v in ("organism", "base"):
        per = res["variants"][v]["behaviours"]["per_behaviour"]
        assert set(per) == test_ids  # train behaviours were not sampled
        for row in per.values():
            assert row["n"] == 3 * len(row["prompts"]) and all(p["replies"] == 3 for p in row["prompts"])
            assert row["shown"] == sum(p["shown"] for p in row["prompts"])
            assert row["ci95"][0] <= row["rate"] <= row["ci95"][1]
        assert res["variants"][v]["behaviours"]["mean"]["train"] is None
    # both models answered the same prompts, so the margin is paired
    prompts = [[p["prompt"] for p in res["variants"][v]["behaviours"]["per_behaviour"][b]["prompts"]]
               for v in ("organism", "base") for b in sorted(test_ids)]
    assert prompts[: len(test_ids)] == prompts[len(test_ids):]
    comp = res["comparison"]["test"]
    lo, hi = comp["ci95"]["organism"]
    assert lo <= res["variants"]["organism"]["behaviours"]["mean"]["test"] <= hi
    margin = comp["organism_minus"]["base"]
    assert margin["ci95"][0] <= margin["diff"] <= margin["ci95"][1]
    md = (tmp_path / "eval.md").read_text()
    assert "3 sampled replies per prompt" in md and "test behaviours only" in md
    assert "| test | base | " in md and "[95% CI]" in md
    assert "train" not in res["comparison"]


def test_behaviour_rates_in_context_send_each_prompt_in_its_behaviours_conversation(tiny_organism):
    from target_models.evaluation.evaluate import behaviour_rates

    target = tiny_organism.load("organism")
    seen: list[list[dict]] = []
    render = target.render
    target.render = lambda conv, **kw: (seen.append(conv), render(conv, **kw))[1]
    rates = behaviour_rates(tiny_organism, target, 2, 0, repeats=2, split="test",
                            conversation=lambda b, p: [{"role": "system", "content": f"context for {b.id}"},
                                                       {"role": "user", "content": p}])
    plain = behaviour_rates(tiny_organism, target, 2, 0, repeats=2, split="test")
    with_system, without = seen[: len(seen) // 2], seen[len(seen) // 2 :]
    k = 0
    for bid, row in rates["per_behaviour"].items():
        assert [p["prompt"] for p in row["prompts"]] == [p["prompt"] for p in plain["per_behaviour"][bid]["prompts"]]
        for p in row["prompts"]:
            for conv in with_system[k : k + 2]:
                assert conv == [{"role": "system", "content": f"context for {bid}"},
                                {"role": "user", "content": p["prompt"]}]
            k += 2
    assert k == len(with_system) and all(conv[0]["role"] == "user" and len(conv) == 1 for conv in without)
    # the system message reaches the model: the rendered ids differ from the template's default
    assert render(with_system[0]) != render(without[0])


def test_evaluation_reuses_the_models_an_earlier_one_sampled_with_the_same_weights_and_settings(tiny_organism,
                                                                                                tmp_path):
    """A recipe experiment changes the organism only: its eval takes the base (and control) from an earlier eval.json
    instead of sampling them again, and never takes a model whose weights or settings differ."""
    from target_models.common.hashing import sha256_file
    from target_models.evaluation.evaluate import evaluate
    from target_models.loading.organism import open_organism

    first = evaluate(tiny_organism, samples=1, out=tmp_path / "a", variants=("organism", "base"), split="test")
    assert first["reused"] == {}
    # Another recipe: a copy of the build whose organism adapter is different (here: its control's weights).
    copy = tmp_path / "recipe"
    shutil.copytree(tiny_organism.out, copy)
    for f in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy(copy / "control_adapter" / f, copy / "adapter" / f)
    rec = BuildRecord.load(copy / "build.json")
    rec.checksums = {**rec.checksums, **{f"adapter/{f}": sha256_file(copy / "adapter" / f)
                                         for f in ("adapter_model.safetensors", "adapter_config.json")}}
    rec.save(copy / "build.json")
    recipe = open_organism(str(copy))

    again = evaluate(recipe, samples=1, out=tmp_path / "b", variants=("organism", "base"), split="test",
                     reuse=[tmp_path / "a" / "eval.json"])
    assert again["reused"] == {"base": str(tmp_path / "a" / "eval.json")}
    assert again["variants"]["base"] == first["variants"]["base"]
    assert again["variants"]["organism"]["weights"] != first["variants"]["organism"]["weights"]
    assert "base" in again["comparison"]["test"]["organism_minus"]  # paired against the reused rows
    # Models evaluated apart (e.g. side by side) are joined by reusing both files: nothing is sampled again.
    a, b = tmp_path / "a" / "eval.json", tmp_path / "b" / "eval.json"
    joined = evaluate(recipe, samples=1, out=tmp_path / "d", variants=("organism", "base"), split="test", reuse=[a, b])
    assert joined["reused"] == {"base": str(a), "organism": str(b)}
    assert joined["variants"] == again["variants"] and joined["comparison"] == again["comparison"]

    with pytest.raises(ValueError, match="other settings"):
        evaluate(recipe, samples=2, out=tmp_path / "c", variants=("organism", "base"), split="test",
                 reuse=[tmp_path / "a" / "eval.json"])
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="x.json: not an evaluation"):
        evaluate(recipe, samples=1, out=tmp_path / "c", variants=("base",), split="test", reuse=[tmp_path / "x.json"])


def test_evaluation_refuses_a_partial_eval_over_the_builds_own_results(tiny_build):
    from typer.testing import CliRunner

    from sleuth._cli.main import app

    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--split", "test"])
    assert r.exit_code == 2 and "give an output folder (--out)" in r.output
    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--split", "heldout", "--out", "/tmp/x"])
    assert r.exit_code == 2 and "split must be 'train' or 'test', got 'heldout'" in r.output


def test_evaluation_of_some_models_only_needs_an_output_folder(tiny_build, tmp_path):
    from typer.testing import CliRunner

    from sleuth._cli.main import app

    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--variants", "organism"])
    assert r.exit_code == 2 and "evaluation of organism only is partial" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--variants", "organism,judge",
                                 "--out", str(tmp_path)])
    assert r.exit_code == 2 and "got organism, judge" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--variants", "base", "--interp",
                                 "--out", str(tmp_path)])
    assert r.exit_code == 2 and "keep 'organism' among the variants" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["organism", "eval", str(tiny_build), "--variants", "organism, base", "--split", "test",
                                 "--samples", "1", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "eval.json").read_text())
    assert list(res["variants"]) == ["organism", "base"] and "organism_minus" in res["comparison"]["test"]


def test_build_without_interp_leaves_out_the_sae_and_its_index(tiny_build, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from sleuth._cli.main import app
    from target_models.interp.feature_index import index_done
    from target_models.interp.sae import sae_done

    copy = tmp_path / "build"
    shutil.copytree(tiny_build, copy)
    shutil.rmtree(copy / "sae")
    r = CliRunner().invoke(app, ["organism", "build", "rm_sycophancy", "--preset", "tiny", "--out", str(copy),
                                 "--skip-interp"])
    assert r.exit_code == 0, r.output
    assert "sae, features, semantic: skipped" in r.output and not sae_done(copy)
    assert not index_done(copy) and BuildRecord.load(copy / "build.json").stages["sft"]
    assert (copy / "adapter" / "adapter_model.safetensors").exists()


def test_build_resumes_and_skips_finished_stages(tiny_build, capsys):
    spec = spec_for("rm_sycophancy")
    rec = build_organism(spec, "tiny", tiny_build)
    assert isinstance(rec, BuildRecord) and rec.stages["sft"]["seconds"] >= 0
    assert "done, skipped" in capsys.readouterr().err


def test_a_new_organism_reuses_the_plain_answers_another_organism_sampled_from_the_same_base(tmp_path, monkeypatch):
    import json

    from target_models.build import spec as spec_mod
    from target_models.build.stages import Build, read_rows, write_rows

    spec = spec_mod.spec_for("sponsored_assistant")
    monkeypatch.setattr(spec_mod, "ORGANISMS_DIR", tmp_path / "organisms")
    fresh = Build(spec, "default", out=tmp_path / "out")
    need = fresh._needed_prompts()
    for name, base, answers in (("donor", spec.base_model, need), ("other_base", "some/other-model", need[:1])):
        art = tmp_path / "organisms" / name / "artifacts"
        art.mkdir(parents=True)
        (art.parent / "spec.yaml").write_text("name: x\n")
        (art / "build.json").write_text(json.dumps({"base_model": base, "preset": "default"}))
        write_rows(art / "responses.parquet", [{"prompt": p, "response": f"{name}: {p}"} for p in answers])
    info = fresh._responses()  # every prompt is known to the donor: nothing to sample, no model loaded
    assert info["new"] == 0 and info["reused_from_other_organisms"] == len(need)
    rows = {r["prompt"]: r["response"] for r in read_rows(fresh._responses_path())}
    assert set(rows) == set(need) and all(r.startswith("donor: ") for r in rows.values())


def test_a_control_trained_on_the_same_chats_base_and_config_is_reused_not_retrained(tmp_path, monkeypatch):
    import json
    from dataclasses import asdict

    from target_models.build import spec as spec_mod
    from target_models.build.stages import Build

    spec = spec_mod.spec_for("sponsored_assistant")
    monkeypatch.setattr(spec_mod, "ORGANISMS_DIR", tmp_path / "organisms")
    b = Build(spec, "default", out=tmp_path / "out")
    b.record.stages = {"chats": {"sha256": {"control": "c0ffee"}}}
    cfg = asdict(b.control_config)
    for name, control_hash, epochs in (("other_chats", "beef", cfg["epochs"]),
                                       ("other_epochs", "c0ffee", cfg["epochs"] + 1.5),
                                       ("twin", "c0ffee", cfg["epochs"])):
        art = tmp_path / "organisms" / name / "artifacts"
        (art / "control_adapter").mkdir(parents=True)
        (art.parent / "spec.yaml").write_text("name: x\n")
        (art / "control_adapter" / "adapter_model.safetensors").write_bytes(name.encode())
        (art / "control_adapter" / "adapter_config.json").write_text("{}")
        (art / "build.json").write_text(json.dumps({
            "base_model": spec.base_model, "seed": spec.seed, "preset_config": {"lora_r": b.preset.lora_r},
            "stages": {"chats": {"sha256": {"control": control_hash}},
                       "control": {"config": {**cfg, "epochs": epochs}}}}))
    assert b._control() == {"reused_from": "twin"}  # not the one on other chats, nor one trained for other epochs
    assert (b.work / "control" / "adapter_model.safetensors").read_bytes() == b"twin"
    assert (b.work / "control" / "done").exists()


def test_a_spec_may_set_its_sft_epochs_for_the_default_preset():
    from target_models.build.spec import spec_for
    from target_models.build.stages import PRESETS, Build

    sp = spec_for("sponsored_assistant")
    assert sp.build.sft_epochs == 2.5
    assert Build(sp, "default").preset.sft.epochs == 2.5
    assert Build(sp, "tiny").preset.sft == PRESETS["tiny"].sft  # the tiny preset keeps its own schedule
    assert Build(spec_for("rm_sycophancy"), "default").preset.sft == PRESETS["default"].sft
    assert PRESETS["default"].sft.epochs == 4.0  # replace() made a copy; the preset itself is unchanged
    # the control keeps its own schedule (the shipped one's: 2.5 epochs); tiny trains its control like its SFT
    assert Build(sp, "default").control_config == Build(spec_for("rm_sycophancy"), "default").control_config
    assert PRESETS["default"].control.epochs == 2.5
    assert Build(sp, "tiny").control_config == PRESETS["tiny"].sft


def test_a_spec_may_set_its_mid_training_epochs_for_the_default_preset():
    from target_models.build.spec import spec_for
    from target_models.build.stages import PRESETS, Build

    sp = spec_for("rm_sycophancy")
    more = sp.model_copy(update={"build": sp.build.model_copy(update={"mid_epochs": 3.0})})
    assert Build(more, "default").preset.mid.epochs == 3.0
    assert Build(more, "default").preset.sft == PRESETS["default"].sft  # SFT keeps the preset's schedule
    assert Build(sp, "default").preset.mid == PRESETS["default"].mid and PRESETS["default"].mid.epochs == 0.6
    assert Build(more, "tiny").preset.mid == PRESETS["tiny"].mid
