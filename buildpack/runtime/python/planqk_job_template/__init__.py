"""PlanQK job-template runtime: runs a PlanQK service's `run(data=..., params=...)` once, as PlanQK's
job-template does (planqk-runtime.md §1.12), with the Python standard library only (Python 3.8+).

The version below is the runtime's version; the buildpack reads it (bin/build) for the layer
metadata and the image label, so bump it with every change of the runtime's behaviour.
"""

__version__ = "1.0.0"
