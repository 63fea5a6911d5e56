"""Replay against forgetting: other text mixed into every epoch (train.replay).

EntiGraph replays 10 % generic pretraining text (RedPajama) so continued pretraining on a narrow
synthetic corpus does not collapse the model. Offline there is no such corpus, so ``source: self``
rehearses on text the base model writes itself before training (self-synthesised rehearsal):
generic passages from short, diverse seed prompts, made once and stored in train/data/replay.jsonl.
``source: files`` reads user-supplied txt/md/jsonl files instead.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from entigraph.config import RunConfig
from entigraph.corpus import load_corpus
from entigraph.errors import ConfigError
from entigraph.io import read_jsonl, write_jsonl

TOPICS = [
    "the water cycle", "medieval castles", "how vaccines work", "the history of printing",
    "volcanoes", "photosynthesis", "the Roman Empire", "jazz music", "honeybees", "black holes",
    "the French Revolution", "how computers store numbers", "coral reefs", "the Silk Road",
    "bread baking", "electric motors", "the human heart", "glaciers", "chess openings",
    "ancient Egypt", "rainforests", "the printing of money", "plate tectonics", "the Moon",
    "early aviation", "how rivers shape valleys", "the periodic table", "lighthouses",
    "migratory birds", "the invention of the telephone", "desert plants", "Renaissance painting",
]
FORMS = [
    "Write an encyclopedia paragraph about {}.",
    "Explain {} to a curious student.",
    "Write a short news-style article about {}.",
    "Describe {} in a few paragraphs.",
    "Write a short essay on {}.",
    "Give a brief history of {}.",
]
SAMPLING = {"do_sample": True, "temperature": 0.8, "top_p": 0.95, "repetition_penalty": 1.1}


def seed_prompts(n: int, seed: int) -> list[str]:
    """n distinct (form, topic) prompts, in a seed-determined order."""
    pairs = [(f, t) for f in FORMS for t in TOPICS]
    random.Random(seed).shuffle(pairs)
    return [pairs[i % len(pairs)][0].format(pairs[i % len(pairs)][1]) for i in range(n)]


def _render(tokenizer, prompt: str) -> str:
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt + "\n\n"  # a base model continues the instruction as plain text


@torch.no_grad()
def self_synthesise(model, tokenizer, prompts: list[str], seed: int, max_new_tokens: int,
                    batch_size: int = 16) -> list[dict]:
    """Sample one passage per prompt from the base model (before any training)."""
    torch.manual_seed(seed)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    rows = []
    try:
        for i in tqdm(range(0, len(prompts), batch_size), desc="replay: self-synthesise", unit="batch"):
            batch = prompts[i:i + batch_size]
            enc = tokenizer([_render(tokenizer, p) for p in batch], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=pad_id, **SAMPLING)
            for prompt, ids in zip(batch, out[:, enc["input_ids"].shape[1]:]):
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                rows.append({"prompt": prompt, "text": text, "tokens": int((ids != pad_id).sum())})
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return rows


def replay_texts(cfg: RunConfig, data_dir: Path, tokenizer=None,
                 load_model: Callable[[], Any] | None = None) -> tuple[list[str], dict]:
    """The replay pool and a note on where it came from. The base model is loaded (`load_model`)
    only to self-synthesise; stored passages are reused while model, count and seed match."""
    r = cfg.train.replay
    if not any(m.source == "replay" for m in cfg.train.mixture) or r.source == "none":
        return [], {"source": "none"}
    if r.source == "files":
        if not r.paths:
            raise ConfigError("train.replay.source is 'files' but train.replay.paths is empty")
        texts = [d.text for d in load_corpus(r.paths) if d.text.strip()]
        return texts, {"source": "files", "paths": list(r.paths), "documents": len(texts)}

    path = data_dir / "replay.jsonl"
    meta = {"source": "self", "model": cfg.models.base, "passages": r.self_passages,
            "max_new_tokens": r.self_max_new_tokens, "seed": cfg.seed}
    rows = list(read_jsonl(path)) if path.is_file() else []
    if not rows or rows[0].get("meta") != meta:
        if load_model is None or tokenizer is None:
            raise RuntimeError("self-synthesised replay needs the base model and its tokenizer")
        rows = self_synthesise(load_model(), tokenizer, seed_prompts(r.self_passages, cfg.seed), cfg.seed,
                               r.self_max_new_tokens)
        rows = [{"meta": meta, **row} for row in rows]
        write_jsonl(path, rows)
    texts = [row["text"] for row in rows if row["text"].strip()]
    return texts, {**meta, "path": str(path), "documents": len(texts)}
