"""Fuzzing the two front doors: 200 generated corpus files and 200 mutated configs. Every case ends
in a clean result or one clear error line (an EntigraphError without a newline), never a traceback."""

import copy
import json
import random

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
