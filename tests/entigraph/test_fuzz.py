"""Fuzzing the two front doors: 200 generated corpus files and 200 mutated configs. Every case ends
in a clean result or one clear error line (an EntigraphError without a newline), never a traceback."""

import copy
import json
import os
import random
from pathlib import Path

import pytest
import yaml

from entigraph.config import RunConfig, load_config
from entigraph.corpus import load_corpus_report
from entigraph.errors import EntigraphError

SUFFIXES = [".txt", ".md", ".jsonl", ".json", ".pdf", ".html", ".docx", ".pptx", ".rst", ".xyz", ""]
SAMPLE = "The Harbour Board of Quarrow paid for a second gauge in 1964. Café Müller — “quoted” ✓\n"


def _content(rng: random.Random) -> bytes:
    kind = rng.choice(["random", "utf8", "utf16", "utf16-bom", "cp1252", "latin1", "jsonl-cut", "json-cut",
                       "huge-line", "empty", "nul", "html-cut", "pdf-header", "zip-header", "whitespace"])
    text = SAMPLE * rng.randint(1, 40)
    return {
        "random": lambda: rng.randbytes(rng.randint(1, 4096)),
        "utf8": lambda: text.encode("utf-8"),
        "utf16": lambda: text.encode("utf-16-le"),
        "utf16-bom": lambda: text.encode("utf-16"),
        "cp1252": lambda: text.replace("✓", "").replace("“", '"').replace("”", '"').encode("cp1252", "replace"),
        "latin1": lambda: text.encode("latin-1", "replace"),
        "jsonl-cut": lambda: "".join(json.dumps({"text": text, "title": "t"}) + "\n" for _ in range(3)).encode()[:-17],
        "json-cut": lambda: json.dumps([{"train_context": text}]).encode()[: rng.randint(1, 200)],
        "huge-line": lambda: ("word " * 250_000).encode(),
        "empty": lambda: b"",
        "nul": lambda: text.encode() + b"\x00" * 16 + text.encode(),
        "html-cut": lambda: f"<html><body><nav>menu</nav><p>{text}</p>".encode()[: rng.randint(5, 300)],
        "pdf-header": lambda: b"%PDF-1.4\n" + rng.randbytes(rng.randint(0, 2000)),
        "zip-header": lambda: b"PK\x03\x04" + rng.randbytes(rng.randint(0, 2000)),
        "whitespace": lambda: b" \n\t\r\n " * rng.randint(1, 100),
    }[kind]()


def _one_line_or_clean(load) -> str:
    try:
        load()
        return "ok"
    except EntigraphError as e:
        assert "\n" not in str(e) and str(e).strip(), repr(e)
        return "error"


def test_corpus_loader_on_200_generated_files(tmp_path):
    rng = random.Random(17)
    folder = tmp_path / "corpus"
    folder.mkdir()
    files = []
    for i in range(200):
        path = folder / f"f{i:03d}{rng.choice(SUFFIXES)}"
        path.write_bytes(_content(rng))
        files.append(path)
    outcomes = [_one_line_or_clean(lambda p=p: load_corpus_report([str(p)])) for p in files]
    assert outcomes.count("ok") > 20 and outcomes.count("error") > 20  # both kinds were exercised
    docs, report = load_corpus_report([str(folder)])  # the whole folder: bad files skipped, never fatal
    assert docs and len(report.read) + len(report.skipped) == 200
    assert all(s["reason"] and "\n" not in s["reason"] for s in report.skipped)


def _mutate(data: dict, rng: random.Random) -> dict:
    data = copy.deepcopy(data)
    paths = []

    def walk(node, prefix):
        for k, v in node.items():
            paths.append(prefix + (k,))
            if isinstance(v, dict):
                walk(v, prefix + (k,))
    walk(data, ())
    for _ in range(rng.randint(1, 3)):
        *parents, key = rng.choice(paths)
        node = data
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        node[key] = rng.choice([
            None, -1, 0, 1e308, -1e-9, float("nan"), "", "…", "../../x", [], [None], {}, {"x": 1}, True,
            "1e-3", 10**30, rng.randbytes(8).decode("latin-1"), [1, "two", {"three": 3}],
        ]) if rng.random() < 0.85 else node.pop(key) and None
        if rng.random() < 0.2:
            node[rng.choice(["tempreature", "unknown_key", "ß", "synthesis", "backend"])] = rng.choice([1, "x", {}])
    return data


