"""The command line: `cnbsim` (main.py) and its lifecycle-compatible phase commands (lifecycle.py)."""

from __future__ import annotations

from cnbsim.cli.main import main

__all__ = ["main"]
