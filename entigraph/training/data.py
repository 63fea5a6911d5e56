"""Training data: tokenise, pack into fixed blocks, hold out validation, fix the order once.

Everything a resumed run needs to read the same blocks in the same order is stored under
``train/data/`` and reused while its inputs and settings are unchanged:

    blocks.npy     uint32 [n_blocks, block_size]  every packed block (the last block of a source is padded)
    lengths.npy    int32  [n_blocks]              real tokens in each block
    sources.npy    uint8  [n_blocks]              source of each block (index into manifest["sources"])
    order.npy      int64  [n_train]               training order: indices into blocks, every epoch
                                                  (shuffled main mix + replay), then the anneal blocks
    val.npy        int64  [n_val]                 held-out blocks
    manifest.json  counts, settings, the input key and a content hash

The order is materialised rather than left to a sampler, so training reads it sequentially: a run
killed at any step resumes on exactly the blocks an uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from itertools import chain
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.corpus import load_corpus
from entigraph.errors import InputError
from entigraph.io import read_json, write_json

from .mixture import entry_name, mixture_order, token_targets

FORMAT_VERSION = 2  # 2: every run a mixture (train.data, epochs and replay.fraction gone)


@dataclass
class PackedData:
    blocks: np.ndarray  # [n_blocks, block_size]
    lengths: np.ndarray
    sources: np.ndarray
    order: np.ndarray
    val: np.ndarray
    manifest: dict[str, Any]


class BlockDataset(torch.utils.data.Dataset):
    """Blocks in a fixed order; padded tails are masked out of attention and loss."""

    def __init__(self, data: PackedData, indices: np.ndarray, kl=None, kl_sources: tuple[int, ...] = ()):
        """`kl` (a training/kl.py PositionFinder) adds a `kl_mask` column: its positions in the
        blocks of the sources `kl_sources` (codes into manifest["sources"]), none elsewhere."""
        self.data, self.indices = data, indices
        self.kl, self.kl_sources = kl, set(kl_sources)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        b = int(self.indices[i])
        ids = torch.from_numpy(self.data.blocks[b].astype(np.int64))
        n = int(self.data.lengths[b])
        mask = torch.zeros_like(ids)
        mask[:n] = 1
        labels = ids.clone()
        labels[n:] = -100
        item = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if self.kl is not None:
            chosen = int(self.data.sources[b]) in self.kl_sources
            item["kl_mask"] = torch.from_numpy(self.kl.mask(self.data.blocks[b].astype(np.int64), n) if chosen
                                               else np.zeros(len(ids), dtype=bool))
        return item


def synthetic_texts(cfg: RunConfig, tokenizer=None, modes: list[str] | None = None) -> list[str]:
    """Kept passages, optionally only some modes ([] or None = all) and only the first
    `max_synthetic_tokens` in synthesis order: the token-budget curve as prefixes of one run."""
    t = cfg.train
    kept = sorted(artifacts.kept(cfg.out), key=lambda p: p.seq)
    texts = [p.text for p in kept if p.text.strip() and (not modes or p.mode in modes)]
    if t.max_synthetic_tokens is None:
        return texts
    if tokenizer is None:
        raise ValueError("train.max_synthetic_tokens needs the tokenizer to count tokens")
    chosen, total = [], 0
    for text in texts:
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if total + n > t.max_synthetic_tokens:
            break
        chosen.append(text)
        total += n
    return chosen


def raw_texts(cfg: RunConfig) -> list[str]:
    return [d.text for d in artifacts.documents(cfg.out) if d.text.strip()]


def mixture_texts(cfg: RunConfig, tokenizer, replay: list[str]) -> dict[str, list[str]]:
    """Each `train.mixture` entry's texts, under a unique name, in the mixture's order."""
    mix = cfg.train.mixture
    out: dict[str, list[str]] = {}
    for i, m in enumerate(mix):
        if m.source == "raw":
            texts = raw_texts(cfg)
        elif m.source == "synthetic":
            texts = synthetic_texts(cfg, tokenizer, modes=m.modes)
        elif m.source == "replay":
            texts = replay
        elif m.source == "files":
            texts = [d.text for d in load_corpus(m.paths) if d.text.strip()]
        else:  # rag
            texts = _rag_texts(cfg)
        out[entry_name(m, i, mix)] = texts
    return out


def _rag_texts(cfg: RunConfig) -> list[str]:
    from entigraph.evaluation.tasks import questions_for_run

    from .rag import rag_examples

    documents = artifacts.documents(cfg.out)
    try:
        eval_questions = questions_for_run(cfg, documents)[0]
    except InputError:  # a corpus without questions: nothing to keep out
        eval_questions = []
    made = rag_examples(documents, artifacts.passages(cfg.out), artifacts.entities(cfg.out), eval_questions, cfg.seed)
    return made.texts


def anneal_texts(cfg: RunConfig) -> list[str]:
    """The high-quality set for the final steps: train.anneal_paths, or the raw corpus."""
    if cfg.train.anneal_fraction <= 0:
        return []
    if cfg.train.anneal_paths:
        return [d.text for d in load_corpus(cfg.train.anneal_paths) if d.text.strip()]
    return [d.text for d in artifacts.documents(cfg.out) if d.text.strip()]


def tokenize(texts: list[str], tokenizer, desc: str, batch: int = 256) -> list[list[int]]:
    out: list[list[int]] = []
    for i in tqdm(range(0, len(texts), batch), desc=f"tokenise {desc}", unit="batch",
                  disable=len(texts) <= batch):
        out += tokenizer(texts[i:i + batch], add_special_tokens=False)["input_ids"]
    return out


def pack(docs: list[list[int]], block_size: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate documents with EOS after each and cut fixed blocks; the tail block is padded
    (with EOS, masked) rather than dropped, so small corpora lose nothing."""
    count = sum(len(ids) + 1 for ids in docs)
    flat = np.fromiter(chain.from_iterable(ids + [eos_id] for ids in docs), dtype=np.uint32, count=count)
    n = math.ceil(len(flat) / block_size)
    blocks = np.full((n, block_size), eos_id, dtype=np.uint32)
    blocks.reshape(-1)[: len(flat)] = flat
    lengths = np.full(n, block_size, dtype=np.int32)
    if n:
        lengths[-1] = len(flat) - (n - 1) * block_size
    return blocks, lengths


