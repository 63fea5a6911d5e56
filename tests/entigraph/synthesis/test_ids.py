"""Synthesis ids (synthesis/ids.py): what engine, planner and sampler share, so it imports none of them."""

import ast
from pathlib import Path

from entigraph.synthesis import ids


def test_ids_is_a_leaf():
    tree = ast.parse(Path(ids.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "hashlib", "json", "typing"}


def test_request_seed_reads_the_task_id_and_task_ids_hash_everything_given():
    tid = ids.task_id("pair", ["A", "B"], ["d"], ["d:p0"], {"seed": 0})
    assert len(tid) == 20 and ids.request_seed(tid) == int(tid[:8], 16)
    assert tid == ids.task_id("pair", ["A", "B"], ["d"], ["d:p0"], '{"seed": 0}')  # salt given serialised
    assert tid != ids.task_id("pair", ["A", "B"], ["d"], ["d:p0"], {"seed": 1})
    assert ids.derived_seed(0, "k") != ids.derived_seed(1, "k")
