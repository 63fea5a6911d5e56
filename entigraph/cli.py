"""`entigraph run|extract|synthesize|filter|train|eval|report CONFIG [--set key=value ...]`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from . import __version__
from .artifacts import STAGES
from .errors import run_reporting_errors

STAGE_HELP = {
    "extract": "load the corpus, extract entities, build the knowledge graph",
    "synthesize": "write synthetic passages about entity pairs and triples (resumable)",
    "filter": "apply the quality gates and write the data report",
    "train": "continue pretraining the base model (DeepSpeed)",
    "eval": "compare base / continued-pretrained, closed-book / RAG",
    "report": "write runs/<name>/report.html",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entigraph",
        description="Synthetic continued pretraining: corpus -> entity graph -> synthetic passages "
        "-> continued pretraining -> evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"entigraph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("config", help="YAML run config (see configs/)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set synthesis.max_passages=32 (repeatable)")
        p.add_argument("--force", action="store_true", help="rerun even if the stage is complete")
        p.add_argument("-v", "--verbose", action="store_true", help="show library logs and warnings")
        return p

    run = add("run", "run every stage in order, skipping the complete ones")
    run.add_argument("--from", dest="start", choices=STAGES, help="start at this stage")
    for stage in STAGES:
        add(stage, STAGE_HELP[stage])
    settings = sub.add_parser("settings", help="list every setting: accepted values, default, meaning",
                              description="Every config setting with its accepted values, default and meaning.")
    settings.add_argument("prefix", nargs="?", default="", help="only settings under this prefix, e.g. backend")
    settings.add_argument("--selfguide", action="store_true", help="the SELF-GUIDE config's settings")
    # Parsed by entigraph.selfguide.recipe (its own config); listed here for --help.
    sub.add_parser("selfguide", add_help=False,
                   help="SELF-GUIDE: a model writes its own task data from a few examples and is fine-tuned on it")
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def _print_settings(prefix: str, selfguide: bool) -> int:
    from .config import describe

    if selfguide:
        from .selfguide.settings import SelfGuideConfig

        lines = describe(SelfGuideConfig)
    else:
        lines = describe()
    shown = [line for line in lines if line.startswith(prefix)]
    print("\n".join(shown) if shown else f"entigraph: no setting starts with {prefix!r}")
    return 0 if shown else 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["selfguide"]:
        _quiet_libraries()
        from .selfguide.recipe import main as selfguide_main

        return selfguide_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "settings":
        return _print_settings(args.prefix, args.selfguide)
    if not args.verbose:
        _quiet_libraries()
    from .config import load_config
    from .pipeline import run_all, run_lock, run_stage, save_config

    start = time.perf_counter()
    done: dict = {}

    def work() -> None:
        cfg = done["cfg"] = load_config(args.config, args.overrides)
        if args.command == "run":
            run_all(cfg, start=args.start, force=args.force)
        else:
            with run_lock(cfg):
                save_config(cfg)
                run_stage(cfg, args.command, force=args.force)

    code = run_reporting_errors(work)
    if code == 0:
        print(f"entigraph: {args.command} finished in {time.perf_counter() - start:.1f} s; "
              f"outputs in {done['cfg'].out}")
    return code

if __name__ == "__main__":
    sys.exit(main())
