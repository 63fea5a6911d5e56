import subprocess
import sys

import pytest

from entigraph.cli import main


@pytest.mark.parametrize("args,message", [
    (["run", "missing.yaml"], "config file not found: missing.yaml"),
    (["run", "configs/demo.yaml", "--set", "backend.kind=gpt9"], "backend.kind"),
    (["extract", "configs/demo.yaml", "--set", "corpus.paths=[nowhere.txt]"], "corpus file not found: nowhere.txt"),
])
def test_user_errors_are_one_line_without_traceback(args, message, capsys, tmp_path):
    args = args + ["--set", f"run_dir={tmp_path}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_console_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "entigraph.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for stage in ("run", "extract", "synthesize", "filter", "train", "eval", "report"):
        assert stage in out.stdout
