"""One run of a study in its own process: ``python -m entigraph.study.worker CONFIG STAGE[,STAGE...]``.

The study starts one per run that has work left, so each training's memory is returned to the
system when it ends; the stages resume exactly as under ``entigraph run``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m entigraph.study.worker CONFIG STAGE[,STAGE...]", file=sys.stderr)
        return 2
    from ..config import load_config
    from ..errors import run_reporting_errors
    from ..locks import run_lock
    from ..pipeline import run_stage, save_config
    from ..processes import quiet_libraries

    quiet_libraries()

    def work() -> None:
        cfg = load_config(argv[0])
        with run_lock(cfg.out):
            save_config(cfg)
            for stage in argv[1].split(","):
                run_stage(cfg, stage)

    return run_reporting_errors(work)


if __name__ == "__main__":
    sys.exit(main())
