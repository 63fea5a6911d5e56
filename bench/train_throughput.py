"""Training throughput (tokens/s) and peak memory of SmolLM2-135M on this machine, per setup.

Setups: a plain PyTorch loop (fp32; bf16 autocast), the HF Trainer (fp32; bf16), the Trainer with
DeepSpeed ZeRO-0 and ZeRO-2 (fp32; bf16), and the project's default path (training.trainer.train
with the TrainConfig defaults, which resolve bf16 against the hardware). Every setup runs in its own
subprocess (its own peak RSS), on the same packed QuALITY text, the same initial weights and the
same optimiser (AdamW, lr 5e-5, weight decay 0.01, gradient clipping 1.0), and reports its
per-step losses: a setup counts as correct when its losses are finite and its first-step loss
matches the fp32 loop's (same weights, same batch) within 2 % (10 % for the default path, which
packs and shuffles the same text itself, so its first batch differs).

    .venv/bin/python bench/train_throughput.py                         # 2 warm-up + 6 timed steps
    .venv/bin/python bench/train_throughput.py --warmup 1 --steps 3 --bf16-steps 1   # what was run here

On a CPU without native bf16 (no avx512_bf16/amx) the bf16 setups run 3-4x slower than fp32, so
--bf16-steps can give them fewer timed steps. Results are written after every setup; --resume
skips the setups already in the file (same settings), so an interrupted run can be continued.

Writes bench/results/train-throughput.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "quality-leval" / "dev.jsonl"
OUT = ROOT / "bench" / "results" / "train-throughput.json"
SETUPS = ["plain_fp32", "plain_bf16", "trainer_fp32", "trainer_bf16", "ds_zero0_fp32", "ds_zero0_bf16",
          "ds_zero2_fp32", "ds_zero2_bf16", "default"]
LR, WD = 5e-5, 0.01


def texts(n_words: int) -> list[str]:
    rows = [json.loads(line)["input"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    out, total = [], 0
    for text in rows:
        out.append(text)
        total += len(text.split())
        if total >= n_words:
            break
    return out


def batches(tokenizer, n: int, batch: int, seq: int):
    """n batches of packed blocks (documents joined with EOS), the same for every setup."""
    import torch

    ids = []
    for t in texts(n * batch * seq):
        ids += tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    blocks = torch.tensor(ids[: n * batch * seq]).view(n, batch, seq)
    return [{"input_ids": b, "labels": b.clone()} for b in blocks]


def child(name: str, args) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from entigraph.models import resolve_lm

    torch.set_num_threads(args.threads)
    path = resolve_lm(args.model)
    tok = AutoTokenizer.from_pretrained(path)
    n = args.warmup + args.steps
    data = batches(tok, n, args.batch, args.seq)
    extra: dict = {}
    step_s: list[float] = []
    losses: list[float] = []
    bf16 = name.endswith("bf16")
    if name.startswith("plain"):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD, fused=True)
        for b in data:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(**b).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step_s.append(time.perf_counter() - start)
            losses.append(loss.item())
    elif name == "default":
        step_s, losses, extra = default_path(args, tok)
    else:
        step_s, losses = trainer_run(name, path, tok, data, args)
    timed = step_s[args.warmup:]
    return {
        "setup": name,
        "tokens_per_s": args.batch * args.seq * len(timed) / sum(timed),
        "step_s": step_s,
        "losses": losses,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        **extra,
    }


def _timer(step_s: list[float], losses: list[float]):
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_s.append(time.perf_counter() - self.start)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    return Timer()


def trainer_run(name: str, path: str, tok, data, args) -> tuple[list[float], list[float]]:
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from entigraph.training import deepspeed_env

    bf16 = name.endswith("bf16")
    ds = None
    if name.startswith("ds_"):
        ds = deepspeed_env.read_deepspeed_config(deepspeed_env.resolve_config(name.split("_")[1]), bf16)
    step_s, losses = [], []
    rows = [{"input_ids": ids, "labels": ids} for b in data for ids in b["input_ids"]]
    env = deepspeed_env.single_process(None, cuda=False) if ds else _null()
    with env, tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.batch, max_steps=len(data),
            learning_rate=LR, weight_decay=WD, lr_scheduler_type="constant", bf16=bf16, logging_steps=1,
            save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, deepspeed=ds,
            train_sampling_strategy="sequential", dataloader_num_workers=0,
        )
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        Trainer(model=model, args=targs, train_dataset=rows, callbacks=[_timer(step_s, losses)]).train()
    return step_s, losses


def default_path(args, tok) -> tuple[list[float], list[float], dict]:
    """training.trainer.train with the TrainConfig defaults (only the step count, threads and the
    one-off self-replay generation changed), on the same text."""
    from entigraph.config import RunConfig
    from entigraph.io import write_jsonl
    from entigraph.records import SynthPassage, to_dict
    from entigraph.training.trainer import train

    step_s, losses = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(name="bench", run_dir=tmp)
        cfg.models.base = args.model
        n = args.warmup + args.steps
        rows = [SynthPassage(task_id=str(i), mode="pair", entities=[], doc_ids=[], passage_ids=[], text=t)
                for i, t in enumerate(texts(2 * n * args.batch * args.seq))]
        write_jsonl(cfg.out / "filter" / "kept.jsonl", [to_dict(r) for r in rows])
        t = cfg.train
        t.max_steps, t.threads, t.replay.source, t.logging_steps = n, args.threads, "none", 1
        t.save_steps = t.eval_steps = 10_000  # time steps, not checkpoint writes
        _, summary = train(cfg, callbacks=[_timer(step_s, losses)])
    keep = ("deepspeed", "bf16", "bf16_requested", "block_size", "global_batch")
    return step_s, losses, {"default_path": {k: summary[k] for k in keep}}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--bf16-steps", type=int, default=None, help="timed steps for bf16 setups (default --steps)")
    p.add_argument("--resume", action="store_true", help="keep the setups already in the results file")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (FIELD-NOTES: 1 under contention)")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--setups", nargs="+", default=SETUPS, choices=SETUPS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)), flush=True)
        return

    load_start = os.getloadavg()
    settings = {k: getattr(args, k) for k in ("warmup", "steps", "bf16_steps", "seq", "batch", "threads", "model")}
    results, loads = {}, {}
    if args.resume and OUT.is_file() and json.loads(OUT.read_text()).get("settings") == settings:
        old = json.loads(OUT.read_text())
        results, loads = old["results"], old.get("loadavg_per_setup", {})
    for name in args.setups:
        if name in results and "error" not in results[name]:
            continue
        steps = args.bf16_steps if name.endswith("bf16") and args.bf16_steps else args.steps
        cmd = [sys.executable, __file__, "--child", name, f"--steps={steps}"] + [
            f"--{k}={getattr(args, k)}" for k in ("warmup", "seq", "batch", "threads", "model")]
        start, load_before = time.perf_counter(), os.getloadavg()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            results[name] = {"setup": name, "error": proc.stderr[-2000:]}
        else:
            results[name] = json.loads(line[7:])
        results[name]["wall_s"] = round(time.perf_counter() - start, 1)
        results[name]["timed_steps"] = steps
        loads[name] = {"start": load_before, "end": os.getloadavg()}
        r = results[name]
        print(f"{name:>15}: " + (f"{r['tokens_per_s']:7.1f} tokens/s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                                 f"losses {[round(x, 3) for x in r['losses']]}" if "error" not in r else "FAILED"),
              flush=True)
        write_report(args, settings, results, loads, load_start)
    write_report(args, settings, results, loads, load_start, final=True)


def write_report(args, settings, results, loads, load_start, final=False) -> None:
    import torch
    from entigraph.training.deepspeed_env import cpu_has_bf16

    ref = results.get("plain_fp32", {}).get("losses", [None])[0]
    for r in results.values():
        ok = "error" not in r and all(math.isfinite(x) for x in r["losses"]) and len(r["losses"]) > 0
        # The default path packs and shuffles the same text itself: a different first batch.
        tol = 0.10 if r["setup"] == "default" else 0.02
        r["correct"] = bool(ok and (ref is None or abs(r["losses"][0] - ref) / ref < tol))
    correct = [r for r in results.values() if r["correct"] and r["setup"] != "default"]
    fastest = max(correct, key=lambda r: r["tokens_per_s"]) if correct else None
    default = results.get("default")
    ratio = default["tokens_per_s"] / fastest["tokens_per_s"] if fastest and default and default.get("correct") else None
    report = {
        "benchmark": "train-throughput",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "cpu_bf16": cpu_has_bf16(), "processor": _cpu_name()},
        "versions": {k: version(k) for k in ("torch", "transformers", "deepspeed", "accelerate")},
        "settings": settings,
        "tokens_per_step": args.batch * args.seq,
        "results": results,
        "fastest_correct": fastest["setup"] if fastest else None,
        "default_vs_fastest": ratio,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "loadavg_per_setup": loads,
        "torch_threads_default": torch.get_num_threads(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    if final:
        print(f"fastest correct: {report['fastest_correct']}; default path / fastest = "
              f"{ratio if ratio is None else round(ratio, 3)}; load {load_start} -> {report['loadavg_end']}")
        print(f"wrote {OUT}")


def _cpu_name() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
