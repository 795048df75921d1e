"""`python -m cnbsim.cli`: the `cnbsim` command."""

from __future__ import annotations

import sys

from cnbsim.cli.main import main

sys.exit(main())
