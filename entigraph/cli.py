"""`entigraph run|extract|synthesize|filter|train|eval|report CONFIG [--set key=value ...]`."""

from __future__ import annotations

import argparse
import sys
import time

from . import __version__
from .errors import run_reporting_errors
from .processes import quiet_libraries
from .stages import PIPELINE, STAGES



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
    for stage in PIPELINE:
        add(stage.name, stage.help)
    study = sub.add_parser("study", help="compare recipes: tune each on held-out documents, report with tests",
                           description="Run a study (configs/studies/): every recipe tuned on the tuning documents, "
                           "then run on the reporting documents; shared stages run once; resumable. Writes "
                           "runs/<study>/study.html, study.md and study-results.json.")
    study.add_argument("config", help="YAML study file (see configs/studies/)")
    study.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a study setting, e.g. --set split.reporting.limit_docs=5; run settings for "
                       "every run go under set.: --set set.train.threads=1 (repeatable)")
    study.add_argument("--only", action="append", default=[], metavar="RECIPE",
                       help="only these recipes (comma-separated or repeated); the report covers every finished one")
    study.add_argument("--report-only", action="store_true", help="run nothing: write the report from the runs there are")
    study.add_argument("--write-docs", metavar="MARKDOWN",
                       help="splice the tables into this file between the markers the study's docs: section names")
    study.add_argument("-v", "--verbose", action="store_true", help="show library logs and warnings")
    settings = sub.add_parser("settings", help="list every setting: accepted values, default, meaning",
                              description="Every config setting with its accepted values, default and meaning.")
    settings.add_argument("prefix", nargs="?", default="", help="only settings under this prefix, e.g. backend")
    settings.add_argument("--selfguide", action="store_true", help="the SELF-GUIDE config's settings")
    # Parsed by entigraph.selfguide.recipe (its own config); listed here for --help.
    sub.add_parser("ask", add_help=False,
                   help="answer a question with a run's adapted model and retrieval, citing the chunks")
    sub.add_parser("selfguide", add_help=False,
                   help="SELF-GUIDE: a model writes its own task data from a few examples and is fine-tuned on it")
    return parser


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
    if argv[:1] == ["ask"]:
        quiet_libraries()
        from .ask import main as ask_main

        return ask_main(argv[1:])
    if argv[:1] == ["selfguide"]:
        quiet_libraries()
        from .selfguide.recipe import main as selfguide_main

        return selfguide_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "settings":
        return _print_settings(args.prefix, args.selfguide)
    if not args.verbose:
        quiet_libraries()
    if args.command == "study":
        return _study(args)
    from .config import load_config
    from .locks import run_lock
    from .pipeline import run_all, run_stage, save_config

    start = time.perf_counter()
    done: dict = {}

    def work() -> None:
        cfg = done["cfg"] = load_config(args.config, args.overrides)
        if args.command == "run":
            run_all(cfg, start=args.start, force=args.force)
        else:
            with run_lock(cfg.out):
                save_config(cfg)
                run_stage(cfg, args.command, force=args.force)

    code = run_reporting_errors(work)
    if code == 0:
        print(f"entigraph: {args.command} finished in {time.perf_counter() - start:.1f} s; "
              f"outputs in {done['cfg'].out}")
    return code

def _study(args) -> int:
    from .study import load_study, run_study

    start = time.perf_counter()
    done: dict = {}

    def work() -> None:
        study = load_study(args.config, args.overrides)
        only = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or None
        done["res"] = run_study(study, only=only, report_only=args.report_only, write_docs=args.write_docs)

    code = run_reporting_errors(work)
    if code == 0:
        paths = done["res"]["paths"]
        print(f"entigraph: study finished in {time.perf_counter() - start:.1f} s; report {paths['html']} "
              f"(tables {paths['markdown']}, figures {paths['json']}" + (f"; spliced into {paths['docs']}" if "docs" in paths else "") + ")")
    return code


if __name__ == "__main__":
    sys.exit(main())
