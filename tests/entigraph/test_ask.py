"""`entigraph ask`: the plumbing, with the tiny model and a fixed embedder."""

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


class Scripted(Recorder):
    """A model that answers, then runs on the way a small model does."""

    def __init__(self, text):
        super().__init__()
        self.text = text

    def generate(self, requests):
        self.seen += requests
        return [Generation(self.text, 10, 30, "length")]


def test_ask_retrieves_cites_and_prompts_with_the_chunks(run):
    fake = Recorder()
    answer = ask_mod.ask(run, "Who kept the Quarrow tide station?", backend=fake)
    # the model cited nothing: the source holding the answer's words is cited, and marked as matched
    assert answer.answer == "Marit Ellery kept it. [1]" and answer.cited == [1] and answer.cited_by == "overlap"
    assert answer.model.endswith("train/model")
    assert answer.citations[0]["doc_id"] == "d1" and answer.citations[0]["where"] == "p. 3"
    prompt = fake.seen[0].messages[0]["content"]
    assert "[1] The Quarrow Tide Station: Marit Ellery kept" in prompt and "Question: Who kept" in prompt
    text = ask_mod.format_answer(answer)
    assert "(d1, p. 3; score" in text and "<- cited (matched by its words)" in text
    assert text.splitlines()[-1] == "Marit Ellery kept it. [1]"  # nothing after the answer
    closed = ask_mod.ask(run, "Who kept it?", closed_book=True, backend=Recorder())
    assert closed.citations == [] and "closed-book" in ask_mod.format_answer(closed)


def test_the_answer_stops_where_the_model_starts_inventing(run):
    runaway = "Jonas Pell rowed to Saltmere [1].\n\n[4] An invented passage.\nQuestion: and another?"
    a = ask_mod.ask(run, "Who rowed to Saltmere?", backend=Scripted(runaway))
    assert a.citations[0]["doc_id"] == "d2"  # BM25 finds only the Saltmere document
    assert a.answer == "Jonas Pell rowed to Saltmere [1]." and a.cited == [1] and a.cited_by == "model"
    for tail in ("\nQuestion: What else?", "Question: What else?", "\n[3] Passage", "\nPassage 3",
                 " She was the first woman to keep it.", "\n\nIn 1947 she"):
        assert ask_mod.cut("In 1946 [1]." + tail) == "In 1946 [1]."
    assert ask_mod.cut("Answer: In 1946. [2] She kept it.") == "In 1946. [2]"  # label off, citation kept
    # a number the model invented ([7] of one source) is dropped; the real source is matched instead
    a = ask_mod.ask(run, "Who rowed to Saltmere?", backend=Scripted("Jonas Pell rowed [7]."))
    assert a.answer == "Jonas Pell rowed. [1]" and a.cited == [1] and a.cited_by == "overlap"
    a = ask_mod.ask(run, "Who rowed?", backend=Scripted("  \n"))
    assert a.answer == "(no answer)" and a.cited == []
    a = ask_mod.ask(run, "Who rowed?", backend=Scripted("I do not know."))
    assert a.cited == [] and a.cited_by == "none" and a.answer == "I do not know."
    # a year no source holds is supported by none, however many other words match
    a = ask_mod.ask(run, "Who rowed?", backend=Scripted("Jonas Pell rowed the boat Patience in 1971."))
    assert a.cited == [] and a.cited_by == "none"
    a = ask_mod.ask(run, "Who rowed?", backend=Scripted("Jonas Pell rowed the boat Patience in 1963."))
    assert a.cited == [1] and a.cited_by == "overlap"


def test_ask_command_answers_with_the_tiny_model(run, tiny_lm, capsys, monkeypatch):
    # the run's "adapted model" is the tiny model itself: the real backend path, end to end
    import shutil

    from entigraph import backends

    shutil.rmtree(run.out / "train" / "model")
    shutil.copytree(tiny_lm, run.out / "train" / "model")
    loads = []
    real = backends.get_backend
    monkeypatch.setattr(backends, "get_backend", lambda *a, **k: loads.append(1) or real(*a, **k))
    code = main(["ask", str(run.out), "Who rowed to Saltmere?", "Who kept the station?", "--max-new-tokens", "4",
                 "--set", "device=cpu"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0 and len(loads) == 1  # two questions, one model load
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 2 and all(b.startswith("[1] ") and len(b.splitlines()) >= 2 for b in blocks)
    assert "Saltmere" in blocks[0] and "(d2" in blocks[0].splitlines()[0]
    assert "%|" not in out + captured.err and "Loading weights" not in out + captured.err  # no progress bars
    assert main(["ask", str(run.out.parent / "nowhere"), "q"]) == 2


def test_ask_reads_questions_from_standard_input_with_one_load(run, monkeypatch, capsys):
    import io

    made = []

    class Counting(ask_mod.Asker):
        def __init__(self, cfg, **kw):
            made.append(1)
            super().__init__(cfg, backend=Recorder(), **{k: v for k, v in kw.items() if k != "backend"})

    monkeypatch.setattr(ask_mod, "Asker", Counting)
    monkeypatch.setattr("sys.stdin", io.StringIO("Who kept the station?\n\nWho rowed to Saltmere?\n"))
    assert main(["ask", str(run.out)]) == 0
    out = capsys.readouterr().out
    assert made == [1] and out.count("Marit Ellery kept it.") == 2


def test_the_local_model_generation_is_capped_and_given_the_stop_sequences(run, tiny_lm, monkeypatch):
    from entigraph.backends.hf import HFBackend

    backend = HFBackend(tiny_lm, device="cpu")
    seen = {}
    generate = backend.lm.generate

    def spy(**kw):
        seen.update(kw)
        seen["new"] = (out := generate(**kw)).shape[1] - kw["input_ids"].shape[1]
        return out

    monkeypatch.setattr(backend.lm, "generate", spy)
    a = ask_mod.ask(run, "Who rowed to Saltmere?", backend=backend, max_new_tokens=5)
    assert seen["max_new_tokens"] == 5 and "Question:" in seen["stop_strings"] and seen["do_sample"] is False
    assert 0 < seen["new"] <= 5 and a.answer


def test_at_a_terminal_ask_prompts_and_an_empty_line_ends_it(monkeypatch, capsys):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal("Who kept it?\n\nnever asked\n"))
    assert list(ask_mod._questions([])) == ["Who kept it?"]
    assert capsys.readouterr().err.count("question (empty line to stop)> ") == 2
    assert list(ask_mod._questions(["given"])) == ["given"]  # questions on the command line: no prompt
