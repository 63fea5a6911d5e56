"""Relation sampler at scale: the first K triples of an N-entity document, per strategy.

    .venv/bin/python bench/synth_sampler.py [--entities 10000] [--triples 10000] [--small 1000]

One document holds all N entities (the worst case: C(10000, 3) = 1.7e11 possible triples), each
mentioned in 1-3 of N/5 passages, so passages hold ~10 entities and the co-occurrence graph
~N*10 edges. Reports the index build time, the time to yield the first K triple tasks (with their
local context) and the tracemalloc peak while yielding, for N and for a smaller --small graph:
memory that does not grow with the number of possible triples shows as a ratio near 1 while the
space grows 1,000-fold. Writes bench/results/synth-sampler.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import time
import tracemalloc
from pathlib import Path


from entigraph.records import Document, Entity, Mention, Passage
from entigraph.synthesis.sampler import RelationSampler, build_index


def make_inputs(n: int, seed: int = 0):
    rng = random.Random(seed)
    n_passages = max(1, n // 5)
    doc = Document("big", "A large document", "")
    passages = [Passage(f"big:p{i:05d}", "big", i, 0, 0, "word " * 180) for i in range(n_passages)]
    entities = []
    for i in range(n):
        where = rng.sample(range(n_passages), rng.randint(1, 3))
        entities.append(Entity(f"e{i}", f"Entity {i}", "X",
                               mentions=[Mention("big", passages[p].passage_id, 0, 0, "") for p in where]))
    return [doc], passages, entities


def measure(n: int, k: int, strategy: str) -> dict:
    docs, passages, entities = make_inputs(n)
    start = time.perf_counter()
    index = build_index(docs, passages, entities)
    build_s = time.perf_counter() - start
    tokens = {p.passage_id: 240 for p in passages}
    make = lambda: RelationSampler(index, entities, passages, modes=["triple"], strategy=strategy,
                                   context_tokens=768, passage_tokens=tokens)
    start, cpu = time.perf_counter(), time.process_time()
    tasks = list(itertools.islice(make(), k))
    yield_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    assert len({t.task_id for t in tasks}) == len(tasks)
    del tasks
    tracemalloc.start()  # a second pass: tracemalloc slows Python, so it is not timed
    base = tracemalloc.get_traced_memory()[0]
    count = sum(1 for _ in itertools.islice(make(), k))
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {
        "entities": n, "edges": sum(len(w) for i in index for w in i.weights.values()) // 2,
        "possible_triples": math.comb(n, 3), "yielded": count, "index_build_s": round(build_s, 3),
        "first_k_triples_s": round(yield_s, 3), "first_k_triples_cpu_s": round(cpu_s, 3), "triples_per_s": round(count / yield_s),
        "peak_alloc_while_yielding_mb": round(peak / 2**20, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--triples", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=1_000)
    args = ap.parse_args()
    load_start = os.getloadavg()
    results = {}
    for strategy in ("exhaustive", "coverage", "weighted"):
        big = measure(args.entities, args.triples, strategy)
        small = measure(args.small, args.triples, strategy)
        results[strategy] = {
            "large": big, "small": small,
            "memory_ratio_large_over_small": round(big["peak_alloc_while_yielding_mb"]
                                                   / max(small["peak_alloc_while_yielding_mb"], 1e-9), 2),
        }
        print(f"{strategy:>10}: first {big['yielded']:,} triples of {args.entities:,} entities in "
              f"{big['first_k_triples_s']:.3f} s wall, {big['first_k_triples_cpu_s']:.3f} s CPU "
              f"({big['triples_per_s']:,}/s), peak "
              f"{big['peak_alloc_while_yielding_mb']:.1f} MB vs {small['peak_alloc_while_yielding_mb']:.1f} MB "
              f"at {args.small:,} entities; index built in {big['index_build_s']:.2f} s", flush=True)
    out = {
        "benchmark": "synth-sampler",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "versions": {},
        "args": vars(args),
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "note": "one document holding every entity (worst case); time excludes the index build; wall time "
                "is inflated when other jobs share the 2 cores (see loadavg), CPU time much less so; "
                "peak = tracemalloc peak above the baseline while yielding (index excluded)",
        "results": results,
    }
    path = Path(__file__).parent / "results" / "synth-sampler.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
