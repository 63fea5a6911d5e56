"""An LLM judge of faithfulness to the passage's context."""

from __future__ import annotations

import re

from tqdm import tqdm

from ..backends.base import Request
from ..config import SamplingConfig
from .base import Filter, Flag

JUDGE_PROMPT = """Context:
{context}

Passage:
{passage}

Is every statement in the passage supported by the context? Rate the passage's faithfulness to the \
context from 1 (mostly invented or contradicted) to 5 (fully supported). Answer with a single digit."""
_SCORE = re.compile(r"\b([1-5])\b")


def parse_score(text: str) -> int | None:
    m = _SCORE.search(text)
    return int(m.group(1)) if m else None


class Judge(Filter):
    """LLM judge of faithfulness to the given context (1-5), greedy decoding. A reply without a
    score keeps the passage (a judge failure is not evidence against it) and is recorded."""

    name = "judge"
    expensive = True

    def __init__(self, threshold: int, batch_size: int):
        self.threshold, self.batch_size = threshold, batch_size
        self.scores: dict[str, int | None] = {}
        self.unparseable: list[dict] = []

    def run(self, passages, ctx):
        if ctx.judge is None:
            raise ValueError("filter.judge is on but no judge backend was given")
        sampling = SamplingConfig(temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=8)
        requests = [Request(messages=[{"role": "user", "content": JUDGE_PROMPT.format(
            context="\n\n".join(ctx.source.get(pid, "") for pid in p.passage_ids), passage=p.text)}],
            sampling=sampling, seed=0) for p in passages]
        gens = []
        for i in tqdm(range(0, len(requests), self.batch_size), desc="judge", leave=False):
            gens += ctx.judge.generate(requests[i:i + self.batch_size])
        flags: list[Flag | None] = []
        threshold = self.threshold
        for p, g in zip(passages, gens):
            score = None if g.error else parse_score(g.text)
            self.scores[p.task_id] = score
            if score is None:
                self.unparseable.append({"task_id": p.task_id, "reply": g.text[:200], "error": g.error})
                flags.append(None)
            else:
                flags.append(Flag(f"judge score {score} < judge_threshold {threshold}")
                             if score < threshold else None)
        return flags
