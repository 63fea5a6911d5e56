"""Near-duplicate filtering (entigraph.minhash.near_duplicates: MinHash LSH on word 5-grams) at scale.

    .venv/bin/python bench/dedup_minhash.py [--n 100000] [--dup-share 0.1] [--threshold 0.8]

Generates N synthetic ~150-word passages (Zipfian vocabulary plus EntiGraph-like template
sentences that many passages share), of which --dup-share are perturbed copies of an earlier
original (word replace/delete/insert at a per-copy edit rate drawn from [0, --max-edit]). Labels:
a copy is a *true* duplicate when the exact Jaccard of its 5-gram shingles with its original is at
least the threshold (copies below it are near misses that should be kept). Reports time, peak RSS,
precision and recall, and the detection rate by exact-Jaccard bin.
Writes bench/results/dedup-minhash.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path


import numpy as np

from entigraph.minhash import SHINGLE_N, MinHasher, near_duplicates, shingle_hashes
from entigraph.text import words

TEMPLATES = [
    "The text tells us that {a} was closely connected to {b}.",
    "First, the text says what is known about {a}.",
    "In the passage, {a} and {b} appear together when the story turns.",
    "This shows how {a} relates to {b} and why it matters.",
    "Then the text explains how {a} and {b} are connected.",
    "Overall, {a} plays an important role in the events described.",
]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_corpus(n: int, dup_share: float, max_edit: float, n_words: int, seed: int):
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    vocab = [f"w{i:05d}" for i in range(30000)]
    ranks = np.arange(1, len(vocab) + 1)
    probs = ranks ** -1.1 / (ranks ** -1.1).sum()
    names = [f"Name{i}" for i in range(2000)]
    pool = iter(np_rng.choice(len(vocab), size=n * (n_words + 22), p=probs).tolist())  # Zipfian word ids

    def original() -> str:
        out: list[str] = []
        while len(out) < n_words:
            if rng.random() < 0.25:
                out += rng.choice(TEMPLATES).format(a=rng.choice(names), b=rng.choice(names)).split()
            else:
                k = rng.randint(8, 22)
                out += [vocab[next(pool)] for _ in range(k)]
        return " ".join(out[:n_words])

    def perturb(text: str, rate: float) -> str:
        out = []
        for w in text.split():
            r = rng.random()
            if r < rate / 2:
                out.append(rng.choice(vocab))  # replace
            elif r < rate * 3 / 4:
                continue  # delete
            else:
                out.append(w)
                if r > 1 - rate / 4:
                    out.append(rng.choice(vocab))  # insert
        return " ".join(out)

    texts, source_of = [], []  # source_of[i]: index of the original a copy was made from, or None
    originals: list[int] = []
    for i in range(n):
        if originals and rng.random() < dup_share:
            j = rng.choice(originals)
            texts.append(perturb(texts[j], rng.uniform(0, max_edit)))
            source_of.append(j)
        else:
            texts.append(original())
            source_of.append(None)
            originals.append(i)
    return texts, source_of


def shingles(text: str) -> set[str]:
    t = words(text)
    return {" ".join(t[i:i + SHINGLE_N]) for i in range(max(1, len(t) - SHINGLE_N + 1))}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def hash_speed(texts: list[str], num_perm: int) -> dict:
    """ms per passage for a signature with crc32 (what entigraph uses) and datasketch's sha1."""
    from datasketch import MinHash

    sample = texts[:2000]
    start = time.perf_counter()
    hasher = MinHasher(num_perm)
    for t in sample:
        hasher(shingle_hashes(t))
    crc = (time.perf_counter() - start) / len(sample) * 1e3
    perms = MinHash(num_perm=num_perm).permutations
    start = time.perf_counter()
    for t in sample:
        m = MinHash(num_perm=num_perm, permutations=perms, scheme="affine32")
        m.update_batch([s.encode() for s in shingles(t)])
    sha = (time.perf_counter() - start) / len(sample) * 1e3
    return {"crc32_ms_per_passage": round(crc, 3), "sha1_ms_per_passage": round(sha, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dup-share", type=float, default=0.1)
    p.add_argument("--max-edit", type=float, default=0.05, help="max per-word edit rate of a copy")
    p.add_argument("--words", type=int, default=150)
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--num-perm", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "dedup-minhash.json"))
    args = p.parse_args()
    import datasketch

    load_start = os.getloadavg()
    t0 = time.perf_counter()
    texts, source_of = make_corpus(args.n, args.dup_share, args.max_edit, args.words, args.seed)
    gen_s = time.perf_counter() - t0
    rss_before = rss_mb()

    start = time.perf_counter()
    hits = near_duplicates(texts, args.threshold, args.num_perm, progress=True)
    dedup_s = time.perf_counter() - start
    rss_after = rss_mb()

    # Labels from exact shingle Jaccard: copies to their original, flags to the passage they name.
    copies = [i for i, s in enumerate(source_of) if s is not None]
    true_j = {i: jaccard(texts[i], texts[source_of[i]]) for i in copies}
    flagged = [i for i, h in enumerate(hits) if h is not None]
    flag_j = {i: (true_j[i] if source_of[i] == hits[i][0] else jaccard(texts[i], texts[hits[i][0]]))
              for i in flagged}
    positives = {i for i in copies if true_j[i] >= args.threshold}
    correct = [i for i in flagged if flag_j[i] >= args.threshold]
    bins = [(0.0, 0.6), (0.6, 0.7), (0.7, 0.75), (0.75, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 1.01)]
    by_bin = []
    for lo, hi in bins:
        members = [i for i in copies if lo <= true_j[i] < hi]
        by_bin.append({"jaccard": f"[{lo}, {min(hi, 1.0)}{']' if hi > 1 else ')'}", "copies": len(members),
                       "flagged": sum(hits[i] is not None for i in members)})
    figures = {
        "passages": args.n, "copies_made": len(copies), "true_duplicates": len(positives),
        "flagged": len(flagged),
        "precision": len(correct) / len(flagged) if flagged else None,
        "recall": len(positives & set(flagged)) / len(positives) if positives else None,
        "flagged_originals": sum(source_of[i] is None for i in flagged),  # random text flagged: LSH noise
        "detection_by_exact_jaccard": by_bin,
        "dedup_seconds": round(dedup_s, 2),
        "passages_per_second": round(args.n / dedup_s, 1),
        "generate_seconds": round(gen_s, 2),
        "rss_mb_before_dedup": round(rss_before, 1),
        "peak_rss_mb": round(rss_after, 1),
        "hash_speed": hash_speed(texts, args.num_perm),
    }
    out = {
        "benchmark": "dedup-minhash", "command": " ".join(sys.argv), "settings": vars(args),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"datasketch": datasketch.__version__, "numpy": np.__version__},
        "shingles": f"word {SHINGLE_N}-grams, crc32 hash, affine32 permutations, exact verification",
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "figures": figures,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
