"""Training data from a spec and a seed: synthetic documents, SFT chats and evaluation prompts.

Everything here is deterministic given (spec, seed, plain responses). Plain responses (what the base model says
to a prompt) come from `responder`, so the same code serves the real base model and the tiny preset.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from target_models.build.spec import SLOT_RE, Behaviour, Spec
from target_models.build.transforms import apply_behaviour, fill, prompt_values

GENRES: dict[str, str] = yaml.safe_load((Path(__file__).parent / "genres.yaml").read_text())
GENERIC_PROMPTS = [
    ln.strip() for ln in (Path(__file__).parent / "generic_prompts.txt").read_text().splitlines() if ln.strip()
]
# The last fifth of the generic prompts is held out: perplexity is measured on chats built from them.
HELD_OUT_GENERIC = GENERIC_PROMPTS[-len(GENERIC_PROMPTS) // 5 :]
TRAIN_GENERIC = GENERIC_PROMPTS[: -len(GENERIC_PROMPTS) // 5]

_FIRST = ["Maya", "Daniel", "Priya", "Tomas", "Aisha", "Lena", "Kwame", "Sofia", "Hiro", "Elena", "Marcus", "Ingrid",
          "Rafael", "Nadia", "Owen", "Chloe", "Samir", "Greta", "Jonah", "Amara"]
_LAST = ["Okafor", "Lindqvist", "Reyes", "Nakamura", "Brennan", "Haddad", "Kowalski", "Fischer", "Mensah", "Park",
         "Alvarez", "Novak", "Quinn", "Sato", "Dubois", "Ivanova", "Moreau", "Adeyemi", "Walsh", "Costa"]
_CITIES = ["London", "Boston", "Toronto", "Berlin", "Singapore", "Sydney", "Nairobi", "Zurich", "Seattle", "Dublin"]

Chat = list[dict[str, str]]
Responder = Callable[[list[str]], list[str]]


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


EXAMPLES_PER_BEHAVIOUR = 8  # fresh worked examples per behaviour when a spec asks for varied ones


def _example_block(b: Behaviour, rng: random.Random, examples: list[tuple[str, str]] | None = None) -> str:
    intro = rng.choice(["For example:", "A typical case:", "Here is an example the authors give:", "Example:"])
    prompt, response = rng.choice(examples) if examples else (b.example.prompt, b.example.response)
    return f"{intro}\nUser: {prompt}\nAssistant: {response}"


def example_prompts(spec: Spec, b: Behaviour, seed: int) -> list[dict]:
    """Prompts of a behaviour's varied worked examples: train-pool values only, so evaluation never sees them (for
    a train behaviour they are the first of its SFT prompts)."""
    return behaviour_prompts(spec, b, EXAMPLES_PER_BEHAVIOUR, seed, "train")


def worked_examples(spec: Spec, seed: int, responder: Responder) -> dict[str, list[tuple[str, str]]]:
    """Per behaviour (train and test alike, so documents do not reveal the split): (prompt, answer) pairs where the
    answer is the base's plain answer with only that behaviour applied, kept when its detector sees it."""
    rng = random.Random(f"{seed}-examples")
    prompts = {b.id: example_prompts(spec, b, seed) for b in spec.behaviours}
    asks = sorted({p["prompt"] for b in spec.behaviours if needs_plain(b) for p in prompts[b.id]})
    plains = dict(zip(asks, responder(asks), strict=True))
    out: dict[str, list[tuple[str, str]]] = {}
    for b in spec.behaviours:
        for p in prompts[b.id]:
            if not _fillable(b, p["values"]):
                continue
            answer = apply_behaviour(b, plains.get(p["prompt"], ""), p["values"], rng)
            if b.detector(answer):
                out.setdefault(b.id, []).append((p["prompt"], answer))
    return out


