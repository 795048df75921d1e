"""Build-plan resolution: the lifecycle's `resolve` step of detection, over the buildpacks that passed.

Follows lifecycle phase/detector.go (`Resolve`, `runTrial`) and buildpacks/spec buildpack.md#phase-1-detection:
each buildpack's options are its plan then each `[[or]]`; trials are their Cartesian product, and the
first trial in which every require is provided (optional buildpacks dropped as needed) wins.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from cnbsim.log import Logger
from cnbsim.model.order import GroupElement
from cnbsim.model.plan import DetectPlan, Plan, PlanEntry, PlanOption, Provider, Require


def resolve_plan(passing: list[tuple[GroupElement, DetectPlan]], reasons: list[str] | None = None,
                 log: Logger | None = None) -> tuple[list[GroupElement], Plan] | None:
    """Build-plan resolution over the buildpacks that passed detection (buildpacks/spec buildpack.md#phase-1-detection).

    Options per buildpack: the primary plan, then each [[or]]; only the last option may drop
    an optional buildpack. Trials are the Cartesian product, first buildpack outermost; the
    first trial that resolves wins. Returns the participating elements and the plan, or None.
    """
    reasons = [] if reasons is None else reasons
    per_element = []
    for el, plan in passing:
        options = plan.options
        per_element.append([(el, opt, el.optional and i == len(options) - 1) for i, opt in enumerate(options)])
    for n, trial in enumerate(itertools.product(*per_element), start=1):
        if log is not None:
            log.debug(f"Resolving plan... (try #{n})")
        trial_reasons: list[str] = []
        result = _run_trial(list(trial), trial_reasons)
        if log is not None:
            for reason in trial_reasons:
                log.debug(reason)
        if result is not None:
            return result
        reasons.extend(f"try #{n}: {r}" for r in trial_reasons)
    return None


@dataclass
class _Dep:
    providers: list[int] = field(default_factory=list)
    requires: list[tuple[int, Require]] = field(default_factory=list)
    early_requires: list[int] = field(default_factory=list)
    extra_provides: list[int] = field(default_factory=list)


def _run_trial(trial: list[tuple[GroupElement, PlanOption, bool]], reasons: list[str]
               ) -> tuple[list[GroupElement], Plan] | None:
    """One trial (lc runTrial): drop optional buildpacks whose requires/provides are unmatched."""
    while True:
        deps: dict[str, _Dep] = {}
        for idx, (_, option, _) in enumerate(trial):
            for p in option.provides:
                deps.setdefault(p.name, _Dep()).extra_provides.append(idx)
            for r in option.requires:
                dep = deps.setdefault(r.name, _Dep())
                dep.providers.extend(dep.extra_provides)
                dep.extra_provides = []
                if not dep.providers:
                    dep.early_requires.append(idx)
                else:
                    dep.requires.append((idx, r))
        removed: set[int] = set()
        for what, attr in (("requires", "early_requires"), ("provides unused", "extra_provides")):
            for name, dep in deps.items():
                for idx in getattr(dep, attr):
                    el, _, optional = trial[idx]
                    if optional:
                        reasons.append(f"skip: {el.key} {what} {name}")
                        removed.add(idx)
                    else:
                        reasons.append(f"fail: {el.key} {what} {name}")
                        return None
        if removed:
            trial = [t for i, t in enumerate(trial) if i not in removed]
            continue
        if not trial:
            reasons.append("fail: no viable buildpacks in group")
            return None
        entries = []
        for dep in deps.values():
            providers = tuple(Provider(trial[i][0].id, trial[i][0].version) for i in dep.providers)
            entries.append(PlanEntry(providers, tuple(r for _, r in dep.requires)))
        return [el for el, _, _ in trial], Plan(tuple(entries))
