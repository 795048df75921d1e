"""The `cnbsim` command: pack-like verbs and the lifecycle-compatible phases."""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "lifecycle":
        from cnbsim.phases import main as phases_main
        return phases_main(argv[1:])
    print("usage: cnbsim lifecycle {detector,builder} ...", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