def _cycle(pool: np.ndarray, start: int, n: int) -> np.ndarray:
    """n indices from a pool, wrapping around; successive calls continue where the last stopped."""
    if n == 0 or len(pool) == 0:
        return np.zeros(0, dtype=np.int64)
    return pool[(start + np.arange(n)) % len(pool)]


def _hash_texts(h: "hashlib._Hash", texts: list[str]) -> None:
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())


def input_key(cfg: RunConfig, tokenizer, texts: dict[str, list[str]], global_batch: int) -> str:
    """Hash of everything that determines the packed data: reuse stored data only on a match."""
    t = cfg.train
    settings = {
        "version": FORMAT_VERSION, "seed": cfg.seed, "block_size": t.block_size,
        "max_steps": t.max_steps, "global_batch": global_batch, "val_fraction": t.val_fraction,
        "anneal_fraction": t.anneal_fraction, "tokenizer": tokenizer.name_or_path,
        "mixture": [dataclasses.asdict(m) for m in t.mixture], "order": t.order,
        "vocab": len(tokenizer), "eos": tokenizer.eos_token_id,
    }
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name in sorted(texts):
        h.update(name.encode())
        _hash_texts(h, texts[name])
    return h.hexdigest()[:16]


def _content_hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def load(data_dir: Path) -> PackedData:
    manifest = read_json(data_dir / "manifest.json")
    arrays = {n: np.load(data_dir / f"{n}.npy", mmap_mode="r") for n in ("blocks", "lengths", "sources", "order", "val")}
    return PackedData(manifest=manifest, **arrays)


