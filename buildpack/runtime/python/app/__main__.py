"""`python -m app`: run one job with the job-template runtime (the image's `web` process)."""

import sys

from planqk_job_template.main import main

# `app` is only the name this entry is started by: forget it, so that the user's code can
# import a module of its own called `app` from the project.
sys.modules.pop("app", None)
sys.exit(main())
