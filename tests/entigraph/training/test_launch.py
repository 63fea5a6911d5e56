from types import SimpleNamespace

from entigraph.training import deepspeed_env
from entigraph.training.launch import _failure
from entigraph.training.trainer import _save_model

TORCHRUN_STDERR = """\
[rank0]: Traceback (most recent call last):
[rank0]:   File "/work/main/training/trainer.py", line 178, in _save_model
[rank0]: safetensors._safetensors_rust.SafetensorError: Error while serializing: I/O error
E1202 23:50:01 torch/distributed/elastic/multiprocessing/api.py:882] failed (exitcode: 1)
Traceback (most recent call last):
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
entigraph.training.launch FAILED
============================================================
"""


def test_a_failed_launch_names_the_ranks_exception_not_torchruns():
    assert _failure(TORCHRUN_STDERR) == "safetensors._safetensors_rust.SafetensorError: Error while serializing: I/O error"
    assert _failure("killed\n\n") == "killed"


def test_a_rank_that_does_not_write_the_model_leaves_the_writers_folder_alone(tmp_path):
    """Rank 1 reaching the save while rank 0 writes model.tmp must not clear it (it did: a race)."""
    being_written = tmp_path / "model.tmp"
    being_written.mkdir()
    (being_written / "model.safetensors").write_text("rank 0's")
    other_rank = SimpleNamespace(args=SimpleNamespace(should_save=False), model=SimpleNamespace(config=SimpleNamespace()))
    _save_model(other_rank, tokenizer=None, out=tmp_path / "model")
    assert (being_written / "model.safetensors").read_text() == "rank 0's"


def test_each_python_environment_builds_the_deepspeed_ops_in_its_own_folder(tmp_path, monkeypatch):
    """Two checkouts' venvs sharing one folder rebuilt the shm op at every switch, holding up training."""
    monkeypatch.setattr("sys.prefix", "/work/a/.venv")
    a = deepspeed_env.extensions_dir(str(tmp_path))
    monkeypatch.setattr("sys.prefix", "/work/b/.venv")
    b = deepspeed_env.extensions_dir(str(tmp_path))
    assert a != b and a.parent == b.parent == deepspeed_env.extensions_dir(str(tmp_path)).parent
    assert str(tmp_path) in str(a)
