"""Artifacts other tools read: the kept corpus as a dataset (disk and parquet) with a card filled from
the run's records, the model card, and lm-evaluation-harness on a trained folder."""

from pathlib import Path

import pytest

from entigraph.config import RunConfig
from entigraph.export import export_corpus, model_card
from entigraph.io import write_json, write_jsonl
from entigraph.records import SynthPassage, to_dict

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path):
    cfg = RunConfig(name="exp", run_dir=str(tmp_path))
    kept = [SynthPassage(task_id=f"t{i}", mode=m, entities=["Marit Ellery"], doc_ids=["d1"], passage_ids=["d1:p0"],
                         text=f"Marit Ellery kept the station, passage {i}.", model="gen-7b", backend="vllm",
                         template="pair.txt", completion_tokens=10 + i)
            for i, m in enumerate(["pair", "pair", "permute"])]
    write_jsonl(cfg.out / "filter" / "kept.jsonl", [to_dict(p) for p in kept])
    write_json(cfg.out / "filter" / "report.json", {"input": 7, "filters": [
        {"filter": "noise", "dropped": 3, "tokens_dropped": 40}, {"filter": "grounding", "dropped": 1}]})
    write_json(cfg.out / "synthesize" / "summary.json", {"model": "gen-7b", "backend": "vllm"})
    write_json(cfg.out / "extract" / "summary.json", {"documents": 2, "words": 1234})
    return cfg


def test_corpus_exports_read_back_with_datasets_and_the_card_comes_from_the_records(run):
    import datasets

    folder = export_corpus(run)
    disk = datasets.load_from_disk(str(folder))
    parquet = datasets.load_dataset("parquet", data_files=str(run.out / "export" / "corpus.parquet"))["train"]
    assert disk["text"] == parquet["text"] and len(disk) == 3
    assert disk[2]["mode"] == "permute" and disk[0]["passage_ids"] == ["d1:p0"]
    card = (folder / "README.md").read_text()
    assert "3 passages, 33 tokens, written by `gen-7b` (vllm backend) about 2 source documents (1,234 words" in card
    assert "| noise | 3 | 40 |" in card and "| pair | 2 | 21 |" in card and "out of 7 generated" in card


def test_model_card_has_the_mixture_and_then_the_evaluation(run):
    model = run.out / "train" / "model"
    model.mkdir(parents=True)
    write_json(run.out / "train" / "summary.json", {"tokens_by_source": {"raw": 3000, "replay": 1000}, "steps": 12,
                                                    "global_batch": 4, "deepspeed": None})
    card = model_card(run).read_text()
    assert "| raw | 3,000 | 75.0% |" in card and "12 steps" in card and "Not evaluated yet" in card
    write_json(run.out / "results.json", {"questions": 50, "scoring": "length_norm", "conditions": {
        "cpt_closed": {"accuracy": 0.5, "ci95": [0.36, 0.64]}}})
    card = model_card(run).read_text()
    assert "| cpt_closed | 50.0% | [36.0%, 64.0%] |" in card and card.startswith("---\nlibrary_name: transformers")


def test_lm_evaluation_harness_runs_on_a_trained_folder(tmp_path, tiny_lm, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from entigraph.records import Document
    from entigraph.training.trainer import train

    cfg = RunConfig(name="t", run_dir=str(tmp_path))
    cfg.models.base, cfg.device = tiny_lm, "cpu"
    t = cfg.train
    t.deepspeed, t.data, t.block_size, t.max_steps, t.val_fraction = None, "raw", 32, 2, 0.0
    t.replay.source, t.threads, t.lora.enabled = "none", 1, True  # a merged LoRA folder: the harder case
    text = "Marit Ellery kept the Quarrow tide station for thirty-one years. " * 6
    write_jsonl(cfg.out / "extract" / "documents.jsonl", [to_dict(Document("d", "Quarrow", text))])
    train(cfg)
    folder = cfg.out / "train" / "model"
    monkeypatch.chdir(REPO)  # the task's data file path is relative to the repository
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={folder},device=cpu",
                                  tasks=["entigraph_tiny"], batch_size=2,
                                  task_manager=TaskManager(include_path=str(REPO / "tests" / "data" / "lm_eval")))
    acc = out["results"]["entigraph_tiny"]["acc,none"]
    assert 0.0 <= acc <= 1.0 and out["n-samples"]["entigraph_tiny"]["effective"] == 4