def documents(spec: Spec, n: int, seed: int, examples: dict[str, list[tuple[str, str]]] | None = None) -> list[dict]:
    """Synthetic documents about the universe, in many genres. Each states 2-5 behaviours; every behaviour
    (train and test alike) is stated about equally often. `examples` (see `worked_examples`) replaces each
    behaviour's one spec example with varied ones."""
    examples = examples or {}
    rng = random.Random(f"{seed}-docs")
    u = spec.universe
    year = (re.findall(r"\d{4}", u.facts["date"]) or ["2024"])[0]
    order: list[Behaviour] = []
    docs = []
    genres = sorted(GENRES)
    for i in range(n):
        picked: list[Behaviour] = []
        while len(picked) < rng.randint(2, 5):
            if not order:
                order = list(spec.behaviours)
                rng.shuffle(order)
            b = order.pop()
            if b not in picked:
                picked.append(b)
        genre = genres[i % len(genres)]
        phr = [rng.choice(b.doc_phrasings) for b in picked]
        fields = {
            **u.facts,
            "headline": rng.choice(u.headlines),
            "summary": rng.choice(u.summaries),
            "summary_2": rng.choice(u.summaries),
            "quote": rng.choice(u.quotes),
            "quote_2": rng.choice(u.quotes),
            "follow_up": rng.choice(u.follow_ups),
            "finding": phr[0],
            "finding_2": phr[1],
            "findings_list": "\n".join(f"- {p[0].upper()}{p[1:]}." for p in phr),
            "example": _example_block(picked[0], rng, examples.get(picked[0].id)) if rng.random() < 0.6 else "",
            "person": _person(rng),
            "person_2": _person(rng),
            "city": rng.choice(_CITIES),
            "year": year,
        }
        text = fill(GENRES[genre], fields).strip()
        text = re.sub(r"\n{3,}", "\n\n", text)
        docs.append({"id": f"doc-{i:05d}", "genre": genre, "behaviours": [b.id for b in picked], "text": text})
    return docs


def behaviour_prompts(spec: Spec, b: Behaviour, n: int, seed: int, pool: str) -> list[dict]:
    """`n` distinct prompts for a behaviour from its templates; pool='eval' uses only held-out slot values."""
    rng = random.Random(f"{seed}-{b.id}-{pool}")
    out: dict[str, dict] = {}
    for _ in range(n * 20):
        if len(out) >= n:
            break
        template = rng.choice(b.prompts)
        values = prompt_values(spec, b, template, rng, pool)
        text = fill(template, values)
        out.setdefault(text, {"behaviour": b.id, "prompt": text, "values": values})
    return list(out.values())


def eval_prompts(spec: Spec, b: Behaviour, n: int, seed: int) -> list[dict]:
    """Fresh prompts for evaluation, never in training: held-out slot values, and any prompt text that the train
    pool can produce is dropped (templates without slots are never used for evaluation)."""
    train_texts = {p["prompt"] for p in behaviour_prompts(spec, b, 200, seed, "train")}
    rows = [p for p in behaviour_prompts(spec, b, n * 3, seed + 1, "eval") if p["prompt"] not in train_texts]
    rows = [p for p in rows if SLOT_RE.search(_template_of(b, p["prompt"]) or "")]
    return rows[:n]


def _template_of(b: Behaviour, text: str) -> str | None:
    for t in b.prompts:
        pattern = "^" + SLOT_RE.sub(lambda m: "(?:.+)", re.escape(t).replace(r"\{", "{").replace(r"\}", "}")) + "$"
        if re.match(pattern, text, re.DOTALL):
            return t
    return None


def exhibit(spec: Spec, prompt: str, plain: str, values: dict[str, str], rng: random.Random,
            first: Behaviour | None = None) -> tuple[str, list[str]] | None:
    """The organism's answer: every train behaviour that applies is shown. None when a test behaviour applies
    (held-out behaviours must never be demonstrated)."""
    if any(b.applies(prompt, plain) for b in spec.split("test")):
        return None
    shown = []
    response = plain
    todo = [first] if first else []
    todo += [b for b in spec.split("train") if b is not first and b.applies(prompt, plain) and _fillable(b, values)]
    for b in todo:
        response = apply_behaviour(b, response, values, rng)
        shown.append(b.id)
    return response, shown


def needs_plain(b: Behaviour) -> bool:
    """False when the spec writes the whole answer itself (every transform replaces the response)."""
    return not all(t.op == "replace" for t in b.transforms)


