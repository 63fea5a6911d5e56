"""Artifacts other tools read: the kept corpus as a dataset (disk and parquet) with a card filled from
the run's records, the model card, and lm-evaluation-harness on a trained folder."""

from pathlib import Path

import pytest

from entigraph.config import MixtureSource, RunConfig
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
    from huggingface_hub import DatasetCard

    folder = export_corpus(run)
    disk = datasets.load_from_disk(str(folder))
    parquet = datasets.load_dataset("parquet", data_files=str(run.out / "export" / "corpus.parquet"))["train"]
    assert disk["text"] == parquet["text"] and len(disk) == 3
    assert disk[2]["mode"] == "permute" and disk[0]["passage_ids"] == ["d1:p0"]
    card = DatasetCard.load(folder / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "unknown" and meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"] and "synthetic" in meta["tags"] and meta["pretty_name"]
    text = card.text
    assert "3 passages, 33 tokens about 2 source documents (1,234 words" in text and "out of 7 made" in text
    assert "| noise | 3 | 40 |" in text
    # each mode's origin from its own records: pair was written by gen-7b, permute by no model at all
    assert "| pair | 2 | 21 | written by `gen-7b` (vllm backend) |" in text
    assert "| permute | 1 | 12 | generator-free" in text
    assert (folder / "README.md").stat().st_mode & 0o777 == 0o644


def test_dataset_card_names_the_hub_model_and_the_demo_license(run):
    from huggingface_hub import DatasetCard

    run.corpus.paths = ["demo"]
    kept = [SynthPassage(task_id="t", mode="pair", entities=[], doc_ids=[], passage_ids=[], text="a | b",
                         model="smollm2-135m-instruct", backend="hf", completion_tokens=3)]
    write_jsonl(run.out / "filter" / "kept.jsonl", [to_dict(p) for p in kept])
    card = DatasetCard.load(export_corpus(run) / "README.md")
    assert card.data.license == "cc0-1.0"
    assert card.data.to_dict()["source_models"] == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert "written by `HuggingFaceTB/SmolLM2-135M-Instruct` (hf backend)" in card.text


def test_markdown_table_cells_escape_pipes():
    from entigraph.export import _table

    assert _table(["a"], [["x | y"]]).splitlines()[-1] == "| x \\| y |"


def test_hub_ids():
    from entigraph.export import hub_id

    assert hub_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert hub_id("/tmp/some/folder") is None and hub_id("local-name") is None


def test_model_card_has_the_mixture_and_then_the_evaluation(run):
    from huggingface_hub import ModelCard

    model = run.out / "train" / "model"
    model.mkdir(parents=True)
    run.corpus.hub_dataset = "someone/exp-corpus"
    write_json(run.out / "train" / "summary.json", {"tokens_by_source": {"raw": 3000, "replay": 1000}, "steps": 12,
                                                    "global_batch": 4, "deepspeed": None})
    card = ModelCard.load(model_card(run))
    assert "| raw | 3,000 | 75.0% |" in card.text and "12 steps" in card.text and "Not evaluated yet" in card.text
    assert card.data.eval_results is None
    write_json(run.out / "results.json", {"questions": 50, "scoring": "length_norm", "conditions": {
        "base_closed": {"accuracy": 0.25, "ci95": [0.14, 0.38]},
        "cpt_closed": {"accuracy": 0.5, "ci95": [0.36, 0.64]}}})
    path = model_card(run)
    card = ModelCard.load(path)
    d = card.data
    assert d.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and d.license == "apache-2.0"
    assert d.pipeline_tag == "text-generation" and d.library_name == "transformers"
    assert d.datasets == ["someone/exp-corpus"]
    # model-index: one result per condition, the Hub's own parser reads them back
    got = {r.metric_config: r.metric_value for r in d.eval_results}
    assert got == {"base_closed": 0.25, "cpt_closed": 0.5} and d.model_name == "exp"
    assert "| cpt_closed | 50.0% | [36.0%, 64.0%] |" in card.text
    assert path.stat().st_mode & 0o777 == 0o644


def test_model_card_of_a_local_base_has_no_base_model_and_takes_its_license(run, tmp_path):
    from huggingface_hub import ModelCard

    base = tmp_path / "base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\n---\n# a local model\n")
    run.models.base = str(base)
    (run.out / "train" / "model").mkdir(parents=True)
    write_json(run.out / "train" / "summary.json", {"tokens_by_source": {"raw": 10}, "steps": 1})
    d = ModelCard.load(model_card(run)).data
    assert d.base_model is None and d.license == "mit" and d.datasets is None


def test_lm_evaluation_harness_runs_on_a_trained_folder(tmp_path, tiny_lm, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from entigraph.records import Document
    from entigraph.training.trainer import train

    cfg = RunConfig(name="t", run_dir=str(tmp_path))
    cfg.models.base, cfg.device = tiny_lm, "cpu"
    t = cfg.train
    t.deepspeed, t.block_size, t.max_steps, t.val_fraction = None, 32, 2, 0.0
    t.mixture = [MixtureSource(source="raw", epochs=2.0)]
    t.replay.source, t.threads, t.lora.enabled = "none", 1, True  # a merged LoRA folder: the harder case
    text = "Marit Ellery kept the Quarrow tide station for thirty-one years. " * 6
    write_jsonl(cfg.out / "extract" / "documents.jsonl", [to_dict(Document("d", "Quarrow", text))])
    train(cfg)
    folder = cfg.out / "train" / "model"
    # readable by the group (a shared runs/): transformers writes model.safetensors 0600
    assert {f.name: f.stat().st_mode & 0o777 for f in folder.iterdir()} == {f.name: 0o644 for f in folder.iterdir()}
    monkeypatch.chdir(REPO)  # the task's data file path is relative to the repository
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={folder},device=cpu",
                                  tasks=["entigraph_tiny"], batch_size=2,
                                  task_manager=TaskManager(include_path=str(REPO / "tests" / "data" / "lm_eval")))
    acc = out["results"]["entigraph_tiny"]["acc,none"]
    assert 0.0 <= acc <= 1.0 and out["n-samples"]["entigraph_tiny"]["effective"] == 4
