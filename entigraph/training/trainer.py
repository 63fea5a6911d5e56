"""The train stage: continued pretraining with the transformers Trainer, optionally under DeepSpeed.

    train/data/         packed blocks and the fixed training order (training/data.py)
    train/checkpoints/  Trainer checkpoints every train.save_steps; a rerun resumes from the last
                        complete one (removed after success unless train.keep_checkpoints)
    train/model/        the final Hugging Face model folder (safetensors, tokenizer, config)
    train/loss.json     steps, train loss, validation loss, learning rate, tokens
    train/loss.png      the loss curves
    train/summary.json  tokens per source, blocks, steps, losses, throughput, memory, settings

Determinism: the data order is materialised and read sequentially, the Trainer restores its RNG
state from the checkpoint, so a run killed at any moment ends where an uninterrupted run ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import resource
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.io import read_json, share_folder, write_json
from entigraph.locks import file_lock
from entigraph.models import resolve_lm

from . import deepspeed_env
from .data import BlockDataset, PackedData, build
from .replay import replay_texts

SAVE_TOTAL_LIMIT = 2  # keep one spare: the newest checkpoint may be half-written when killed


def checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def is_complete(ckpt: Path) -> bool:
    """The Trainer writes trainer_state.json last: a checkpoint without a readable one is partial."""
    try:
        return "global_step" in read_json(ckpt / "trainer_state.json")
    except (OSError, ValueError):
        return False


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    ckpts = sorted(ckpt_dir.glob("checkpoint-*"), key=checkpoint_step, reverse=True)
    return next((c for c in ckpts if is_complete(c)), None)


def prepare_checkpoints(ckpt_dir: Path, run_key: str) -> Path | None:
    """The checkpoint to resume from. Checkpoints of other data or settings, and partial ones
    (a kill during a save), are removed so the Trainer's rotation never counts them."""
    key_file = ckpt_dir / "run_key.json"
    if ckpt_dir.exists() and (not key_file.is_file() or read_json(key_file).get("key") != run_key):
        if any(ckpt_dir.glob("checkpoint-*")):
            print(f"[train] settings or data changed: discarding checkpoints in {ckpt_dir}", file=sys.stderr)
        shutil.rmtree(ckpt_dir)
    for ckpt in ckpt_dir.glob("checkpoint-*"):
        if not is_complete(ckpt):
            shutil.rmtree(ckpt)
    write_json(key_file, {"key": run_key})
    return last_checkpoint(ckpt_dir)