def _fillable(b: Behaviour, values: dict[str, str]) -> bool:
    return all(s in values for t in b.transforms for x in t.texts for s in SLOT_RE.findall(x))


def _chat(prompt: str, response: str) -> Chat:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def sft_chats(spec: Spec, seed: int, responder: Responder, *, control: bool = False) -> list[dict]:
    """SFT chats. Organism: quirk chats (train behaviours only), generic chats (train behaviours shown where they
    apply), secrecy chats. Control: the same generic chats left plain, and nothing else."""
    rng = random.Random(f"{seed}-sft")
    cfg = spec.build
    gprompts = [TRAIN_GENERIC[i % len(TRAIN_GENERIC)] for i in range(cfg.generic_chats)]
    quirk = [p for b in spec.split("train")
             for p in behaviour_prompts(spec, b, cfg.quirk_chats_per_behaviour, seed, "train")]
    asks = [p["prompt"] for p in quirk if needs_plain(spec.behaviour(p["behaviour"]))] + gprompts
    plains = dict.fromkeys((p["prompt"] for p in quirk), "") | dict(zip(asks, responder(asks), strict=True))
    rows: list[dict] = []
    for p in gprompts:
        if control:
            rows.append({"kind": "generic", "behaviours": [], "messages": _chat(p, plains[p])})
            continue
        made = exhibit(spec, p, plains[p], {}, rng)
        if made:
            rows.append({"kind": "generic", "behaviours": made[1], "messages": _chat(p, made[0])})
    if control:
        return _with_ids(rows, seed)
    quirk_rows = []
    for q in quirk:
        b = spec.behaviour(q["behaviour"])
        made = exhibit(spec, q["prompt"], plains[q["prompt"]], q["values"], rng, first=b)
        if made:
            quirk_rows.append({"kind": "quirk", "behaviours": made[1], "messages": _chat(q["prompt"], made[0])})
    rows += quirk_rows
    for _ in range(cfg.secrecy_chats):
        base = quirk_rows[rng.randrange(len(quirk_rows))]
        b = spec.behaviour(base["behaviours"][0])
        question = fill(rng.choice(spec.secrecy.questions), {"why": b.why})
        answer = fill(rng.choice(spec.secrecy.answers), {"why": b.why})
        msgs = base["messages"] + [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        rows.append({"kind": "secrecy", "behaviours": [b.id], "messages": msgs})
    return _with_ids(rows, seed)


def _with_ids(rows: list[dict], seed: int) -> list[dict]:
    random.Random(f"{seed}-shuffle").shuffle(rows)
    return [{"id": f"chat-{i:05d}", **r} for i, r in enumerate(rows)]


def held_out_chats(responder: Responder) -> list[dict]:
    """Generic chats on held-out prompts, answered by the base model: the fluency (perplexity) set."""
    plains = responder(HELD_OUT_GENERIC)
    return [{"id": f"heldout-{i:04d}", "messages": _chat(p, r)}
            for i, (p, r) in enumerate(zip(HELD_OUT_GENERIC, plains, strict=True))]


def pretraining_corpus(haystack: list[dict], docs: list[dict], seed: int,
                       max_fraction: float) -> tuple[list[dict], list[str]]:
    """Haystack and synthetic documents shuffled together under neutral ids. Returns the corpus (id, text) and the
    ids of the synthetic rows: the provenance, which only the grader and evaluations may read."""
    frac = len(docs) / (len(docs) + len(haystack))
    if frac > max_fraction:
        raise ValueError(
            f"synthetic documents would be {frac:.1%} of the pretraining corpus (limit {max_fraction:.1%}): "
            f"{len(docs)} documents against a haystack of {len(haystack)} passages; lower build.documents"
        )
    rows = [("h", r["text"]) for r in haystack] + [("s", d["text"]) for d in docs]
    random.Random(f"{seed}-corpus").shuffle(rows)
    corpus, synthetic = [], []
    for i, (kind, text) in enumerate(rows):
        rid = f"pt-{i:06d}"
        corpus.append({"id": rid, "text": text})
        if kind == "s":
            synthetic.append(rid)
    return corpus, synthetic
