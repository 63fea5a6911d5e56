"""End to end on the tiny model with a scripted backend: search, test, files, resume, report."""

import json

import pytest

from entigraph.backends.base import Generation
from entigraph.errors import ConfigError, InputError
from entigraph.io import read_json, read_jsonl
from entigraph.selfguide import recipe as sg_run
from entigraph.selfguide.settings import load_config

NAMES = "Mara Oskar Lumen Kettle Harbour Guild Velt Brenn Bay Point Tidal Clock Salt Marsh River Hill".split()


def write_data(root):
    tasks = [
        {"task": "cls", "kind": "classification", "metric": "exact_match", "instruction": "Is it about water?",
         "examples": [{"input": "The river runs past the mill", "output": "yes"},
                      {"input": "The clock on the old tower", "output": "no"},
                      {"input": "Salt water in the marsh pools", "output": "yes"}],
         "labels": ["yes", "no"], "noise_terms": ["input"]},
        {"task": "gen", "kind": "generation", "metric": "rouge_l", "instruction": "Name the topic.",
         "examples": [{"input": "Fact: the tide rises twice a day", "output": "tides"},
                      {"input": "Fact: clocks measure passing time", "output": "clocks"}],
         "labels": None, "noise_terms": []},
    ]
    (root / "tasks.jsonl").write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    for split in ("validation", "test"):
        (root / split).mkdir()
        (root / split / "cls.jsonl").write_text("\n".join(
            json.dumps({"input": f"{NAMES[i]} walks by the {NAMES[i + 1]}", "output": "yes" if i % 2 else "no"})
            for i in range(6)))
        (root / split / "gen.jsonl").write_text("\n".join(
            json.dumps({"input": f"Fact: {NAMES[i]} loves the sea", "output": NAMES[i].lower()}) for i in range(5)))


class ScriptedBackend:
    """Generation prompts get a fresh input; task prompts get the label or a topic word."""

    name, model = "scripted", "scripted"

    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += 1
        out = []
        for r in requests:
            prompt = r.messages[-1]["content"]
            n = r.seed % 1000
            if "Write one new input" in prompt:
                text = f"Input: The {NAMES[n % 16]} and {NAMES[(n // 16) % 16]} near {n}"
                if "Fact" in prompt or "topic" in prompt:
                    text = f"Fact: {NAMES[n % 16]} likes {NAMES[(n // 7) % 16]} {n}"
            elif "Answer with one of" in prompt:
                text = ["yes", "no", "Yes."][n % 3]
            else:
                text = NAMES[n % 2].lower()
            out.append(Generation(text=text, completion_tokens=5))
        return out


@pytest.fixture
def cfg(tmp_path, tiny_lm):
    data = tmp_path / "data"
    data.mkdir()
    write_data(data)
    return load_config(None, [
        f"run_dir={tmp_path / 'runs'}", "name=e2e", f"data_dir={data}", f"backend.model={tiny_lm}",
        "val_tasks=[cls, gen]", "test_tasks=[cls, gen]", "generation.num_inputs=8",
        "generation.batch_size=4", "annotation.samples=3", "annotation.min_votes=1",
        "filter.length_sigma=5", "search.temperatures=[0.7, 1.0]", "search.epochs=[1, 2]",
        "finetune.batch_size=4", "finetune.lr=1e-3", "finetune.bf16=false", "eval.bootstrap=50",
        "eval.max_new_tokens_generation=4",
    ])


def test_end_to_end_then_resume(cfg):
    backend = ScriptedBackend()
    summary = sg_run.run(cfg, backend=backend, echo=lambda s: None)
    out = cfg.out
    results = read_json(out / "results.json")
    assert set(summary["test"]) == {"cls", "gen"}
    assert len(results["search"]["points"]) == 4
    choice = results["search"]["choice"]
    assert choice["worst"] == max(min(p["gains"].values()) for p in results["search"]["points"])
    for r in results["test"]:
        assert r["split"] == "test" and r["baseline"]["n"] == r["selfguide"]["n"]
        assert r["data"]["generated"] == 8 and r["data"]["kept"] > 0  # the fine-tuning path ran
        assert r["data"]["kept"] + sum(r["data"]["dropped"].values()) == 8
        folder = next((out / r["task"]).glob(f"t{r['temperature']:g}-*"))
        kept = list(read_jsonl(folder / "kept.jsonl"))
        dropped = list(read_jsonl(folder / "dropped.jsonl"))
        assert len(kept) == r["data"]["kept"] and all(d["reason"] for d in dropped)
        assert len(list(read_jsonl(folder / "inputs.jsonl"))) == 8
    cls_data = next(r for r in results["test"] if r["task"] == "cls")["data"]
    assert set(cls_data["labels"]) <= {"yes", "no"}
    assert len(set(cls_data["labels"].values())) <= 1  # balanced
    html = (out / "report.html").read_text()
    assert "SELF-GUIDE" in html and "cls" in html and "[" in html

    calls = backend.calls
    again = sg_run.run(cfg, backend=backend, echo=lambda s: None)
    assert backend.calls == calls  # every step was skipped
    assert again["test"] == summary["test"]


def test_main_reports_config_errors(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("val_tasks: [a]\ngeneration:\n  num_input: 3\n")
    assert sg_run.main([str(path)]) == 2
    assert "generation.num_input" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="min_votes"):
        load_config(None, ["val_tasks=[a]", "annotation.min_votes=5"])
    with pytest.raises(ConfigError, match="val_tasks"):
        load_config(None, [])


def test_unknown_task_is_an_input_error(cfg):
    cfg.val_tasks = ["nope"]
    with pytest.raises(InputError, match="nope"):
        sg_run.run(cfg, backend=ScriptedBackend(), echo=lambda s: None)
