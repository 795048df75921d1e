"""`python -m planqk_job_template`: run one job."""

import sys

from planqk_job_template.main import main

sys.exit(main())
