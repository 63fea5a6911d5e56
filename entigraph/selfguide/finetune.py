"""Supervised fine-tuning on the kept examples (loss on output tokens only) and greedy prediction.

A plain PyTorch loop: SELF-GUIDE sets are tens to thousands of short examples, so there is no
packing (the CPT trainer's job) and no DeepSpeed. The learning rate is constant after a short
warmup, so the model after epoch e is exactly the model an e-epoch run would give: one run
serves every epoch count in the search grid.
"""

from __future__ import annotations

import contextlib
import random
from typing import Callable

import torch
from tqdm import tqdm

from .settings import FinetuneConfig
from .tasks import Task, solve_messages

IGNORE = -100


def prompt_text(tokenizer, task: Task, text: str, shots: int | None) -> str:
    return tokenizer.apply_chat_template(solve_messages(task, text, shots), tokenize=False,
                                         add_generation_prompt=True)


def build_features(tokenizer, prompt: str, output: str, max_length: int) -> dict[str, list[int]]:
    """input_ids = prompt + output + end-of-turn; labels = -100 over the prompt.

    Prompt and output are tokenised separately so the mask boundary is exact; an over-long
    prompt loses its start (the instruction), never the output.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    output_ids = tokenizer(output.strip(), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    output_ids = output_ids[:max_length]
    prompt_ids = prompt_ids[max(0, len(prompt_ids) - (max_length - len(output_ids))):]
    return {"input_ids": prompt_ids + output_ids, "labels": [IGNORE] * len(prompt_ids) + output_ids}


def collate(features: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        ids[i, :n] = torch.tensor(f["input_ids"])
        labels[i, :n] = torch.tensor(f["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def finetune(model, tokenizer, features: list[dict], cfg: FinetuneConfig, epochs: int, seed: int,
             on_epoch: Callable[[int, float], None] | None = None) -> list[dict]:
    """Train `epochs` epochs in place; calls on_epoch(epoch, mean loss) after each. Returns the log."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(cfg.warmup_steps, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (warmup + 1)))
    rng = random.Random(seed)
    log = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = list(range(len(features)))
        rng.shuffle(order)
        losses = []
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        for idx in tqdm(batches, desc=f"finetune epoch {epoch}/{epochs}", unit="batch", leave=False):
            batch = {k: v.to(device) for k, v in collate([features[i] for i in idx], pad_id).items()}
            with autocast(device, cfg.bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        mean = sum(losses) / max(len(losses), 1)
        log.append({"epoch": epoch, "loss": mean, "steps": len(batches)})
        if on_epoch is not None:
            on_epoch(epoch, mean)
    model.eval()
    return log


@torch.no_grad()
def predict(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
            bf16: bool = True, desc: str = "predict") -> list[str]:
    """Greedy completions of chat-formatted prompts (left-padded batches, longest first)."""
    device = next(model.parameters()).device
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths pad less
    out: list[str] = [""] * len(prompts)
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            with autocast(device, bf16):
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(idx, texts):
                out[i] = text
    finally:
        tokenizer.padding_side = side
    return out