def test_config_loader_on_200_mutated_configs(tmp_path):
    rng = random.Random(21)
    base = yaml.safe_load(open("configs/demo.yaml"))
    outcomes = []
    for i in range(200):
        path = tmp_path / f"c{i}.yaml"
        if i % 4 == 3:  # corrupt YAML text, not just values
            text = bytearray(yaml.safe_dump(base).encode())
            for _ in range(rng.randint(1, 5)):
                text[rng.randrange(len(text))] = rng.choice(b":[]{}\"'\t\n-#&*!|>%@` \x00\xff")
            path.write_bytes(bytes(text))
        else:
            path.write_text(yaml.safe_dump(_mutate(base, rng), allow_unicode=True))

        def load(p=path):
            assert isinstance(load_config(p), RunConfig)
        outcomes.append(_one_line_or_clean(load))
    assert outcomes.count("error") > 100 and outcomes.count("ok") >= 3  # both kinds were exercised


@pytest.mark.parametrize("override", ["name=x\ny", "synthesis.max_passages=[", "a.b.c.d=1", "backend=[1]", "=1"])
def test_odd_overrides_are_one_line_errors(override):
    assert _one_line_or_clean(lambda: load_config("configs/demo.yaml", [override])) == "error"


# Path settings (issue 32): every value a path setting can be given -- a file where a folder is
# wanted, a folder under a file, /proc and /sys, a device, NUL bytes, a name too long, a link loop,
# a dangling link, an empty folder, a glob, nothing at all -- ends in a clean load (and then a clean
# extract) or one error line, never a traceback.

PATH_KEYS = ["run_dir", "corpus.paths", "eval.questions", "train.replay.paths", "train.anneal_paths",
             "eval.forgetting_paths", "synthesis.templates_dir", "models.cache_dir", "models.base",
             "models.embedder", "models.spacy", "backend.model", "eval.retrieval.reranker", "eval.extra_models"]
LISTS = {"corpus.paths", "eval.questions", "train.replay.paths", "train.anneal_paths", "eval.forgetting_paths"}


def _places(tmp_path):
    (tmp_path / "afile.txt").write_text("Ada Brask kept the Quarrow station for eleven years.\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    return [tmp_path / "afile.txt", tmp_path / "afile.txt" / "sub", tmp_path / "empty", tmp_path / "missing" / "deep",
            "/proc/entigraph-x", "/proc", "/proc/self/status", "/sys/entigraph-x", "/dev/null", "/", "", " ",
            "bad\x00name", "x" * 300, tmp_path / ("y" * 300) / "z", tmp_path / "loop", tmp_path / "dangling",
            "./relative-missing", "../../x", "~nobody-here/x", str(tmp_path / "*.txt"), str(tmp_path / "*.none"),
            tmp_path / "ünï côdé", "demo"]


def _set(data, dotted, value):
    *parents, key = dotted.split(".")
    for p in parents:
        data = data.setdefault(p, {})
    data[key] = value


def test_path_settings_on_every_kind_of_bad_path(tmp_path, capsys):
    from entigraph.cli import main

    rng = random.Random(32)
    places = _places(tmp_path)
    base = yaml.safe_load(open("configs/demo.yaml"))
    outcomes = []
    for i in range(120):
        data = copy.deepcopy(base)
        data["run_dir"], data["name"] = str(tmp_path / "runs"), f"r{i}"
        data["corpus"]["paths"] = [str(tmp_path / "afile.txt")]
        for key in rng.sample(PATH_KEYS, rng.randint(1, 2)):
            value = str(rng.choice([p for p in places if not (key in LISTS and p == "/")]))  # not a corpus of /
            _set(data, key, [value] if key in LISTS else {"x": value} if key == "eval.extra_models" else value)
        path = tmp_path / f"c{i}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        outcome = _one_line_or_clean(lambda: load_config(path))
        inside = Path(os.path.abspath(data["run_dir"])).is_relative_to(tmp_path)  # never make folders elsewhere
        if outcome == "ok" and inside and i % 2 == 0:  # then use it: run_dir made, corpus read, by the real extract
            code = main(["extract", str(path)])
            err = capsys.readouterr().err
            assert code in (0, 2) and "Traceback" not in err, err
            assert code == 0 or err.count("\n") == 1, err
            outcome = f"ran ({code})"
        outcomes.append(outcome)
    assert outcomes.count("error") > 40 and outcomes.count("ok") > 10  # both kinds were exercised
    assert outcomes.count("ran (0)") > 5 and outcomes.count("ran (2)") > 0
