"""User-facing errors: the CLI prints these as one line, without a traceback."""


class EntigraphError(Exception):
    """A problem the user can fix (bad config, missing file, invalid input)."""


class ConfigError(EntigraphError):
    """An invalid or unknown setting."""


class InputError(EntigraphError):
    """A corpus or question file that cannot be read."""


def run_reporting_errors(work) -> int:
    """Run `work()` for a command-line entry point: user errors print one line, not a traceback;
    `kill` (SIGTERM) stops it as Ctrl-C does: the stage's attempt recorded, its locks let go."""
    import signal
    import sys
    import threading

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the clean-up is not cut short
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    try:
        work()
    except EntigraphError as e:
        print(f"entigraph: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("entigraph: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
