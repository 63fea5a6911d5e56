import sqlite3

import pytest

from entigraph.records import SynthPassage
from entigraph.synthesis.store import Store


def passage(i: int, status: str = "ok", text: str | None = None) -> SynthPassage:
    return SynthPassage(f"t{i}", "pair", ["A", "B"], ["d"], ["d:p0"], text if text is not None else f"text {i}",
                        status=status, error="boom" if status == "failed" else "", sampling={"temperature": 0.7},
                        prompt_tokens=10, completion_tokens=5 if status == "ok" else 0, seq=i)


def test_wal_mode_and_round_trip(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.add([passage(2), passage(0), passage(1, "failed")])
        assert store.statuses() == {"t0": ("ok", 5), "t1": ("failed", 0), "t2": ("ok", 5)}
        assert [p.seq for p in store.passages()] == [0, 2]  # ok ones, by seq
        assert [p.task_id for p in store.passages(None)] == ["t0", "t1", "t2"]
        assert store.totals() == {"rows": 3, "ok": 2, "failed": 1, "prompt_tokens": 20, "completion_tokens": 10,
                                  "attempts": 3}
        assert list(store.passages())[0] == passage(0)


def test_ok_rows_are_never_overwritten_failed_rows_are_retried(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add([passage(0), passage(1, "failed")])
        store.add([passage(0, text="other"), passage(1, "failed")])
        store.add([passage(1, text="fixed"), passage(1, text="again")])
        rows = {p.task_id: p for p in store.passages(None)}
        assert rows["t0"].text == "text 0" and rows["t1"].text == "fixed" and rows["t1"].status == "ok"
        attempts = dict(store.db.execute("SELECT task_id, attempts FROM passages"))
        assert attempts == {"t0": 1, "t1": 3}


def test_a_batch_commits_whole_or_not_at_all(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        bad = passage(1)
        bad.seq = None  # violates NOT NULL after the first row went in
        with pytest.raises(sqlite3.IntegrityError):
            store.add([passage(0), bad])
        assert store.totals()["rows"] == 0
        store.add([passage(0)])  # the store is usable afterwards
    with Store(tmp_path / "s.sqlite") as store:  # reopened: committed rows persist
        assert list(store.statuses()) == ["t0"]


def test_exports(tmp_path):
    import datasets

    from entigraph.io import read_jsonl

    with Store(tmp_path / "s.sqlite") as store:
        store.add([passage(1), passage(0), passage(2, "failed")])
        assert store.export_jsonl(tmp_path / "p.jsonl") == 2
        assert [r["task_id"] for r in read_jsonl(tmp_path / "p.jsonl")] == ["t0", "t1"]
        assert store.export_hf_dataset(tmp_path / "ds") == 2
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds["task_id"] == ["t0", "t1"] and ds[0]["entities"] == ["A", "B"]
