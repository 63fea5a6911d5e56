"""RAG-style training examples (RAFT, Zhang et al. 2024): a question, retrieved chunks, the answer.

Reading its context is what continued pretraining tends to unlearn (docs/results.md: every trained
model read retrieved context worse than the base model). These examples keep the skill in the mix:
the questions come from the corpus itself (answers are spans of a source sentence,
entigraph/facts/transforms.py), the chunk holding the answer sits among distractor passages of the
corpus, and in a share of the examples it is absent, so the model also learns to answer from what it
knows. No example may carry a question of the evaluation set: each candidate is checked against the
run's evaluation questions by word trigram overlap and dropped on a match, and the count is recorded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from entigraph.facts.transforms import reading_tasks
from entigraph.facts.units import source_units
from entigraph.records import Document, Entity, Passage, Question
from entigraph.text import words

CHUNKS = 3  # chunks shown per example, as eval.retrieval.top_k's default
P_GOLD = 0.8  # RAFT: the right chunk is among them in 80 % of the examples
MAX_OVERLAP = 0.5  # a question sharing half its word trigrams with an evaluation question is dropped


@dataclass
class RagExamples:
    texts: list[str]
    dropped_as_eval: int  # candidates too close to an evaluation question
    with_gold: int


def _trigrams(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + 3]) for i in range(len(w) - 2)} or {tuple(w)}


def too_close(question: str, eval_grams: list[set[tuple[str, ...]]]) -> bool:
    q = _trigrams(question)
    return any(len(q & g) / max(1, min(len(q), len(g))) >= MAX_OVERLAP for g in eval_grams)


def render(question: str, chunks: list[str], answer: str) -> str:
    context = "\n\n".join(f"[{i + 1}] {c}" for i, c in enumerate(chunks))
    return f"Context:\n{context}\n\nQuestion: {question}\nAnswer: {answer}"


def rag_examples(documents: list[Document], passages: list[Passage], entities: list[Entity],
                 eval_questions: list[Question], seed: int, per_unit: int = 1) -> RagExamples:
    """One example per mined question (up to `per_unit` per source sentence), in a seeded order."""
    rng = random.Random(seed)
    eval_grams = [_trigrams(q.question + " " + q.answer_text) for q in eval_questions]
    by_doc: dict[str, list[Passage]] = {}
    for p in passages:
        by_doc.setdefault(p.doc_id, []).append(p)
    texts, dropped, gold_count = [], 0, 0
    for unit in source_units(documents, entities):
        tasks = [t for t in reading_tasks(unit) if t.kind != "cloze"]
        for task in rng.sample(tasks, min(per_unit, len(tasks))):
            if too_close(task.question, eval_grams):
                dropped += 1
                continue
            gold = next((p for p in by_doc.get(unit.doc_id, []) if p.start <= task.start and task.end <= p.end), None)
            others = [p for p in passages if p is not gold]
            chunks = rng.sample(others, min(CHUNKS, len(others)))
            if gold is not None and rng.random() < P_GOLD:
                chunks[rng.randrange(len(chunks))] = gold
                gold_count += 1
            texts.append(render(task.question, [c.text for c in chunks], task.answer))
    return RagExamples(texts, dropped, gold_count)
