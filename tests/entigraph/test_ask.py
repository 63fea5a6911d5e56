"""`entigraph ask`: the plumbing, with the tiny model and a fixed embedder."""

import numpy as np
import pytest

from entigraph import ask as ask_mod
from entigraph.backends.base import Generation
from entigraph.cli import main
from entigraph.config import load_config
from entigraph.io import write_jsonl
from entigraph.records import Document, to_dict

DOCS = [
    Document("d1", "The Quarrow Tide Station", "Marit Ellery kept the Quarrow tide station for thirty-one years. "
             "Every morning she walked to the gauge hut on Hobb's Nab.",
             meta={"sections": [{"start": 0, "end": 200, "page": 3}]}),
    Document("d2", "Saltmere", "Jonas Pell rowed the boat Patience across the Merrin Sound to Saltmere in 1963."),
]


class Recorder:
    name, model = "fake", "fake"

    def __init__(self):
        self.seen = []

    def generate(self, requests):
        self.seen += requests
        return [Generation("Marit Ellery kept it.", 10, 5, "stop")]

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


@pytest.fixture
def run(tmp_path, tiny_lm, monkeypatch):
    cfg = load_config("configs/demo.yaml", [f"run_dir={tmp_path}", "name=a", f"models.base={tiny_lm}",
                                            "eval.retrieval.method=bm25", "eval.retrieval.top_k=2"])
    write_jsonl(cfg.out / "extract" / "documents.jsonl", [to_dict(d) for d in DOCS])
    (cfg.out / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
    from entigraph.pipeline import save_config

    save_config(cfg)
    model = cfg.out / "train" / "model"
    model.mkdir(parents=True)
    return cfg


def test_ask_retrieves_cites_and_prompts_with_the_chunks(run):
    fake = Recorder()
    answer = ask_mod.ask(run, "Who kept the Quarrow tide station?", backend=fake)
    assert answer.answer == "Marit Ellery kept it." and answer.model.endswith("train/model")
    assert answer.citations[0]["doc_id"] == "d1" and answer.citations[0]["where"] == "p. 3"
    prompt = fake.seen[0].messages[0]["content"]
    assert "[1] The Quarrow Tide Station: Marit Ellery kept" in prompt and "Question: Who kept" in prompt
    text = ask_mod.format_answer(answer)
    assert "Sources given to the model:" in text and "(d1, p. 3; score" in text
    closed = ask_mod.ask(run, "Who kept it?", closed_book=True, backend=Recorder())
    assert closed.citations == [] and "closed-book" in ask_mod.format_answer(closed)


def test_ask_command_answers_with_the_tiny_model(run, tiny_lm, capsys):
    # the run's "adapted model" is the tiny model itself: the real backend path, end to end
    import shutil

    shutil.rmtree(run.out / "train" / "model")
    shutil.copytree(tiny_lm, run.out / "train" / "model")
    code = main(["ask", str(run.out), "Who rowed to Saltmere?", "--max-new-tokens", "4", "--set", "device=cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "Sources given to the model:" in out and "Saltmere" in out
    assert main(["ask", str(run.out.parent / "nowhere"), "q"]) == 2
