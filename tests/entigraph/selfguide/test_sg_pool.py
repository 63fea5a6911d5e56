"""Input generation: pool mixing, label-conditioned prompts, parsing, resume."""

import json

from entigraph.backends.base import Generation
from entigraph.selfguide.settings import GenerationConfig, SGFilterConfig
from entigraph.selfguide.gates import InputFilter
from entigraph.selfguide.generate import generate_inputs, mix_demos, parse_input, target_label
from entigraph.selfguide.log import read_log
from entigraph.selfguide.tasks import Task

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()


def cls_task():
    return Task(task="t1", kind="classification", metric="exact_match", instruction="Is it positive?",
                examples=[{"input": f"seed sentence number {w} here", "output": lab}
                          for w, lab in zip(WORDS[:4], ["yes", "no", "yes", "no"])],
                labels=["yes", "no"])


class CountingBackend:
    """Answers each generation prompt with a new 5-word input and records the prompts."""

    name, model = "fake", "fake"

    def __init__(self):
        self.prompts = []

    def generate(self, requests):
        out = []
        for r in requests:
            self.prompts.append(r.messages[-1]["content"])
            n = len(self.prompts)
            out.append(Generation(text=f"Input: generated {WORDS[n % 16]} text number {n}"))
        return out


def test_target_labels_cycle_through_the_label_set():
    task = cls_task()
    assert [target_label(task, i) for i in range(5)] == ["yes", "no", "yes", "no", "yes"]


def test_mix_demos_draws_from_seeds_and_pool():
    task = cls_task()
    pool = [{"id": f"p{i}", "input": f"pool input {i}", "target_label": "no"} for i in range(10)]
    seed_idx, pool_ids, demos = mix_demos(task, pool, 7, GenerationConfig(shots=2, pool_examples=3), seed=0)
    assert len(seed_idx) == 2 and len(pool_ids) == 3 and len(demos) == 5
    assert {d["input"] for d in demos} >= {f"pool input {p[1:]}" for p in pool_ids}
    # deterministic per index
    assert mix_demos(task, pool, 7, GenerationConfig(shots=2, pool_examples=3), seed=0)[1] == pool_ids


def test_pool_grows_between_batches_and_prompts_are_label_conditioned(tmp_path):
    task, backend = cls_task(), CountingBackend()
    cfg = GenerationConfig(num_inputs=8, batch_size=4, shots=2, pool_examples=2)
    rows = generate_inputs(task, backend, cfg, InputFilter(task, SGFilterConfig(length_sigma=10)),
                           1.0, tmp_path / "inputs.jsonl")
    assert len(rows) == 8 and all(r["filter"] is None for r in rows)
    assert all(r["pool_ids"] == [] for r in rows[:4])  # empty pool for the first batch
    first_batch = {r["input"] for r in rows[:4]}
    for r, prompt in zip(rows[4:], backend.prompts[4:]):
        assert len(r["pool_ids"]) == 2
        assert any(text in prompt for text in first_batch)
    for r, prompt in zip(rows, backend.prompts):
        assert f'whose correct output is "{r["target_label"]}"' in prompt


def test_generation_resumes_and_tolerates_a_torn_last_line(tmp_path):
    task, path = cls_task(), tmp_path / "inputs.jsonl"
    cfg = GenerationConfig(num_inputs=8, batch_size=4)
    flt = SGFilterConfig(length_sigma=10)
    first = generate_inputs(task, CountingBackend(), cfg, InputFilter(task, flt), 1.0, path)
    with open(path, "a") as f:
        f.write('{"id": "torn", "inp')  # killed mid-write
    again = CountingBackend()
    second = generate_inputs(task, again, cfg, InputFilter(task, flt), 1.0, path)
    assert again.prompts == []  # nothing regenerated
    assert [r["input"] for r in second] == [r["input"] for r in first]
    # more inputs extend the log; the torn line does not break the appended rows
    more = generate_inputs(task, again, GenerationConfig(num_inputs=12, batch_size=4),
                           InputFilter(task, flt), 1.0, path)
    assert len(more) == 12 and len(again.prompts) == 4
    assert len(read_log(path)) == 12
    assert json.loads(path.read_text().splitlines()[-1])["index"] == 11


def test_parse_input_strips_labels_and_trailing_answers():
    assert parse_input("Input: The cat sat.\nOutput: yes") == "The cat sat."
    assert parse_input('"Sentence 1: a. Sentence 2: b." Answer: no') == "Sentence 1: a. Sentence 2: b."
    assert parse_input("claim: x\n perspective: y") == "claim: x\n perspective: y"
