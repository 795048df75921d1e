"""The job-template runtime's entry name: `python -m app`, as PlanQK's original buildpack ran it.

The image's `web` process starts `python -m app` in the runtime's own directory (its
`working-dir`), so this package is found before anything in the user's project; the runtime
then changes to the project (PLANQK_APP_DIR). See the buildpack's README.
"""
