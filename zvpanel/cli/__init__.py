"""The ``zvpanel`` console script. Each sub-command lives in its own module."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import ZvpanelError
from ..memory import tune_malloc

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from . import admin, alerts, count, node, report, serve  # each adds its sub-commands

    parser = argparse.ArgumentParser(prog="zvpanel", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    count.register(sub)
    admin.register(sub)
    serve.register(sub)
    node.register(sub)
    alerts.register(sub)
    report.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tune_malloc()  # before any thread: see zvpanel.memory
    try:
        return int(args.func(args) or 0)
    except ZvpanelError as error:
        print(f"zvpanel: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
