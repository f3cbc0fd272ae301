"""``flowgate hostile list`` / ``flowgate hostile markdown [--write]`` (also ``python -m flowgate.harness.hostile``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "hostile.md"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flowgate hostile", description="The hostile-input catalog.")
    p.add_argument("action", nargs="?", choices=["list", "markdown"], default="list")
    p.add_argument("--markdown", action="store_true", help="same as the markdown action")
    p.add_argument("--write", action="store_true", help=f"splice the table into {DOC.name}")
    p.add_argument("--encrypted", action="store_true", help="list: only kinds sendable with encryption")
    p.add_argument("--plaintext", action="store_true", help="list: only kinds sendable without encryption")
    args = p.parse_args(argv)
    from flowgate.harness import hostile

    if args.action == "markdown" or args.markdown:
        from flowgate.harness.hostile.observe import markdown, splice

        with _quiet():
            table = markdown()
        if args.write:
            DOC.write_text(splice(DOC.read_text(encoding="utf-8"), table), encoding="utf-8")
            print(f"wrote {DOC}")
        else:
            sys.stdout.write(table)
        return 0
    catalog = hostile.CATALOG
    if args.encrypted or args.plaintext:
        catalog = {k.name: k for k in hostile.kinds(encrypted=args.encrypted)}
    print(hostile.render_list(catalog))
    return 0


class _quiet:
    """The reference logs every poison message at INFO/WARNING; the table needs none of it."""

    def __enter__(self) -> None:
        import logging

        self._level = logging.getLogger("flowgate.reference").level
        logging.getLogger("flowgate.reference").setLevel(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.getLogger("flowgate.reference").setLevel(self._level)
