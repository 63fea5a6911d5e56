"""Forgetting: does the continued-pretrained model still model general text as well as the base model?

The signal is the mean token loss (negative log-likelihood, nats per token) of both models on blocks
of general text that the training never saw, compared block by block with a paired bootstrap. The
text, in order of preference:

1. ``eval.forgetting_paths``: files the user names;
2. the replay pool of this run's training data (``train/data``) minus every block the training order
   used: real held-out replay text (the QuALITY articles in configs/fictional-dev.yaml);
3. corpus documents outside the run's documents (from the end of the corpus), their ids recorded so
   a study can check that none of them is a tuning document.

Scored on ``eval.forgetting_blocks`` blocks of ``train.block_size`` tokens (the training length).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from entigraph import artifacts
from entigraph.io import read_json

from .stats import paired_bootstrap


def _chunks(texts: Sequence[str], tokenizer, block_size: int, n: int) -> list[list[int]]:
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    ids: list[int] = []
    out: list[list[int]] = []
    for t in texts:
        ids += tokenizer(t, add_special_tokens=False)["input_ids"] + [eos]
        while len(ids) >= block_size and len(out) < n:
            out.append(ids[:block_size])
            ids = ids[block_size:]
        if len(out) >= n:
            break
    if len(out) < n and len(ids) > 16:
        out.append(ids)
    return out


def held_out_replay(out: Path, n: int, seed: int) -> tuple[list[list[int]], dict] | None:
    """Replay blocks of the run's packed training data that its training order never used."""
    data = artifacts.stage_dir(out, "train") / "data"
    try:
        manifest = read_json(data / "manifest.json")
        names = list(manifest["sources"])
        blocks = np.load(data / "blocks.npy", mmap_mode="r")
        lengths = np.load(data / "lengths.npy")
        sources = np.load(data / "sources.npy")
        used = set(np.load(data / "order.npy").tolist()) | set(np.load(data / "val.npy").tolist())
    except (OSError, ValueError, KeyError):
        return None
    codes = [i for i, name in enumerate(names) if str(name).split(":")[0].split("#")[0] == "replay"]
    pool = [int(b) for b in np.flatnonzero(np.isin(sources, codes)) if int(b) not in used]
    if not pool:
        return None
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.permutation(pool)[:n].tolist())
    picked = [blocks[b][: int(lengths[b])].astype(np.int64).tolist() for b in chosen]
    total = int(sum(1 for c in sources if c in codes))
    return picked, {"source": "replay", "detail": f"{len(picked)} of the {len(pool)} replay blocks the training "
                    f"order never used ({total} replay blocks in the pool)", "pool_blocks": total}


def choose_blocks(cfg, tokenizer, documents: Sequence) -> tuple[list[list[int]], dict] | None:
    """The held-out text as token blocks, and where it came from (None: there is none)."""
    from entigraph.corpus import load_corpus

    e, n, size = cfg.eval, cfg.eval.forgetting_blocks, cfg.train.block_size
    if e.forgetting_paths:
        texts = [d.text for d in load_corpus(e.forgetting_paths) if d.text.strip()]
        return _chunks(texts, tokenizer, size, n), {"source": "files", "detail": ", ".join(e.forgetting_paths)}
    replay = held_out_replay(cfg.out, n, cfg.seed)
    if replay:
        return replay
    c = cfg.corpus
    try:
        everything = load_corpus(c.paths, c.format, c.text_field)
    except Exception:  # noqa: BLE001 - the corpus went away: nothing to score
        return None
    mine = {hashlib.sha1(d.text.encode()).hexdigest() for d in documents}
    others = [d for d in reversed(everything) if hashlib.sha1(d.text.encode()).hexdigest() not in mine]
    if not others:
        return None
    blocks, used = [], []
    for d in others:
        if len(blocks) >= n:
            break
        blocks += _chunks([d.text], tokenizer, size, n - len(blocks))
        used.append(d.doc_id)
    return blocks, {"source": "corpus", "detail": f"{len(used)} corpus documents outside the run's documents",
                    "doc_ids": used}


def block_losses(model_path: str, blocks: Sequence[Sequence[int]], device: str = "auto", dtype: str = "auto"
                 ) -> list[float]:
    """Mean token loss (nats) of each block under the model."""
    import torch
    from transformers import AutoModelForCausalLM

    from entigraph.devices import pick_device, pick_dtype

    dev = pick_device(device)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=pick_dtype(dtype, dev)).to(dev).eval()
    out = []
    try:
        with torch.inference_mode():
            for b in blocks:
                ids = torch.tensor([list(b)], device=dev)
                logits = model(input_ids=ids).logits[0, :-1].float()
                nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="mean")
                out.append(float(nll))
    finally:
        del model
    return out


def compare_losses(base: Sequence[float], cpt: Sequence[float], blocks: Sequence[Sequence[int]], source: dict,
                   resamples: int, seed: int) -> dict:
    """The forgetting entry of results.json: positive diff = the adapted model models the text worse."""
    boot = paired_bootstrap(cpt, base, resamples, seed)
    return {**source, "blocks": len(blocks), "tokens": int(sum(len(b) for b in blocks)),
            "base_loss": float(np.mean(base)), "cpt_loss": float(np.mean(cpt)),
            "diff": boot["diff"], "ci95": boot["ci95"],
            "worse_blocks": int(sum(c > b for b, c in zip(base, cpt)))}
