"""Faithful synthesis (entigraph/facts): the thresholds, the generator-free modes, the cost of the accounting.

    .venv/bin/python bench/synth_support.py tune    # choose thresholds on Fictional Knowledge docs 10-14
    .venv/bin/python bench/synth_support.py modes   # measure the generator-free modes on docs 0-9
    .venv/bin/python bench/synth_support.py speed [--passages 100000]
    .venv/bin/python bench/synth_support.py all

`tune` and `modes` read the extract stage's entities (spaCy) of the documents they use:

    entigraph extract configs/fictional-dev.yaml --set name=facts-tune --set corpus.skip_docs=10 --set corpus.limit_docs=5
    entigraph extract configs/fictional-dev.yaml --set name=facts-report --set corpus.limit_docs=10

and `tune` also reads SmolLM2-135M's passages on the tuning documents when present
(`entigraph synthesize` with the first command's settings and `--set synthesis.max_passages=40`),
with hand labels of their sentences below. Nothing is chosen on documents 0-9. `speed` needs only
the data set. Each part rewrites its own section of bench/results/synth-support.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import entigraph.text as T  # noqa: E402
from entigraph.facts.coverage import MIN_ANCHOR_SHARE, MIN_CONTENT_SHARE, Coverage  # noqa: E402
from entigraph.facts.support import MIN_SHARE, Evidence, SupportGate  # noqa: E402
from entigraph.facts.transforms import (  # noqa: E402
    Restorer,
    by_document,
    entity_profile,
    grounded_qa,
    mine_reading_tasks,
    permute,
)
from entigraph.facts.units import name_forms, source_units  # noqa: E402
from entigraph.records import Document, Entity, from_dict  # noqa: E402

RUNS = ROOT / "runs"
FK = ROOT.parent / "shared" / "data" / "fictional-knowledge" / "dev.json"
OUT = ROOT / "bench" / "results" / "synth-support.json"
PROBES = {"gen": "paraphrased", "hard_gen": "composition"}

# Hand labels of the sentences of SmolLM2-135M's 40 passages on docs 10-14 (run facts-tune, seed 0),
# keyed by sha1(sentence)[:10]: S = everything it states is in the source, M = mixed or borderline
# (true with an embellishment, true talk about "the text"), every other sentence U (invented,
# contradicting, or talk about the prompt).
LABELS_S = ("2e658094a1 378780d3eb 38c56ac09b 3c96fa3cde 760c82c4c4 9bbad29031 bd5e6ecfa5 bdd45eeb0e "
            "ccf8a68f2c df90fd820a ed48b3b803").split()
LABELS_M = ("06912e3cd4 09265989a2 0b3eabac60 18dd40e73e 29defa171a 301c5e9040 33ef90291f 3535077eaf "
            "3b74606d0f 42493a5670 5732b9230b 57bd9b5146 5a379bd673 73b4661904 79f3c25823 8176afee96 "
            "841d270d12 86efb98382 9294ecfa9c 9377da231b a6167b414a b0c63108e8 b6f697f865 c12fc8e2f0 "
            "c47c053160 c9e70205f3 d1d58c95ec d4f375610b d80024409b dba95cfa89 df1f0ccad3 e72fd74af4 e85d3d12ab").split()


def _norm(text: str) -> str:  # as bench/efficacy.py counts probe targets
    return " ".join(text.lower().split())


def _sent(prefix: str, target: str) -> str:
    return (prefix.rstrip() + " " + target.strip()).rstrip(".") + "."


def load_extract(name: str) -> tuple[list[Document], list[Entity]]:
    folder = RUNS / name / "extract"
    if not (folder / "entities.jsonl").is_file():
        sys.exit(f"{folder} is missing: run the extract command in this script's docstring first")
    read = lambda f: [json.loads(line) for line in (folder / f).read_text().splitlines() if line.strip()]  # noqa: E731
    return [from_dict(Document, d) for d in read("documents.jsonl")], [Entity.from_json(e) for e in read("entities.jsonl")]


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0}


# ---------------------------------------------------------------------------------------------
# tune: thresholds on the tuning documents


def tune() -> dict:
    docs, entities = load_extract("facts-tune")
    fk = json.loads(FK.read_text())[10:15]
    assert [d.text for d in docs] == [d["train_context"] for d in fk], "facts-tune must hold documents 10-14"
    forms = name_forms(entities)
    out: dict = {"documents": [d.doc_id for d in docs]}

    # 1. restatement: each paraphrased probe (gen_input + gen_target) must restate the one unit
    #    its memorisation probe was copied from, and no other unit of the document
    def probe_pairs(units):
        pairs = []
        for d, doc in zip(fk, docs):
            for j in range(5):
                key = _norm(d["mem_input"][j])[:50]
                hits = [u for u in units if u.doc_id == doc.doc_id and key in _norm(u.text)]
                if len(hits) == 1:
                    pairs.append((doc.doc_id, _sent(d["gen_input"][j], d["gen_target"][j]), hits[0].unit_id))
        return pairs

    grid = []
    for stem in (5, 6, 7):
        T.STEM_CHARS = stem
        units = source_units(docs, entities)
        pairs = probe_pairs(units)
        for anchor in (0.5, 0.75, 1.0):
            for share in (0.4, 0.5, 0.6, 0.7):
                cov = Coverage(units, set(), min_anchor_share=anchor, min_content_share=share, forms=forms)
                tp = fp = fn = 0
                for doc_id, sentence, uid in pairs:
                    hit = {units[i].unit_id for i in cov.restated(sentence, [doc_id])}
                    tp, fn, fp = tp + (uid in hit), fn + (uid not in hit), fp + len(hit - {uid})
                grid.append({"stem_chars": stem, "min_anchor_share": anchor, "min_content_share": share, **_prf(tp, fp, fn)})
    out["restatement"] = {"probes": len(pairs), "grid": grid}

    # 2. support gate, sentence level: probes of the document (paraphrased and composition: all
    #    true) must pass; probes of the other tuning documents and probes whose target is swapped
    #    for another document's (a wrong fact) must not
    rows = []
    for stem in (5, 6, 7):
        T.STEM_CHARS = stem
        ev = {doc.doc_id: Evidence.of(doc.text) for doc in docs}
        pos, neg = [], []
        for i, (d, doc) in enumerate(zip(fk, docs)):
            other = fk[(i + 1) % 5]
            for j in range(5):
                pos += [(doc.doc_id, _sent(d[f"{k}_input"][j], d[f"{k}_target"][j])) for k in PROBES]
                neg.append((doc.doc_id, _sent(d["gen_input"][j], other["gen_target"][j])))
                neg += [(doc.doc_id, _sent(o["gen_input"][j], o["gen_target"][j])) for o in fk if o is not d]
        for share in (0.3, 0.4, 0.5, 0.6, 0.7):
            gate = SupportGate(min_share=share, forms=forms)
            rows.append({"stem_chars": stem, "min_share": share,
                         "true_kept": sum(gate.check(s, ev[d]) is None for d, s in pos), "true": len(pos),
                         "false_dropped": sum(gate.check(s, ev[d]) is not None for d, s in neg), "false": len(neg)})
    out["gate_probes"] = rows

    # 3. support gate on a real generator: SmolLM2-135M's passages, hand-labelled sentences
    synth = RUNS / "facts-tune" / "synth" / "passages.jsonl"
    T.STEM_CHARS = 6
    if synth.is_file():
        out["gate_smollm2"] = _gate_smollm2(synth, forms)
        # for contrast, measured only: what the generator's passages restate of these documents
        vocab = {w for d in docs for w in T.words(d.title + "\n" + d.text)}
        cov = Coverage(source_units(docs, entities), vocab, k=3, forms=forms)
        for r in map(json.loads, synth.open()):
            cov.add(r["text"], r["mode"], r["doc_ids"])
        out["coverage_smollm2"] = {m: {k: v for k, v in rep.items() if k != "per_doc"}
                                   for m, rep in cov.report()["modes"].items()}
    out["chosen"] = {"stem_chars": T.STEM_CHARS, "gate_min_share": MIN_SHARE,
                     "restatement_min_anchor_share": MIN_ANCHOR_SHARE, "restatement_min_content_share": MIN_CONTENT_SHARE}
    return out


def _gate_smollm2(path: Path, forms) -> dict:
    passages = {p["passage_id"]: p["text"] for p in map(json.loads, (RUNS / "facts-tune" / "extract" / "passages.jsonl").open())}
    rows = [json.loads(line) for line in path.open()]
    label = {**{h: "S" for h in LABELS_S}, **{h: "M" for h in LABELS_M}}
    items = []
    for r in sorted(rows, key=lambda r: r["seq"]):
        source = "\n".join(passages[p] for p in r["passage_ids"])
        for s in T.sentences(r["text"]):
            items.append((r["task_id"], s, source, label.get(hashlib.sha1(s.encode()).hexdigest()[:10], "U")))
    out: dict = {"passages": len(rows), "sentences": len(items), "labels": dict(Counter(x[3] for x in items)),
                 "labelled_found": sum(x[3] != "U" for x in items), "labelled_listed": len(label), "by_min_share": []}
    for stem in (5, 6, 7):
        T.STEM_CHARS = stem
        for share in (0.4, 0.5, 0.6, 0.7):
            gate = SupportGate(min_share=share, forms=forms)
            kept = Counter(lab for _, s, src, lab in items if gate.check(s, src) is None)
            out["by_min_share"].append({"stem_chars": stem, "min_share": share,
                                        **{f"kept_{k}": f"{kept[k]}/{out['labels'].get(k, 0)}" for k in "SMU"}})
    T.STEM_CHARS = 6
    gate = SupportGate(forms=forms)
    reasons = Counter()
    for _, s, src, _ in items:
        why = gate.check(s, src)
        reasons[why.split(" ")[0] if why else "kept"] += 1
    out["chosen_reasons"] = dict(reasons)  # name / number / shares (content words) / kept
    for min_kept in (0.0, 0.25, 0.5):
        g = SupportGate(min_kept_share=min_kept, forms=forms)
        res = [g.apply(r["text"], "\n".join(passages[p] for p in r["passage_ids"])) for r in rows]
        out[f"passages_kept_min_kept_share_{min_kept}"] = sum(x.kept for x in res)
    return out


# ---------------------------------------------------------------------------------------------
# modes: the generator-free modes on the reporting documents (measured, nothing chosen)


def generate_modes(docs: list[Document], entities: list[Entity], seed: int = 0) -> dict[str, list]:
    units = source_units(docs, entities)
    restorer = Restorer(units, entities)
    per_doc = by_document(units)
    return {
        "permute": [permute(us, seed + k, restorer) for us in per_doc.values() for k in range(3)],
        "profile": [p for e in entities if (p := entity_profile(e, units, seed, restorer))],
        "reading": mine_reading_tasks(units, seed, per_unit=2, restorer=restorer),
        "qa": grounded_qa(units, seed, per_unit=1, restorer=restorer),
    }


def modes() -> dict:
    docs, entities = load_extract("facts-report")
    fk = json.loads(FK.read_text())[:10]
    assert [d.text for d in docs] == [d["train_context"] for d in fk], "facts-report must hold documents 0-9"
    units = source_units(docs, entities)
    vocab = {w for d in docs for w in T.words(d.title + "\n" + d.text)}
    cov = Coverage(units, vocab, k=3, forms=name_forms(entities))
    out_modes = generate_modes(docs, entities)
    for mode, texts in out_modes.items():
        for t in texts:
            cov.add(t.text, mode, t.doc_ids)
    report = cov.report()
    targets = {kind: [_norm(t) for d in fk for t in d[f"{kind}_target"]] for kind in PROBES}
    pools = {"raw": [d.text for d in docs], **{m: [t.text for t in ts] for m, ts in out_modes.items()}}
    pools["all four"] = [t.text for ts in out_modes.values() for t in ts]
    found = {}
    for label, texts in pools.items():
        blob = _norm("\n".join(texts))
        found[label] = {"texts": len(texts), "words": len(blob.split()),
                        **{f"{kind}_targets_present": round(sum(t in blob for t in ts) / len(ts), 3) for kind, ts in targets.items()}}
    return {"documents": [d.doc_id for d in docs], "units": len(units), "coverage": report, "targets": found}


# ---------------------------------------------------------------------------------------------
# speed: the gate and the accounting over many passages


GENERIC = ["This highlights the importance of resilience and community in difficult times.",
           "The story offers a vivid glimpse into a fascinating and complex world.",
           "In conclusion, the text shows how tradition and modernity can coexist.",
           "Here is a rewritten version of the text:"]


def fake_passages(per_doc: dict, n: int, seed: int = 0):
    """Generator-like passages: quotes, trimmed quotes, invented names and years, generic talk."""
    rng = random.Random(seed)
    doc_ids = list(per_doc)
    for i in range(n):
        d = rng.choice(doc_ids)
        sents = []
        for _ in range(rng.randint(5, 9)):
            s, r = rng.choice(per_doc[d]).text, rng.random()
            if r < 0.35:
                toks = s.split()
                s = " ".join(t for t in toks if rng.random() > 0.3) or s
            elif r < 0.55:
                s = re.sub(r"\b[A-Z][a-z]+\b", f"Zor{rng.randrange(10**6):06d}ax", s, count=1)
            elif r < 0.65:
                s = s.rstrip(".") + f" in {rng.randrange(1500, 2100)}."
            elif r < 0.8:
                s = rng.choice(GENERIC)
            sents.append(s)
        yield d, " ".join(sents)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_passages(units, vocab, n: int, checkpoints: list[int], scoped: bool = True) -> list[dict]:
    cov = Coverage(units, vocab, k=3)
    gate = SupportGate()
    for d in cov.doc_text:  # digest every document's evidence up front: setup, not per-passage cost
        cov.evidence([d])
    rows, t_total, cpu_total, done, last = [], 0.0, 0.0, 0, (0, 0.0, 0.0)
    sentences = 0
    for d, text in fake_passages(by_document(units), n):
        t0, c0 = time.perf_counter(), time.process_time()
        ids = [d] if scoped else None
        gate.apply(text, cov.evidence(ids), vocab)
        sentences += len(cov.add(text, "bench", ids))
        t_total += time.perf_counter() - t0
        cpu_total += time.process_time() - c0
        done += 1
        if done in checkpoints:
            n0, w0, c0_ = last
            rows.append({"passages": done, "sentences": sentences,
                         "us_per_passage_window": round(1e6 * (t_total - w0) / (done - n0), 1),
                         "cpu_us_per_passage_window": round(1e6 * (cpu_total - c0_) / (done - n0), 1),
                         "seconds_total": round(t_total, 2), "rss_mb": round(_rss_mb(), 1)})
            last = (done, t_total, cpu_total)
            print(f"  {done:>7,} passages: {rows[-1]['us_per_passage_window']:.0f} us/passage in the last window, "
                  f"{rows[-1]['rss_mb']:.0f} MB RSS", flush=True)
    return rows


def speed(n: int) -> dict:
    fk = json.loads(FK.read_text())
    docs = [Document(f"fk-{i:03d}", "", d["train_context"]) for i, d in enumerate(fk)]
    vocab = {w for d in docs for w in T.words(d.text)}
    t0 = time.perf_counter()
    units = source_units(docs, [])
    build_s = time.perf_counter() - t0
    checkpoints = [c for c in (1_000, 10_000, 100_000, 1_000_000) if c <= n] or [n]
    print(f"{len(docs)} documents, {len(units)} units; passages scoped to their document:")
    scaling = run_passages(units, vocab, n, checkpoints)
    # corpus size: ten copies of every document, each with its own names ("Zaronix" -> "Zaronixc"),
    # so names stay rare and common words get ten times the postings
    big = [Document(f"{d.doc_id}-{c}", "", re.sub(r"\b([A-Z][a-z]+)", rf"\1{'abcdefghij'[c]}", d.text))
           for c in range(10) for d in docs]
    big_units = source_units(big, [])
    corpus = {}
    big_vocab = {w for d in big for w in T.words(d.text)}
    for label, us, voc in (("90 documents", units, vocab), ("900 documents", big_units, big_vocab)):
        for scoped in (True, False):
            print(f"{label}, {'scoped to the document' if scoped else 'whole corpus'}:")
            corpus[f"{label}, {'doc_ids given' if scoped else 'doc_ids None'}"] = run_passages(
                us, voc, 3_000, [3_000], scoped)[-1]
    return {"documents": len(docs), "units": len(units), "units_build_s": round(build_s, 3),
            "passages_vs_time": scaling, "corpus_size": corpus,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "note": "per passage: SupportGate.apply + Coverage.add (which checks support again for the "
                    "supported-sentence rate); synthetic passages of 5-9 sentences from the 90 Fictional "
                    "Knowledge documents (quotes, trimmed quotes, invented names and years, generic talk); "
                    "one process, OMP irrelevant (pure Python); wall time grows when other jobs share the cores"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["tune", "modes", "speed", "all"])
    ap.add_argument("--passages", type=int, default=100_000)
    args = ap.parse_args()
    out = json.loads(OUT.read_text()) if OUT.is_file() else {"benchmark": "synth-support", "results": {}}
    parts = {"tune": tune, "modes": modes, "speed": lambda: speed(args.passages)}
    for name, part in parts.items():
        if args.part in (name, "all"):
            load_start = os.getloadavg()
            out["results"][name] = {**part(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()}
    out["machine"] = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
