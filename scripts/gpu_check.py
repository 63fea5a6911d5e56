"""The GPU path, exercised in one prepared run on a machine with a CUDA device (README, "GPU").

    python scripts/gpu_check.py [--out bench/results/gpu-check.json] [--cpu-dry-run]

Each check prints one line, `PASS name: detail`, `SKIP name: reason` or `FAIL name: error`, and
the script exits 1 if any check failed. Every check uses the test suite's tiny model (a 2-layer
Llama built here, tests/conftest.py), so nothing is downloaded and the whole run takes a minute or
two; the throughput figures are therefore per-stage smoke numbers, not the demo model's speed.

Checks, in order (what a GPU machine is expected to print is in the README's GPU section):
  cuda         torch sees a GPU; its name, capability, memory; bf16 support
  devices      device "auto" -> cuda, dtype "auto" -> bfloat16 (float16 without bf16)
  generate     the hf backend on cuda: a batch of 8 chats, greedy, new tokens/s
  scoring      LMScorer on cuda: the cached-context scores equal full-sequence ones (bf16 tolerance)
  train        4 steps of the trainer under DeepSpeed ZeRO-2 on cuda in bf16 (one process, nccl), tokens/s
  vllm         vLLM's offline engine on the tiny model (skipped where vllm is not installed)
  ray          a Ray actor that asks for num_gpus=1 gets CUDA_VISIBLE_DEVICES and sees a GPU (skipped without ray)

--cpu-dry-run runs every check on the CPU instead (the script's own test, tests/test_gpu_check.py):
`cuda` is then SKIP and the others say "cpu".
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # conftest.build_tiny_lm: the suite's tiny model
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS: list[dict] = []


def report(status: str, name: str, detail: str, **figures) -> None:
    RESULTS.append({"check": name, "status": status, "detail": detail, **figures})
    print(f"{status} {name}: {detail}", flush=True)


def check(name: str):
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args):
            try:
                fn(*args)
            except ImportError as e:
                report("SKIP", name, f"{e.name or e} is not installed")
            except Exception as e:  # one failing check never hides the others
                report("FAIL", name, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                       traceback=traceback.format_exc()[-2000:])
        return run
    return wrap


@check("cuda")
def check_cuda(ctx) -> None:
    import torch

    if ctx["device"] == "cpu":
        report("SKIP", "cuda", "--cpu-dry-run")
        return
    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no GPU (torch.cuda.is_available() is False)")
    p = torch.cuda.get_device_properties(0)
    report("PASS", "cuda", f"{p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.0f} GiB, "
           f"bf16 {torch.cuda.is_bf16_supported()}, torch {torch.__version__}, CUDA {torch.version.cuda}",
           devices=torch.cuda.device_count())


@check("devices")
def check_devices(ctx) -> None:
    import torch

    from entigraph.devices import pick_device, pick_dtype

    device = pick_device("auto") if ctx["device"] == "cuda" else "cpu"
    dtype = pick_dtype("auto", device)
    want = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device == "cuda" else torch.float32
    assert device == ctx["device"] and dtype == want, (device, dtype)
    report("PASS", "devices", f"auto -> {device}, dtype auto -> {str(dtype).removeprefix('torch.')}")


@check("generate")
def check_generate(ctx) -> None:
    from entigraph.backends.base import Request
    from entigraph.backends.hf import HFBackend
    from entigraph.config import SamplingConfig

    b = HFBackend(ctx["model"], device=ctx["device"], batch_size=8)
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=64)
    reqs = [Request([{"role": "user", "content": f"Tell me about the tide gauge, part {i}."}], sampling, i)
            for i in range(8)]
    b.generate(reqs[:1])  # warm-up (CUDA context, kernels)
    start = time.perf_counter()
    gens = b.generate(reqs)
    seconds = time.perf_counter() - start
    tokens = sum(g.completion_tokens for g in gens)
    assert all(g.finish_reason != "error" for g in gens), [g.error for g in gens]
    assert str(b.lm.device).startswith(ctx["device"]), b.lm.device
    report("PASS", "generate", f"hf backend on {b.lm.device} in {str(b.dtype).removeprefix('torch.')}: "
           f"{tokens} new tokens in {seconds:.2f} s ({tokens / seconds:.0f} tok/s, batch 8)",
           tokens_per_s=round(tokens / seconds, 1))
    b.close()


@check("scoring")
def check_scoring(ctx) -> None:
    import numpy as np

    from entigraph.evaluation.scoring import LMScorer
    from entigraph.records import Question

    scorer = LMScorer(ctx["model"], device=ctx["device"], dtype="auto")
    q = Question("q", "d", "Who built the tidal clock?", ["The Harbour Guild", "Mara Velt", "Kettle Point", "a"], 0)
    context = "The Harbour Guild of Lumen Bay built the tidal clock in 1887. " * 4
    prefix, _ = scorer.prompt_ids(q, context)
    conts = [scorer.continuation_ids(o) for o in q.options]
    cached, _ = scorer.continuation_logprobs(prefix, conts)
    separate = scorer.separate_logprobs(prefix, conts)
    worst = max(float(np.abs(c - s).max()) for c, s in zip(cached, separate))
    tol = 1e-4 if scorer.dtype.is_floating_point and str(scorer.dtype) == "torch.float32" else 5e-2
    assert worst <= tol, f"cached vs full-sequence log-probabilities differ by {worst}"
    start = time.perf_counter()
    for _ in range(20):
        scorer.score(q, context)
    per_q = (time.perf_counter() - start) / 20
    report("PASS", "scoring", f"on {scorer.device} in {str(scorer.dtype).removeprefix('torch.')}: cached = "
           f"full-sequence within {worst:.1e}; {per_q * 1000:.0f} ms per 4-option question",
           seconds_per_question=round(per_q, 4))
    scorer.close()


@check("train")
def check_train(ctx) -> None:
    from entigraph.config import MixtureSource, RunConfig
    from entigraph.io import write_jsonl
    from entigraph.records import Document, to_dict
    from entigraph.training.trainer import train

    cfg = RunConfig(name="gpu-check", run_dir=str(ctx["tmp"] / "runs"))
    cfg.models.base, cfg.device = ctx["model"], ctx["device"]
    t = cfg.train
    t.deepspeed, t.block_size, t.max_steps, t.val_fraction = "zero2_bf16", 64, 4, 0.0
    t.mixture = [MixtureSource(source="raw", epochs=4.0)]
    t.replay.source, t.threads, t.save_steps = "none", 1, 1000
    text = "Marit Ellery kept the Quarrow tide station for thirty-one years. " * 40
    write_jsonl(cfg.out / "extract" / "documents.jsonl", [to_dict(Document("d", "Quarrow", text))])
    _, summary = train(cfg)
    assert summary["device"] == ctx["device"], summary["device"]
    if ctx["device"] == "cuda":
        import torch

        assert summary.get("bf16") in (True, None) or not torch.cuda.is_bf16_supported(), summary.get("bf16")
    report("PASS", "train", f"{summary.get('steps')} steps, DeepSpeed zero2_bf16 on {summary['device']}, "
           f"bf16 {summary.get('bf16')}, {summary.get('tokens_per_s') or 0:.0f} tokens/s, "
           f"peak GPU {summary.get('peak_gpu_mb')} MiB", tokens_per_s=summary.get("tokens_per_s"))


@check("vllm")
def check_vllm(ctx) -> None:
    import vllm  # noqa: F401  (ImportError: SKIP)

    from entigraph.backends.base import Request
    from entigraph.backends.vllm import VLLMBackend
    from entigraph.config import SamplingConfig, VLLMConfig

    v = VLLMConfig(gpu_memory_utilization=0.3, max_model_len=1024, enforce_eager=True)
    b = VLLMBackend(ctx["model"], v, seed=0, cache_root=ctx["tmp"] / "vllm", on_cpu=ctx["device"] == "cpu")
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=64)
    reqs = [Request([{"role": "user", "content": f"Tell me about the tide gauge, part {i}."}], sampling, i)
            for i in range(32)]
    start = time.perf_counter()
    gens = b.generate(reqs)
    seconds = time.perf_counter() - start
    tokens = sum(g.completion_tokens for g in gens)
    assert all(g.finish_reason != "error" for g in gens)
    report("PASS", "vllm", f"offline engine: {tokens} new tokens in {seconds:.2f} s ({tokens / seconds:.0f} tok/s, "
           "32 requests)", tokens_per_s=round(tokens / seconds, 1))
    b.close()


@check("ray")
def check_ray(ctx) -> None:
    import ray

    gpus = 1 if ctx["device"] == "cuda" else 0
    ray.init(num_cpus=2, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    try:
        @ray.remote(num_gpus=gpus)
        def probe():
            import torch

            return os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.is_available(), ray.get_gpu_ids()

        visible, available, ids = ray.get(probe.remote(), timeout=300)
        if gpus:
            assert visible and available and len(ids) == 1, (visible, available, ids)
        report("PASS", "ray", f"actor with num_gpus={gpus}: CUDA_VISIBLE_DEVICES={visible!r}, "
               f"torch.cuda.is_available() {available}")
    finally:
        ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu-check.json"))
    ap.add_argument("--cpu-dry-run", action="store_true", help="run every check on the CPU (tests the script)")
    args = ap.parse_args()
    from conftest import build_tiny_lm

    with tempfile.TemporaryDirectory() as tmp:
        ctx = {"device": "cpu" if args.cpu_dry_run else "cuda", "tmp": Path(tmp),
               "model": str(build_tiny_lm(Path(tmp) / "tiny-lm"))}
        for fn in (check_cuda, check_devices, check_generate, check_scoring, check_train, check_vllm, check_ray):
            if ctx["device"] == "cuda" and RESULTS and RESULTS[0]["status"] == "FAIL" and fn is not check_cuda:
                report("SKIP", fn.__name__.removeprefix("check_"), "no GPU")
                continue
            fn(ctx)
    import torch

    out = {"bench": "gpu_check", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "dry_run": args.cpu_dry_run,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                       "cuda": torch.version.cuda,
                       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
           "checks": RESULTS}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    failed = [r["check"] for r in RESULTS if r["status"] == "FAIL"]
    print(f"{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed or skipped; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
