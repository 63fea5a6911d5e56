"""Synthesis ids (synthesis/ids.py; that it stays a leaf: tests/entigraph/test_modes.py)."""

from entigraph.synthesis import ids


def test_request_seed_reads_the_task_id_and_task_ids_hash_everything_given():
    tid = ids.task_id("pair", ["A", "B"], ["d"], ["d:p0"], {"seed": 0})
    assert len(tid) == 20 and ids.request_seed(tid) == int(tid[:8], 16)
    assert tid == ids.task_id("pair", ["A", "B"], ["d"], ["d:p0"], '{"seed": 0}')  # salt given serialised
    assert tid != ids.task_id("pair", ["A", "B"], ["d"], ["d:p0"], {"seed": 1})
    assert ids.derived_seed(0, "k") != ids.derived_seed(1, "k")
