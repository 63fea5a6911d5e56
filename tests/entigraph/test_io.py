"""File modes of everything written through entigraph.io: readable by the group (a shared runs/
across nodes), 0600 only when the caller says the file holds a secret."""

import os

from entigraph.io import atomic_path, read_json, read_jsonl, write_json, write_jsonl


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_outputs_are_0644_whatever_mkstemp_made(tmp_path):
    with atomic_path(tmp_path / "card.md") as tmp:
        tmp.write_text("x")
    write_json(tmp_path / "summary.json", {"a": 1})
    write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}, {"b": 2}])
    assert [_mode(tmp_path / n) for n in ("card.md", "summary.json", "rows.jsonl")] == [0o644] * 3
    assert read_json(tmp_path / "summary.json") == {"a": 1} and len(list(read_jsonl(tmp_path / "rows.jsonl"))) == 2
    assert sorted(os.listdir(tmp_path)) == ["card.md", "rows.jsonl", "summary.json"]  # no temporary left


def test_a_secret_keeps_its_owner_only_mode(tmp_path):
    with atomic_path(tmp_path / "token", mode=0o600) as tmp:
        tmp.write_text("s3cret")
    write_json(tmp_path / "creds.json", {"k": "v"}, mode=0o600)
    assert _mode(tmp_path / "token") == 0o600 and _mode(tmp_path / "creds.json") == 0o600


def test_share_folder_opens_what_a_library_wrote_0600(tmp_path):
    from entigraph.io import share_folder

    (tmp_path / "model").mkdir()
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(b"w")
    os.chmod(weights, 0o600)  # what transformers' save_pretrained leaves
    share_folder(tmp_path)
    assert _mode(weights) == 0o644
