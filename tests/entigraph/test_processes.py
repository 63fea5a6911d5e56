import os
import signal
import subprocess
import sys
import time

from entigraph.processes import run_to_end


def test_a_child_runs_to_its_end_with_its_exit_code_and_its_stderr():
    code, err = run_to_end([sys.executable, "-c", "import sys; sys.stderr.write('ValueError: x'); sys.exit(3)"],
                           dict(os.environ), capture_stderr=True)
    assert (code, err) == (3, "ValueError: x")


def test_a_stopped_parent_kills_a_child_that_ignores_sigterm(tmp_path):
    """The last step of the stop: a child deaf to SIGTERM (a hung rank) is killed, not orphaned."""
    pid_file = tmp_path / "child.pid"
    child = ("import os, signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "open(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(60)")
    parent = ("import os, sys\nfrom entigraph.errors import run_reporting_errors\n"
              "from entigraph.processes import run_to_end\n"
              "sys.exit(run_reporting_errors(lambda: run_to_end([sys.executable, '-c', sys.argv[1], sys.argv[2]],"
              " dict(os.environ), grace_s=0.2, term_s=0.5, capture_stderr=True)[0]))")
    proc = subprocess.Popen([sys.executable, "-c", parent, child, str(pid_file)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    try:
        os.kill(int(pid_file.read_text()), 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