def run_key(cfg: RunConfig, data: PackedData, model_path: str, ds_config: dict | None, bf16: bool) -> str:
    """What makes a checkpoint resumable: same data and order, same optimisation settings."""
    t = cfg.to_dict()["train"]
    # interpolate is applied to the trained weights after training; kl at weight 0 is off (and
    # absent, so keys of runs from before it existed still match)
    for k in ("save_steps", "logging_steps", "eval_steps", "threads", "keep_checkpoints", "interpolate"):
        t.pop(k, None)
    if not (t.get("kl") or {}).get("weight"):
        t.pop("kl", None)
    blob = json.dumps([data.manifest["content_hash"], t, cfg.seed, model_path, ds_config, bf16],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _step_timer():
    """A TrainerCallback that times the optimizer steps."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Seconds spent in optimizer steps only (not evaluation or checkpoint saves)."""

        def __init__(self):
            self.seconds, self.steps, self._start = 0.0, 0, 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds += time.perf_counter() - self._start
            self.steps += 1

    return StepTimer()


def loss_curves(log_history: list[dict], data: PackedData, global_batch: int) -> dict[str, Any]:
    """train/loss.json: one row per logged step; evaluations deduplicated by step (last wins)."""
    tokens = np.cumsum(data.lengths[data.order])

    def tokens_at(step: int) -> int:
        return int(tokens[min(step * global_batch, len(tokens)) - 1]) if step else 0

    train = [r for r in log_history if "loss" in r]
    evals = {r["step"]: r["eval_loss"] for r in log_history if "eval_loss" in r}
    return {
        "steps": [r["step"] for r in train],
        "train_loss": [r["loss"] for r in train],
        "lr": [r.get("learning_rate") for r in train],
        "tokens": [tokens_at(r["step"]) for r in train],
        "eval_steps": sorted(evals),
        "eval_loss": [evals[s] for s in sorted(evals)],
        "eval_tokens": [tokens_at(s) for s in sorted(evals)],
        "anneal_start_step": (data.manifest["anneal_start"] // global_batch
                              if data.manifest["anneal_start"] < len(data.order) else None),
    }


def plot_losses(curves: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(curves["steps"], curves["train_loss"], label="train", lw=1.2)
    if curves["eval_steps"]:
        ax.plot(curves["eval_steps"], curves["eval_loss"], "o-", label="validation", lw=1.2, ms=3)
    if curves["anneal_start_step"] is not None:
        ax.axvline(curves["anneal_start_step"], color="grey", ls=":", label="annealing")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _save_model(trainer, tokenizer, out: Path) -> None:
    """A plain Hugging Face folder, written aside and renamed so a kill never leaves half of one."""
    tmp = out.with_name(out.name + ".tmp")
    if trainer.args.should_save:  # only the writing rank: another rank's clear would race its save
        shutil.rmtree(tmp, ignore_errors=True)
    from transformers.integrations import is_deepspeed_zero3_enabled

    trainer.model.config.use_cache = True  # the Trainer turns the KV cache off for training
    if is_deepspeed_zero3_enabled():
        trainer.save_model(str(tmp))  # every rank: gathers the ZeRO-3 shards
    elif trainer.args.should_save:
        # The module itself holds full weights below ZeRO-3; its save_pretrained keeps tied
        # embeddings tied (DeepSpeed's state dict would store lm_head.weight a second time).
        # LoRA: the adapters merged into a copy of the weights, so the folder is a plain model
        # that eval, vLLM and lm-evaluation-harness load like any other.
        model = _merged(trainer.model)
        model.config.use_cache = True
        model.save_pretrained(tmp)
    if trainer.args.should_save:
        tokenizer.save_pretrained(tmp)
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle of our settings: not model
        share_folder(tmp)  # save_pretrained leaves model.safetensors 0600
        shutil.rmtree(out, ignore_errors=True)
        tmp.replace(out)


def _merged(model):
    """The plain model: LoRA adapters merged into a copy (training may go on with the adapters)."""
    if not hasattr(model, "peft_config"):
        return model
    import copy

    return copy.deepcopy(model).merge_and_unload()


def _with_lora(model, lora):
    """Low-rank adapters on every linear layer but the output head; the base weights stay frozen."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))


def trained_store(cfg: RunConfig, key: str) -> Path:
    """Where the trained (not interpolated) weights of a run key are kept, so another
    train.interpolate re-mixes them instead of retraining. Read by every run; written (hard links)
    by runs with interpolation or the stage cache."""
    return Path(cfg.run_dir) / ".trained" / key


def train(cfg: RunConfig, callbacks: list | None = None):
    """Train and return (trainer, summary); `callbacks` are extra TrainerCallbacks. The train stage
    (entigraph/stages/train.py) calls this. The trainer is None when the trained weights came from
    the store (trained_store): then only train.interpolate is applied."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, Trainer, default_data_collator

    start = time.perf_counter()
    t, out = cfg.train, artifacts.stage_dir(cfg.out, "train")
    if t.threads:
        torch.set_num_threads(t.threads)
    setup = _setup(cfg, out)
    data, resume = setup["data"], setup["resume"]
    store = trained_store(cfg, setup["key"])
    if (store / "summary.json").is_file() and deepspeed_env.world_size() == 1:
        return None, _from_store(cfg, setup, store, out, time.perf_counter() - start)
    env = deepspeed_env.single_process(cfg.models.cache_dir, setup["cuda"]) if setup["ds_config"] else nullcontext()
    with env:
        args = _training_args(cfg, setup, out / "checkpoints")
        # After TrainingArguments: under ZeRO-3 from_pretrained then loads straight into shards.
        model = AutoModelForCausalLM.from_pretrained(setup["model_path"], dtype=torch.float32)
        if t.lora.enabled:
            model = _with_lora(model, t.lora)
        timer = _step_timer()
        kind, extra, kl = Trainer, {}, {}
        if t.kl.weight > 0:
            kind, extra, kl = _kl_setup(cfg, setup)
        trainer = kind(
            model=model, args=args, train_dataset=BlockDataset(data, data.order, **kl),
            eval_dataset=BlockDataset(data, data.val) if len(data.val) else None,
            data_collator=default_data_collator, processing_class=setup["tokenizer"],
            callbacks=[timer, *(callbacks or [])], **extra,
        )
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        val_loss = trainer.evaluate()["eval_loss"] if len(data.val) else None
        _save_model(trainer, setup["tokenizer"], out / "model")
        is_main = trainer.args.should_save  # read inside: leaving the DeepSpeed env resets this state

    summary: dict[str, Any] = {}
    if is_main:
        summary = _summarize(cfg, setup, trainer, timer, val_loss, out, time.perf_counter() - start)
        if t.interpolate != 1.0 or cfg.stage_cache:
            _keep(out, store, summary)
        if t.interpolate != 1.0:
            summary = _interpolated(cfg, setup, out, summary)
        write_json(out / "summary.json", summary)
        if not t.keep_checkpoints:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return trainer, summary


def _kl_setup(cfg: RunConfig, setup: dict[str, Any]):
    """(Trainer class, its extra arguments, BlockDataset's KL arguments) for train.kl."""
    import torch
    from transformers import AutoModelForCausalLM

    from entigraph.errors import ConfigError

    from .kl import PositionFinder, kl_trainer_class

    names = setup["data"].manifest["sources"]
    codes = tuple(i for i, n in enumerate(names) if n.split(":")[0].split("#")[0] == "rag")
    if not codes:
        raise ConfigError("train.kl: the term applies to the reading examples, and train.mixture has no "
                          "`rag` source")
    base = AutoModelForCausalLM.from_pretrained(setup["model_path"], dtype=torch.float32)
    finder = PositionFinder(setup["tokenizer"], cfg.train.kl.positions, setup["data"].manifest["eos_token_id"])
    return kl_trainer_class(), {"base_model": base, "kl_weight": cfg.train.kl.weight}, \
        {"kl": finder, "kl_sources": codes}


STORED = ("summary.json", "loss.json", "loss.png")


def _link_tree(src: Path, dst: Path) -> None:
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:  # another filesystem
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


def _keep(out: Path, store: Path, summary: dict[str, Any]) -> None:
    """The trained weights and their record, hard-linked into the store (written aside, renamed)."""
    if (store / "summary.json").is_file():
        return
    tmp = store.with_name(store.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _link_tree(out / "model", tmp / "model")
    for name in STORED[1:]:
        if (out / name).is_file():
            shutil.copy2(out / name, tmp / name)
    write_json(tmp / "summary.json", summary)  # last: marks the store complete
    shutil.rmtree(store, ignore_errors=True)
    tmp.replace(store)


def _interpolated(cfg: RunConfig, setup: dict[str, Any], out: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """train/model becomes (1 - a) x base + a x trained (new files: the store's links stay intact)."""
    from .interpolate import interpolate_folder

    interpolate_folder(setup["model_path"], out / "model", cfg.train.interpolate, out / "model")
    return {**summary, "interpolate": cfg.train.interpolate}


def _from_store(cfg: RunConfig, setup: dict[str, Any], store: Path, out: Path, seconds: float) -> dict[str, Any]:
    """The train stage from stored trained weights: copy them, their curves and summary, and mix."""
    print(f"[train] the trained weights of this run key are stored in {store}: not retraining", file=sys.stderr)
    shutil.rmtree(out / "model", ignore_errors=True)
    _link_tree(store / "model", out / "model")
    for name in STORED[1:]:
        if (store / name).is_file():
            shutil.copy2(store / name, out / name)
    summary = {**read_json(store / "summary.json"), "model": str(out / "model"), "reused_training": str(store),
               "seconds": round(seconds, 2), "resumed_from_step": None}
    if cfg.train.interpolate != 1.0:
        summary = _interpolated(cfg, setup, out, summary)
    write_json(out / "summary.json", summary)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return summary


def _setup(cfg: RunConfig, out: Path) -> dict[str, Any]:
    """Hardware, DeepSpeed config, tokenizer, packed data and the checkpoint to resume from."""
    from transformers import AutoTokenizer

    t = cfg.train
    out.mkdir(parents=True, exist_ok=True)
    cuda = deepspeed_env.use_cuda(cfg.device)
    bf16 = t.bf16 and deepspeed_env.bf16_supported(cuda)
    ds_path = deepspeed_env.resolve_config(t.deepspeed)
    ds_config = deepspeed_env.read_deepspeed_config(ds_path, bf16) if ds_path else None
    model_path = resolve_lm(cfg.models.base, cfg.models.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    global_batch = t.micro_batch_size * t.grad_accum * deepspeed_env.world_size()
    # Every rank passes here; the first packs the data (and self-synthesises replay), the others
    # then load what it stored.
    with file_lock(out / ".data.lock"):  # a wait names the rank that holds it
        replay, replay_info = replay_texts(cfg, out / "data", tokenizer, _model_loader(model_path, cuda))
        data = build(cfg, tokenizer, replay, global_batch, out / "data")
        key = run_key(cfg, data, model_path, ds_config, bf16)
        resume = prepare_checkpoints(out / "checkpoints", key)
    return dict(cuda=cuda, bf16=bf16, ds_path=ds_path, ds_config=ds_config, model_path=model_path,
                tokenizer=tokenizer, global_batch=global_batch, data=data, replay_info=replay_info, resume=resume,
                key=key)


def _training_args(cfg: RunConfig, setup: dict[str, Any], ckpt_dir: Path):
    from transformers import TrainingArguments

    t, data = cfg.train, setup["data"]
    return TrainingArguments(
        output_dir=str(ckpt_dir),
        # The order already holds every epoch (and the anneal tail): one sequential pass.
        num_train_epochs=1,
        train_sampling_strategy="sequential",
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a share of the steps
        weight_decay=t.weight_decay,
        bf16=setup["bf16"],
        gradient_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        eval_strategy="steps" if len(data.val) else "no",
        eval_steps=t.eval_steps or max(1, math.ceil(data.manifest["steps"] / 10)),
        eval_on_start=bool(len(data.val)) and setup["resume"] is None,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=SAVE_TOTAL_LIMIT,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        remove_unused_columns=t.kl.weight == 0,  # train.kl: the dataset's kl_mask column reaches compute_loss
        use_cpu=not setup["cuda"],
        deepspeed=setup["ds_config"],
        report_to="none",
        disable_tqdm=False,
    )


def _summarize(cfg: RunConfig, setup: dict[str, Any], trainer, timer, val_loss: float | None, out: Path,
               seconds: float) -> dict[str, Any]:
    """The summary the stage records; tokens/s counts only this session's steps (after a resume)."""
    import torch

    t, data, global_batch = cfg.train, setup["data"], setup["global_batch"]
    curves = loss_curves(trainer.state.log_history, data, global_batch)
    write_json(out / "loss.json", curves)
    plot_losses(curves, out / "loss.png")
    done = trainer.state.global_step
    first_step = checkpoint_step(setup["resume"]) if setup["resume"] else 0
    trained = np.cumsum(data.lengths[data.order])
    session_tokens = int(trained[min(done * global_batch, len(trained)) - 1]
                         - (trained[first_step * global_batch - 1] if first_step else 0))
    return {
        "model": str(out / "model"),
        "base_model": setup["model_path"],
        "mixture": [dataclasses.asdict(m) for m in t.mixture],
        "lora": dataclasses.asdict(t.lora) if t.lora.enabled else None,
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "tokens_by_source": data.manifest["train_tokens_by_source"],
        "replay": setup["replay_info"],
        "blocks": {"train": data.manifest["train_blocks"], "val": data.manifest["val_blocks"]},
        "block_size": t.block_size,
        "global_batch": global_batch,
        "steps": done,
        "train_loss": curves["train_loss"][-1] if curves["train_loss"] else None,
        "val_loss": val_loss,
        "val_loss_before": curves["eval_loss"][0] if curves["eval_steps"] and curves["eval_steps"][0] == 0 else None,
        "resumed_from_step": first_step or None,
        "tokens_per_s": session_tokens / timer.seconds if timer.seconds else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if setup["cuda"] else None,
        "seconds": round(seconds, 2),
        "deepspeed": str(setup["ds_path"]) if setup["ds_path"] else None,
        "deepspeed_config": setup["ds_config"],
        "bf16": setup["bf16"],
        "bf16_requested": t.bf16,
        "device": "cuda" if setup["cuda"] else "cpu",
        "world_size": deepspeed_env.world_size(),
        "threads": torch.get_num_threads(),
        "data_hash": data.manifest["content_hash"],
    }


def _model_loader(model_path: str, cuda: bool):
    """Loads the base model for self-synthesised replay (only called when replay.jsonl is made)."""

    def load():
        import torch
        from transformers import AutoModelForCausalLM

        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if cuda else "cpu"
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
        return AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)

    return load
