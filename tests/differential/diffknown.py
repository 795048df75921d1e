"""Cases where the real lifecycle is plainly wrong and cnbsim keeps its clear error.

Each rule is one entry of the README's "Known differences" section; a case is skipped only
when both observations show exactly that difference (so a new difference is never hidden).
"""

from __future__ import annotations

from typing import Any

from diffcase import Case

GO_PANIC_EXIT = 2


def known_difference(case: Case, ours: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    """The README's name for this case's difference, or None when it is not a known one."""
    if (theirs.get("detect.exit") == GO_PANIC_EXIT and ours.get("detect.exit") == 12
            and "panic: could not parse '" in theirs.get("detect.log", "")
            and "parse buildpack API '" in ours.get("detect.log", "")
            and any(t.startswith("bad-api:") and t.endswith(":0.x") for t in case.tags)):
        return ("a buildpack.toml whose api is not a version (e.g. \"0.x\"): the lifecycle panics "
                "(buildpack/bp_descriptor.go api.MustParse), cnbsim exits 12 naming the file and field")
    return None
