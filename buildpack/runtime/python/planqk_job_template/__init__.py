"""PlanQK job-template runtime: runs a PlanQK service's `run()` once, as PlanQK's job-template does
(PlanQK's job-template runtime, as planqk-commons' planqk/commons/runtime has it) and, for a typed `run()`, as PlanQK's current v2 runtime binds it, with the
Python standard library only (Python 3.8+; pydantic only if the user's code brings it).

The version below is the runtime's version; the buildpack reads it (bin/build) for the layer
metadata and the image label, so bump it with every change of the runtime's behaviour.
"""

__version__ = "1.1.0"
