"""Input generation: the model writes new task inputs at high temperature.

Each prompt shows a random sample of the seed examples mixed with a random sample of the inputs
generated so far (the pool grows batch by batch and pushes away from repeating the seeds). For
classification a target label is drawn first (cycling through the label set, so every label is
asked for equally often) and the prompt asks for an input with that label.
"""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

from tqdm import tqdm

from ..backends.base import Backend, Request
from .settings import GenerationConfig
from .gates import InputFilter
from .log import append_log, read_log, stable_seed
from .tasks import Task

_LEADING_LABEL = re.compile(r"^\s*(?:new\s+)?input\s*:\s*", re.IGNORECASE)
_TRAILING_FIELD = re.compile(r"\s*\b(?:Output|Answer|Label)\s*:|\n\s*Input\s*:", re.IGNORECASE)


def example_id(task: Task, temperature: float, index: int) -> str:
    return f"{task.task}-t{temperature:g}-{index:05d}"


def target_label(task: Task, index: int) -> str | None:
    if not task.is_classification:
        return None
    labels = task.labels or []
    return labels[index % len(labels)]


def generation_messages(task: Task, demos: list[dict], label: str | None) -> list[dict[str, str]]:
    """demos: {input, output?}; classification demos show their label so the model sees what
    an input of each class looks like."""
    parts = [task.instruction.strip()]
    if task.is_classification:
        parts.append("Below are example inputs for this task, each with its correct output.")
        parts += [f"Input: {d['input'].strip()}\nOutput: {d['output']}" for d in demos]
        parts.append(f'Write one new input for this task whose correct output is "{label}". '
                     "Make it different from the examples. Reply with the input only.")
    else:
        parts.append("Below are example inputs for this task.")
        parts += [f"Input: {d['input'].strip()}" for d in demos]
        parts.append("Write one new input for this task. Make it different from the examples. "
                     "Reply with the input only.")
    return [{"role": "user", "content": "\n\n".join(parts)}]


def parse_input(text: str) -> str:
    """Strip an "Input:" prefix, quotes, and anything after the model starts an Output/Answer."""
    text = _LEADING_LABEL.sub("", text.strip())
    text = _TRAILING_FIELD.split(text, maxsplit=1)[0].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def mix_demos(task: Task, pool: list[dict], index: int, cfg: GenerationConfig, seed: int) -> tuple[list[int], list[str], list[dict]]:
    """Seed examples and pool inputs for prompt `index`, shuffled together.
    Returns (seed example indices, pool ids, demos)."""
    rng = random.Random(stable_seed(seed, task.task, "mix", index))
    seed_idx = sorted(rng.sample(range(len(task.examples)), min(cfg.shots, len(task.examples))))
    picked = rng.sample(pool, min(cfg.pool_examples, len(pool)))
    demos = [task.examples[i] for i in seed_idx]
    demos += [{"input": p["input"], "output": p.get("target_label") or ""} for p in picked]
    rng.shuffle(demos)
    return seed_idx, [p["id"] for p in picked], demos


def generate_inputs(task: Task, backend: Backend, cfg: GenerationConfig, input_filter: InputFilter,
                    temperature: float, path: Path, seed: int = 0) -> list[dict]:
    """Generate cfg.num_inputs inputs (resuming from `path`) and return the log rows in order.

    The pool holds the generated inputs that pass `input_filter`; the filter is re-run over the
    log on resume, so a resumed run builds the same pool as an uninterrupted one.
    """
    done = read_log(path)
    sampling = dataclasses.replace(cfg.sampling, temperature=temperature)
    rows: list[dict] = []
    pool: list[dict] = []
    bar = tqdm(total=cfg.num_inputs, desc=f"{task.task} inputs t={temperature:g}", unit="input")
    index = 0
    while index < cfg.num_inputs:
        ids = [example_id(task, temperature, i) for i in range(index, min(index + cfg.batch_size, cfg.num_inputs))]
        if all(i in done and not done[i]["error"] for i in ids):  # failed requests are retried
            batch = [done[i] for i in ids]
        else:
            batch = _generate_batch(task, backend, cfg, pool, index, len(ids), sampling, seed)
            append_log(path, batch)
        for row in batch:
            row["filter"] = input_filter.reason(row["input"])
            if row["filter"] is None:
                pool.append(row)
        rows += batch
        index += len(ids)
        bar.update(len(ids))
    bar.close()
    return rows


def _generate_batch(task: Task, backend: Backend, cfg: GenerationConfig, pool: list[dict],
                    start: int, n: int, sampling, seed: int) -> list[dict]:
    metas, requests = [], []
    for index in range(start, start + n):
        label = target_label(task, index)
        seed_idx, pool_ids, demos = mix_demos(task, pool, index, cfg, seed)
        metas.append({"id": example_id(task, sampling.temperature, index), "index": index,
                      "temperature": sampling.temperature, "target_label": label,
                      "seed_examples": seed_idx, "pool_ids": pool_ids})
        requests.append(Request(generation_messages(task, demos, label), sampling=sampling,
                                seed=stable_seed(seed, task.task, sampling.temperature, index)))
    rows = []
    for meta, gen in zip(metas, backend.generate(requests)):
        failed = gen.finish_reason == "error"
        rows.append({**meta, "raw": gen.text, "input": "" if failed else parse_input(gen.text),
                     "error": gen.error if failed else "", "completion_tokens": gen.completion_tokens})
    return rows
