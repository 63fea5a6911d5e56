"""Faithful decoding (entigraph/backends/decoding.py) against plain sampling, side by side in one run.

The same EntiGraph pair and triple prompts (the synthesize stage's first tasks, local context) of
the tuning documents 10-14 of Fictional Knowledge, written by the embedded SmolLM2-135M on the hf
backend under plain sampling and each decoding variant (same seeds, same batches):

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/synth_faithful_decoding.py [--prompts 24]

Per variant: supported-sentence rate (each sentence against the prompt's source context, the
support gate's rule; and against the documents, as the data report counts it), invented-name
rate, source units covered (restated at least once), kept tokens per generated token (the support
gate's sentence-level salvage: the supported sentences of every generation, retries' tokens
counted as generated), generations naming all their entities, the share of generated word 8-grams
copied from the context (a faithful generation that only copies teaches what the source does), tokens/s. Writes
bench/results/synth-faithful-decoding.json after each variant; a rerun with the same arguments
skips the variants already measured. The extract stage runs once into --run-dir (outside the
checkout) when its outputs are missing. Nothing here chooses a setting for the pipeline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from entigraph import artifacts  # noqa: E402
from entigraph.backends import run_backend  # noqa: E402
from entigraph.config import DecodingConfig, load_config  # noqa: E402
from entigraph.facts.coverage import Coverage  # noqa: E402
from entigraph.facts.support import Evidence, SupportGate  # noqa: E402
from entigraph.facts.units import name_forms, source_units  # noqa: E402
from entigraph.synthesis.engine import Engine  # noqa: E402
from entigraph.text import sentences, words  # noqa: E402

OUT = ROOT / "bench" / "results" / "synth-faithful-decoding.json"
VARIANTS = {
    "plain": None,
    # the contrast alone, over the whole vocabulary (plausibility 0), then among plausible tokens
    "cad-0.5": DecodingConfig(context_contrast=0.5, contrast_plausibility=0.0),
    "cad-1": DecodingConfig(context_contrast=1.0, contrast_plausibility=0.0),
    "copy-2": DecodingConfig(copy_bias=2.0),
    "novel-5": DecodingConfig(novel_penalty=5.0),
    "copy-2+novel-5": DecodingConfig(copy_bias=2.0, novel_penalty=5.0),
    "cad-0.5+apc": DecodingConfig(context_contrast=0.5, contrast_plausibility=0.1),
    "copy-4+novel-5": DecodingConfig(copy_bias=4.0, novel_penalty=5.0),
    "copy-2+novel-5+names": DecodingConfig(copy_bias=2.0, novel_penalty=5.0, require_names=True, name_retries=2),
    "cad-0.5+apc+copy-2+novel-5": DecodingConfig(context_contrast=0.5, contrast_plausibility=0.1, copy_bias=2.0,
                                                 novel_penalty=5.0),
    "copy-4": DecodingConfig(copy_bias=4.0),
    "copy-6+novel-5": DecodingConfig(copy_bias=6.0, novel_penalty=5.0),
    "copy-4+novel-5+names": DecodingConfig(copy_bias=4.0, novel_penalty=5.0, require_names=True, name_retries=2),
    "plain-again": None,  # plain sampling timed again at the end: the machine's load drifts during a run
}
COPY_N = 8  # word n-grams: a generation's share of them found in its context is how much it copies


def config(args: argparse.Namespace):
    cfg = load_config(ROOT / "configs" / "fictional-dev.yaml", [
        "name=synth-faithful-decoding", f"run_dir={args.run_dir}", "corpus.skip_docs=10", "corpus.limit_docs=5",
        "synthesis.modes=[pair, triple]", f"synthesis.max_passages={args.prompts}",
        f"backend.batch_size={args.batch}", f"backend.sampling.max_new_tokens={args.new_tokens}", "device=cpu"])
    return cfg


def ensure_extract(cfg) -> None:
    if (artifacts.stage_dir(cfg.out, "extract") / "entities.jsonl").is_file():
        return
    from entigraph.pipeline import run_stage

    cwd = os.getcwd()
    os.chdir(ROOT)  # the config's corpus path is relative to the checkout
    try:
        run_stage(cfg, "extract")
    finally:
        os.chdir(cwd)


def ngrams(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + COPY_N]) for i in range(len(tokens) - COPY_N + 1)}


def measure(name: str, engine: Engine, tasks: list, units, vocab, forms, args) -> dict:
    decoding = VARIANTS[name]
    backend = engine.backend
    reqs = []
    for task, req in tasks:
        if decoding is not None:
            req = dataclasses.replace(req, context=engine.context(task), decoding=decoding)
        req = dataclasses.replace(req, sampling=dataclasses.replace(req.sampling, max_new_tokens=args.new_tokens))
        reqs.append((task, req))
    engine.decoding = decoding or DecodingConfig()
    start = time.perf_counter()
    gens = []
    for i in range(0, len(reqs), args.batch):
        chunk = reqs[i:i + args.batch]
        out = backend.generate([r for _, r in chunk])
        gens += engine.require_names(chunk, out)
    seconds = time.perf_counter() - start
    coverage = Coverage(units, vocab, forms=forms)
    gate = SupportGate(forms=forms, min_kept_share=0.0)
    supported = total = kept_tokens = named = copied = grams = 0
    for (task, req), g in zip(reqs, gens):
        coverage.add(g.text, task.mode, task.doc_ids)
        ev = Evidence.of(engine.context(task))
        for s in sentences(g.text):
            total += 1
            supported += gate.check(s, ev) is None
        res = gate.apply(g.text, ev)
        kept_tokens += backend.count_tokens(res.text) if res.kept and res.text else 0
        named += not engine.missing_names(task, g.text)
        out_grams = ngrams(words(g.text))
        copied += len(out_grams & ngrams(words(engine.context(task)))) if out_grams else 0
        grams += len(out_grams)
    rep = coverage.report()["modes"]["*"]
    generated = sum(g.completion_tokens for g in gens)
    return {
        "decoding": dataclasses.asdict(decoding) if decoding else None,
        "generations": len(gens), "sentences": total,
        "supported_sentence_rate": round(supported / max(total, 1), 4),
        "supported_sentence_rate_documents": rep["supported_sentence_rate"],
        "invented_name_rate": rep["invented_name_rate"], "names": rep["names"],
        "units_covered": round(rep["covered_1"] or 0.0, 4), "units": rep["units"],
        "kept_tokens_per_generated_token": round(kept_tokens / max(generated, 1), 4),
        "all_names_share": round(named / max(len(gens), 1), 4),
        "copied_8gram_share": round(copied / max(grams, 1), 4),
        "generated_tokens": generated, "seconds": round(seconds, 1),
        "tokens_per_s": round(generated / max(seconds, 1e-9), 2),
        "finish": {r: sum(g.finish_reason == r for g in gens) for r in ("stop", "length", "error")},
        "samples": [g.text[:400] for g in gens[:2]],
    }


def paired_timing(names: list[str], engine: Engine, tasks: list, args) -> dict:
    """tokens/s of `names` measured batch by batch in turns (the same batches, the same minutes),
    since the shared machine's load drifts between variants measured one after another."""
    seconds = dict.fromkeys(names, 0.0)
    tokens = dict.fromkeys(names, 0)
    for i in range(0, len(tasks), args.batch):
        for name in names:
            d = VARIANTS[name]
            reqs = [dataclasses.replace(r, sampling=dataclasses.replace(r.sampling, max_new_tokens=args.new_tokens),
                                        **({"context": engine.context(t), "decoding": d} if d else {}))
                    for t, r in tasks[i:i + args.batch]]
            start = time.perf_counter()
            gens = engine.backend.generate(reqs)
            seconds[name] += time.perf_counter() - start
            tokens[name] += sum(g.completion_tokens for g in gens)
    base = tokens[names[0]] / max(seconds[names[0]], 1e-9)
    return {n: {"generated_tokens": tokens[n], "seconds": round(seconds[n], 1),
                "tokens_per_s": round(tokens[n] / max(seconds[n], 1e-9), 2),
                "vs_first": round(tokens[n] / max(seconds[n], 1e-9) / max(base, 1e-9), 2)} for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--new-tokens", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--run-dir", default="/work/runs")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--paired-timing", nargs="*", default=[],
                    help="variants timed batch by batch in turns (the first is the reference), e.g. plain copy-4")
    args = ap.parse_args()
    cfg = config(args)
    ensure_extract(cfg)
    out = cfg.out
    docs, passages, entities = artifacts.documents(out), artifacts.passages(out), artifacts.entities(out)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    backend = run_backend(cfg)
    engine = Engine(cfg, backend, docs, passages, entities, artifacts.graph(out))
    tasks = [item for batch in engine.batches() for item in batch]
    units = source_units(docs, entities)
    vocab = {w for d in docs for w in words(d.title + "\n" + d.text)}
    forms = name_forms(entities)
    key = {"prompts": args.prompts, "new_tokens": args.new_tokens, "batch": args.batch,
           "docs": [d.doc_id for d in docs], "tasks": [t.task_id for t, _ in tasks]}
    path = Path(args.out)
    result = json.loads(path.read_text()) if path.is_file() else {}
    if result.get("key") != key:
        result = {"key": key, "variants": {}}
    result.update({
        "benchmark": "synth-faithful-decoding",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "loadavg_start": os.getloadavg()},
        "model": cfg.backend.model, "backend": backend.name, "dtype": str(getattr(backend, "dtype", "")),
        "sampling": dataclasses.asdict(cfg.backend.sampling),
        "prompts": {"pair": sum(t.mode == "pair" for t, _ in tasks), "triple": sum(t.mode == "triple" for t, _ in tasks),
                    "mean_prompt_tokens": round(sum(backend.count_tokens(backend.render(r.messages))
                                                    for _, r in tasks) / max(len(tasks), 1), 1)},
    })
    for name in args.variants:
        if name in result["variants"]:
            print(f"{name}: done already")
            continue
        row = measure(name, engine, tasks, units, vocab, forms, args)
        result["variants"][name] = row
        plain = result["variants"].get("plain")
        if plain:
            for r in result["variants"].values():
                r["supported_rate_vs_plain"] = round(
                    r["supported_sentence_rate"] / max(plain["supported_sentence_rate"], 1e-9), 2)
                r["tokens_per_s_vs_plain"] = round(r["tokens_per_s"] / max(plain["tokens_per_s"], 1e-9), 2)
        result["machine"]["loadavg_end"] = os.getloadavg()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(name, {k: row[k] for k in ("supported_sentence_rate", "invented_name_rate", "units_covered",
                                          "kept_tokens_per_generated_token", "all_names_share", "copied_8gram_share",
                                          "tokens_per_s")}, flush=True)
    if args.paired_timing:
        result["paired_timing"] = paired_timing(args.paired_timing, engine, tasks, args)
        path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print("paired timing", result["paired_timing"], flush=True)
    backend.close()


if __name__ == "__main__":
    main()
