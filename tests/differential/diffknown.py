"""Cases where the real lifecycle is plainly wrong and cnbsim keeps its clear error (README "Known differences")."""

from __future__ import annotations

from diffcase import Case


def known_difference(case: Case) -> str | None:
    """The reason this case is skipped, or None: each rule names one documented lifecycle defect."""
    return None