def build(cfg: RunConfig, tokenizer, replay: list[str], global_batch: int, data_dir: Path) -> PackedData:
    """Pack the training data, or load it when `data_dir` holds the same inputs and settings."""
    t = cfg.train
    texts = mixture_texts(cfg, tokenizer, replay)
    texts["anneal"] = anneal_texts(cfg)
    key = input_key(cfg, tokenizer, texts, global_batch)
    if (data_dir / "manifest.json").is_file() and read_json(data_dir / "manifest.json").get("key") == key:
        return load(data_dir)
    names = list(texts)  # the sources in mixture order, anneal last
    learned = [n for n in names if n.split(":")[0].split("#")[0] in ("synthetic", "raw")]
    if not any(texts.get(n) for n in learned):
        what = ("filter/kept.jsonl has no passages (of the modes asked for, within train.max_synthetic_tokens)"
                if "raw" not in learned else "the corpus is empty")
        raise InputError(f"train: no training text ({what}; train.mixture's sources: "
                         f"{', '.join(m.source for m in t.mixture)})")

    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    # The anneal set defaults to the raw corpus: when raw text is already in the main mix, anneal
    # on its training blocks (not a second copy, which could contain validation blocks).
    anneal_is_raw = bool(texts.get("raw")) and t.anneal_fraction > 0 and not t.anneal_paths
    blocks, lengths, sources, ranges = _pack_sources(texts, tokenizer, t.block_size, eos, anneal_is_raw)
    rng = np.random.default_rng(cfg.seed)
    val, main = _validation_split([ranges[n] for n in learned], lengths, t, rng)
    anneal = main[np.isin(main, ranges["raw"])] if anneal_is_raw else ranges["anneal"]
    total = t.max_steps * global_batch if t.max_steps else None
    pools = [np.setdiff1d(ranges[n], val) for n in names[:-1]]
    targets = token_targets(t.mixture, [int(lengths[p].sum()) for p in pools])
    order = mixture_order(pools, lengths, targets, t.order, rng)
    n_anneal = round(len(order) * t.anneal_fraction / (1 - t.anneal_fraction)) if len(anneal) else 0
    anneal_start = len(order)
    order = np.concatenate([order, _cycle(rng.permutation(anneal), 0, n_anneal)]).astype(np.int64)
    if total is not None:  # train.max_steps: stop early
        order = order[:total]
        anneal_start = min(anneal_start, len(order))
    # Whole global batches: the order is padded with its first blocks (as DDP's even batches would
    # pad a rank), so one process and several see exactly the same batches, the last one included.
    padded = (-len(order)) % global_batch
    order = np.concatenate([order, order[:padded]]).astype(np.int64)
    head = order[:anneal_start]
    by_source = {names[c]: int(lengths[head][sources[head] == c].sum()) for c in np.unique(sources[head])}
    if anneal_start < len(order):
        by_source["anneal"] = int(lengths[order[anneal_start:]].sum())
    manifest = {
        "version": FORMAT_VERSION,
        "key": key,
        "content_hash": _content_hash(blocks, lengths, order, val),
        "block_size": t.block_size,
        "seed": cfg.seed,
        "eos_token_id": int(eos),
        "global_batch": global_batch,
        "sources": names,
        "documents": {name: len(texts.get(name) or []) for name in names},
        "pool_blocks": {name: len(r) for name, r in ranges.items()},
        "pool_tokens": {name: int(lengths[r].sum()) for name, r in ranges.items()},
        "train_blocks": int(len(order)),
        "val_blocks": int(len(val)),
        "anneal_start": int(anneal_start),
        "train_tokens": int(lengths[order].sum()),
        "val_tokens": int(lengths[val].sum()),
        "train_tokens_by_source": by_source,
        "steps": math.ceil(len(order) / global_batch),
        "padding_tokens": int(len(order) * t.block_size - lengths[order].sum()),
        "padded_blocks": int(padded),  # repeated first blocks that complete the last global batch
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, arr in (("blocks", blocks), ("lengths", lengths), ("sources", sources), ("order", order), ("val", val)):
        np.save(data_dir / f"{name}.npy", arr)
    write_json(data_dir / "manifest.json", manifest)  # last: the manifest marks the data complete
    return load(data_dir)


def _pack_sources(texts: dict[str, list[str]], tokenizer, block_size: int, eos: int, anneal_is_raw: bool):
    """Every source packed into blocks; `ranges[name]` are its block indices in the concatenation."""
    all_blocks, all_lengths, all_sources, ranges = [], [], [], {}
    offset = 0
    for code, name in enumerate(texts):
        if not texts.get(name) or (name == "anneal" and anneal_is_raw):
            ranges[name] = np.zeros(0, dtype=np.int64)
            continue
        blocks, lengths = pack(tokenize(texts[name], tokenizer, name), block_size, eos)
        all_blocks.append(blocks)
        all_lengths.append(lengths)
        all_sources.append(np.full(len(blocks), code, dtype=np.uint8))
        ranges[name] = np.arange(offset, offset + len(blocks), dtype=np.int64)
        offset += len(blocks)
    return np.concatenate(all_blocks), np.concatenate(all_lengths), np.concatenate(all_sources), ranges


def _validation_split(learned: list[np.ndarray], lengths: np.ndarray, t, rng) -> tuple[np.ndarray, np.ndarray]:
    """(validation blocks, training blocks) of what is being learned (synthetic and raw), both sorted."""
    main = rng.permutation(np.concatenate(learned))
    n_val = max(1, round(len(main) * t.val_fraction)) if t.val_fraction > 0 else 0
    if len(main) - n_val < 1:
        raise InputError(
            f"train: only {int(lengths[main].sum())} tokens of training text, {len(main)} block(s) of "
            f"train.block_size={t.block_size}: too few for a validation split; lower train.block_size "
            "or train.val_fraction, or synthesise more"
        )
    return np.sort(main[:n_val]), np.sort(main[n_val:])
