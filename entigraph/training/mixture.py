"""Training mixtures: which texts a run trains on, and how many tokens of each.

`train.mixture` lists sources. Each takes either `epochs` (passes over its own tokens) or `share`
(that fraction of all training tokens), so a mixture reads like the recipe it is:

    mixture:
      - {source: synthetic, modes: [qa, reading], epochs: 1}   # grounded QA first ...
      - {source: raw, epochs: 4}                               # ... then the documents
      - {source: rag, share: 0.1}                              # reading practice with retrieved chunks
      - {source: replay, share: 0.1}                           # general text against forgetting
    order: sequential                                          # in list order; `shuffled` mixes all

With sources of `epochs` e_s over t_s tokens and shares s_j, the run trains on
T = sum(e_s * t_s) / (1 - sum(s_j)) tokens; source s gets e_s * t_s and source j gets s_j * T,
each to within one block (whole blocks are drawn from the source's shuffled pool, cycling).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from entigraph.config import MixtureSource
from entigraph.errors import ConfigError


def entry_name(m: MixtureSource, index: int, all_entries: list[MixtureSource]) -> str:
    """A readable, unique name per entry: `raw`, `synthetic`, `synthetic:qa+reading`, `files#2`."""
    name = m.source + (":" + "+".join(m.modes) if m.modes else "")
    same = [i for i, o in enumerate(all_entries) if o.source == m.source and o.modes == m.modes]
    return name if len(same) == 1 else f"{name}#{same.index(index) + 1}"


def token_targets(entries: list[MixtureSource], pool_tokens: list[int]) -> list[int]:
    """Tokens each entry contributes (see the module docstring for the arithmetic)."""
    shares = sum(m.share or 0.0 for m in entries)
    if shares >= 1:
        raise ConfigError(f"train.mixture: the shares add up to {shares:g}; they must stay below 1")
    fixed = sum(m.epochs * t for m, t in zip(entries, pool_tokens) if m.epochs is not None)
    if fixed == 0:
        raise ConfigError("train.mixture: no source with `epochs` has any text, so the shares have nothing "
                          "to be a share of")
    total = fixed / (1 - shares)
    return [round(m.epochs * t) if m.epochs is not None else round(m.share * total)
            for m, t in zip(entries, pool_tokens)]


def _cycled(pool: np.ndarray, rng: np.random.Generator) -> Iterator[int]:
    while True:  # a fresh shuffle each pass over the pool
        yield from (int(b) for b in rng.permutation(pool))


def draw(pool: np.ndarray, lengths: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Whole blocks from `pool` until `target` tokens: it stops on the nearer side of the target,
    so the count ends within one block of it."""
    picked: list[int] = []
    have = 0
    if target > 0 and len(pool):
        for b in _cycled(pool, rng):
            if have >= target or (picked and have + lengths[b] / 2 > target):
                break
            picked.append(b)
            have += int(lengths[b])
    return np.asarray(picked, dtype=np.int64)


def mixture_order(pools: list[np.ndarray], lengths: np.ndarray, targets: list[int], order: str,
                  rng: np.random.Generator) -> np.ndarray:
    """The training order over all entries: one shuffle of everything, or entry by entry."""
    drawn = [draw(p, lengths, t, rng) for p, t in zip(pools, targets)]
    joined = np.concatenate(drawn) if drawn else np.zeros(0, dtype=np.int64)
    return rng.permutation(joined) if order == "shuffled" else joined
