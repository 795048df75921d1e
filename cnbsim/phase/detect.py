"""The detect phase: order expansion, running bin/detect, build-plan resolution.

Follows lifecycle phase/detector.go (buildpacks/spec buildpack.md#order-resolution): groups are tried in order, composite
buildpacks expand depth-first with the rest of the enclosing group appended, each
bin/detect runs at most once, and the first group whose plan resolves wins.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cnbsim import proc
from cnbsim.buildpacks import BuildpackStore
from cnbsim.errors import CnbsimError, ConfigError, DetectError, ExitCode
from cnbsim.fs import temp_dir
from cnbsim.log import NO_SECRETS, BufferedLogger, Logger, Redactor
from cnbsim.model.api import ApiVersion
from cnbsim.model.buildpack import BuildpackDescriptor, CompositeBuildpack
from cnbsim.model.order import GroupElement, OrderGroup
from cnbsim.model.plan import DetectPlan, Plan, PlanDecodeError, parse_detect_plan
from cnbsim.model.states import DetectStatus
from cnbsim.phase.resolve import resolve_plan
from cnbsim.platform import Platform

PASS, FAIL, SKIP, ERROR = DetectStatus.PASS, DetectStatus.FAIL, DetectStatus.SKIP, DetectStatus.ERROR
EXPLAIN_WIDTH = 240   # characters of one reason line there
EXPLAIN_LINES = 40     # of the reasons shown in str(DetectFailed); .explain() has them all
# [IMPL] the lifecycle starts every bin/detect of a group at once; a group of hundreds is bounded here
MAX_PARALLEL_DETECTS = 16


@dataclass(frozen=True)
class DetectRun:
    """One bin/detect run: 0 = pass, 100 = fail, anything else (or -1: could not run) = error."""

    key: str
    code: int
    output: str = ""
    error: str = ""
    plan: DetectPlan = field(default_factory=DetectPlan)

    @property
    def status(self) -> DetectStatus:
        return PASS if self.code == 0 else FAIL if self.code == 100 else ERROR


@dataclass(frozen=True)
class ElementOutcome:
    id: str
    version: str
    optional: bool
    status: DetectStatus
    detail: str = ""


@dataclass(frozen=True)
class GroupOutcome:
    """Why one (expanded) group passed or failed: per buildpack, and the plan resolution."""

    elements: tuple[ElementOutcome, ...]
    passed: bool
    reasons: tuple[str, ...] = ()

    def explain(self) -> str:
        ids = ", ".join(f"{e.id}@{e.version}" + (" (optional)" if e.optional else "") for e in self.elements)
        lines = [f"group [{ids}]: {'passed' if self.passed else 'failed'}"]
        for e in self.elements:
            lines.append(f"  {e.status}: {e.id}@{e.version}" + (f" - {e.detail}" if e.detail else ""))
        lines.extend(f"  {r}" for r in self.reasons)
        return "\n".join(lines)


@dataclass(frozen=True)
class DetectResult:
    group: tuple[GroupElement, ...]
    plan: Plan
    runs: dict[str, DetectRun] = field(hash=False)
    groups: tuple[GroupOutcome, ...] = ()
    warnings: tuple[str, ...] = ()        # what the platform warned of (e.g. bin/detect wrote to the app)


class DetectFailed(DetectError):
    """No group passed: exit 20, or 21 when a buildpack errored (platform.md)."""

    def __init__(self, groups: tuple[GroupOutcome, ...], runs: dict[str, DetectRun], bp_error: bool,
                 redact: Redactor = NO_SECRETS) -> None:
        message = ("buildpack(s) failed with err" if bp_error else "no buildpacks participating")
        super().__init__(message, exit_code=ExitCode.DETECT_FAILED_WITH_ERRORS if bp_error else ExitCode.DETECT_FAILED)
        self.groups = groups
        self.runs = runs
        self.bp_error = bp_error
        self.redact = redact
        self.builder_hint = ""   # what the builder says to a project none of its groups accepts

    def explain(self) -> str:
        """Why each group failed, per buildpack (pass, fail, skip, error and its last line) and plan resolution."""
        # buildpack output quoted here must not show a build-time secret
        text = "\n".join(g.explain() for g in self.groups)
        if self.builder_hint and not self.bp_error:
            text += "\n" + self.builder_hint.rstrip("\n")
        return self.redact(text)

    def __str__(self) -> str:
        """The message and the reasons, so that a test's traceback says why without `.explain()`."""
        lines = [line if len(line) <= EXPLAIN_WIDTH else line[:EXPLAIN_WIDTH - 3] + "..."
                 for line in self.explain().splitlines()]
        if len(lines) > EXPLAIN_LINES:
            lines = [*lines[:EXPLAIN_LINES], f"... {len(lines) - EXPLAIN_LINES} more lines: see .explain()"]
        return "\n".join([self.message + ":", *lines])


class _Failed(Exception):
    def __init__(self, bp_error: bool) -> None:
        self.bp_error = bp_error


@dataclass
class _Element:
    el: GroupElement
    desc: BuildpackDescriptor
    run: DetectRun | None = None        # None: its bin/detect is still to run (pending)


def detect(order: tuple[OrderGroup, ...], store: BuildpackStore, platform: Platform,
           log: Logger | None = None) -> DetectResult:
    """Run the detect phase over `order`; raise `DetectFailed` when no group passes."""
    log = log or Logger()
    detector = _Detector(store, platform, log)
    for top in order:          # lifecycle verifyOrder: every top-level buildpack's API, before anything runs
        for el in top.group:
            store.lookup(el.id, el.version).check_api()
    _check_no_cycle(order, store)
    try:
        group, plan = detector.detect_order(order, [], [], optional=False)
    except _Failed as failed:
        detector.buffer.flush_to(log, every_level=True)
        log.error("No buildpack groups passed detection.")
        if not failed.bp_error:
            log.error("Please check that you are running against the correct path.")
        raise DetectFailed(tuple(detector.outcomes), detector.runs, failed.bp_error, log.redact) from None
    detector.buffer.flush_to(log)
    return DetectResult(group, plan, detector.runs, tuple(detector.outcomes))


def _check_no_cycle(order: tuple[OrderGroup, ...], store: BuildpackStore) -> None:
    """A composite whose [[order]] includes itself, directly or through others, is an error, not an
    endless expansion. (The lifecycle does not check this; pack refuses such a builder.)"""
    finished: set[str] = set()

    def visit(order: tuple[OrderGroup, ...], path: tuple[BuildpackDescriptor, ...]) -> None:
        for group in order:
            for el in group.group:
                try:
                    desc = store.lookup(el.id, el.version)
                except CnbsimError:
                    continue          # reported where detection reaches it (a later group may never)
                if not desc.is_composite or desc.key in finished:
                    continue
                if any(p.key == desc.key for p in path):
                    cycle = " -> ".join([*(p.key for p in path[[p.key for p in path].index(desc.key):]), desc.key])
                    raise DetectError(f"composite buildpack {desc.key} includes itself through its [[order]] "
                                      f"({cycle})", file=desc.root / "buildpack.toml", field="order",
                                      hint="remove the group entry that leads back to it", exit_code=22)
                visit(desc.order, (*path, desc))
                finished.add(desc.key)
    visit(order, ())


class _Detector:
    def __init__(self, store: BuildpackStore, platform: Platform, log: Logger) -> None:
        self.store = store
        self.platform = platform
        self.log = log
        self.runs: dict[str, DetectRun] = {}
        self.outcomes: list[GroupOutcome] = []
        self.buffer = BufferedLogger()   # shown once detection is over: all of it if it failed

    def detect_order(self, order: tuple[OrderGroup, ...], done: list[_Element], rest: list[GroupElement],
                     optional: bool, pending: dict[str, BuildpackDescriptor] | None = None
                     ) -> tuple[tuple[GroupElement, ...], Plan]:
        saw_bp_error = False
        for group in order:
            try:
                return self.detect_group([*group.group, *rest], list(done), pending)
            except _Failed as failed:
                saw_bp_error = saw_bp_error or failed.bp_error
        if optional:
            # An optional composite whose groups all fail: "a copy of the group without the entry".
            return self.detect_group(list(rest), list(done))
        raise _Failed(saw_bp_error)

    def detect_group(self, elements: list[GroupElement], done: list[_Element],
                     pending: dict[str, BuildpackDescriptor] | None = None
                     ) -> tuple[tuple[GroupElement, ...], Plan]:
        # lifecycle phase/detector.go detectGroup starts each element's bin/detect in a goroutine as it is
        # reached and waits for all of them before resolving; a composite's first nested group waits for
        # the enclosing prefix's runs too (the WaitGroup is passed down): the runs of a group overlap.
        # Here they are started together once the group's elements are known (`pending`, passed down
        # the same way); each bin/detect still runs once per key.
        pending = {} if pending is None else pending
        for i, el in enumerate(elements):
            if any(d.el.id == el.id for d in done):
                continue  # the first occurrence of an id wins, whatever its version
            try:
                desc = self.store.lookup(el.id, el.version)
            except ConfigError as exc:
                # the top-level order was verified before detection: this one is inside a composite
                raise DetectError(f"failed to detect: {exc.message}", file=exc.file, hint=exc.hint,
                                  exit_code=ExitCode.DETECT_ERROR) from None
            if isinstance(desc, CompositeBuildpack):
                return self.detect_order(desc.order, done, elements[i + 1:], el.optional, pending)
            el = GroupElement(el.id, desc.version, el.optional, desc.api, desc.info.homepage)
            # lifecycle phase/hermetic_factory.go verifyOrder checks the API of the order's own elements only;
            # a nested buildpack of an unsupported API still runs bin/detect (the builder refuses it, exit 12)
            api = desc.api
            # lc detectGroup: the target check first, then exec-env
            if self.platform.api >= ApiVersion(0, 12) and not el.optional and not self._target_ok(desc):
                # [IMPL] only a required buildpack's target is checked; an optional one still runs.
                error = (f"unable to satisfy target os/arch constraints; run image: "
                         f"{self.platform.target.describe()}, buildpack: {_targets_json(desc)}")
                # lifecycle phase/detector.go: the -1 result is stored with the runs, so a later group (even an
                # optional occurrence) reuses it and never runs this bin/detect
                self.runs[el.key] = DetectRun(el.key, -1, "", error)
                done.append(_Element(el, desc, self.runs[el.key]))
                continue
            if self.platform.api >= ApiVersion(0, 15) and self.platform.exec_env and api >= ApiVersion(0, 12) \
                    and desc.info.exec_env and "*" not in desc.info.exec_env \
                    and self.platform.exec_env not in desc.info.exec_env:
                continue  # lc: skipped entirely for this exec-env, not even listed
            if el.key not in self.runs:
                pending[el.key] = desc
            done.append(_Element(el, desc, self.runs.get(el.key)))
        self._run_all(pending)
        return self.resolve(done)

    def _run_all(self, pending: dict[str, BuildpackDescriptor]) -> None:
        """Run the pending bin/detects side by side (at most MAX_PARALLEL_DETECTS at once) and record
        them in `self.runs`; on any exception (an interrupt included) every one still running is
        killed before it propagates."""
        if not pending:
            return
        keys = list(pending)
        if len(keys) == 1:
            self.runs[keys[0]] = self._run(pending[keys[0]])
        else:
            tracker = proc.Tracker()
            pool = ThreadPoolExecutor(max_workers=min(len(keys), MAX_PARALLEL_DETECTS),
                                      thread_name_prefix="cnbsim-detect")
            try:
                futures = {key: pool.submit(self._run, pending[key], tracker) for key in keys}
                for key, future in futures.items():
                    self.runs[key] = future.result()
            except BaseException:
                tracker.cancel()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        pending.clear()

    def _target_ok(self, desc: BuildpackDescriptor) -> bool:
        targets = desc.effective_targets()
        return not targets or any(self.platform.target.satisfies(t) for t in targets)

    def _run(self, desc: BuildpackDescriptor, tracker: proc.Tracker | None = None) -> DetectRun:
        with temp_dir("detect", self.platform.scratch_root) as tmp:
            plan_path = Path(tmp) / "plan.toml"
            plan_path.touch()
            shown_plan = self.platform.shown(plan_path, scratch=Path(tmp))
            env = self.platform.buildpack_env(self.platform.base_env, desc, {"CNB_BUILD_PLAN_PATH": shown_plan})
            done = self.platform.run_buildpack(desc, "detect", [self.platform.shown(self.platform.platform_dir),
                                                                shown_plan], env, self.platform.detect_timeout,
                                               scratch=Path(tmp), tracker=tracker)
            if done.code != 0:
                return DetectRun(desc.key, done.code, done.output, done.error)
            try:
                text = plan_path.read_text(encoding="utf-8")
            except OSError as exc:   # it removed or replaced its plan file: an error, like a decode failure
                return DetectRun(desc.key, -1, done.output, f"cannot read the build plan of {desc.key}: "
                                 f"{exc.strerror} ({plan_path})")
            except UnicodeDecodeError:
                return DetectRun(desc.key, -1, done.output, f"the build plan of {desc.key} is not UTF-8 text")
            try:
                plan = parse_detect_plan(text, f"build plan of {desc.key} ({desc.root}/bin/detect)", desc.id)
            except PlanDecodeError as exc:
                return DetectRun(desc.key, -1, done.output, str(exc))
            return DetectRun(desc.key, 0, done.output, "", plan)

    # -- group evaluation and plan resolution (lc DefaultDetectResolver.Resolve) --------------

    def resolve(self, done: list[_Element]) -> tuple[tuple[GroupElement, ...], Plan]:
        buf = self.buffer
        outcomes: dict[str, ElementOutcome] = {}
        done = [d if d.run is not None else _Element(d.el, d.desc, self.runs[d.el.key]) for d in done]
        for d in done:
            assert d.run is not None
            if d.run.output:
                level = "debug" if d.run.status != ERROR else "info"
                buf.log(level, f"======== Output: {d.el.key} ========")
                buf.log(level, d.run.output.rstrip("\n"))
            if d.run.error:
                buf.info(f"======== Error: {d.el.key} ========")
                buf.info(d.run.error)
        buf.debug("======== Results ========")
        required_failed = any_error = False
        passing: list[_Element] = []
        for d in done:
            run = d.run
            assert run is not None
            status = run.status
            if status == PASS:
                buf.debug(f"pass: {d.el.key}")
                passing.append(d)
                outcomes[d.el.id] = ElementOutcome(d.el.id, d.el.version, d.el.optional, PASS)
                continue
            detail = _last_line(run.error or run.output)
            if status == FAIL:
                buf.debug(f"{'skip' if d.el.optional else 'fail'}: {d.el.key}")
                outcomes[d.el.id] = ElementOutcome(d.el.id, d.el.version, d.el.optional,
                                                   SKIP if d.el.optional else FAIL, detail)
            else:
                any_error = True
                buf.info(f"err:  {d.el.key}" + (f" ({run.code})" if run.code != -1 else ""))
                outcomes[d.el.id] = ElementOutcome(d.el.id, d.el.version, d.el.optional, ERROR,
                                                   detail or f"exit code {run.code}")
            if not d.el.optional:
                required_failed = True
        reasons: list[str] = []

        def finish(passed: bool) -> None:
            self.outcomes.append(GroupOutcome(tuple(outcomes[d.el.id] for d in done), passed, tuple(reasons)))

        if required_failed:
            finish(False)
            raise _Failed(any_error)
        if not passing:
            buf.debug("fail: no viable buildpacks in group")
            reasons.append("fail: no viable buildpacks in group")
            finish(False)
            raise _Failed(False)
        result = self._run_trials(passing, reasons)
        if result is None:
            finish(False)
            raise _Failed(False)
        trial, plan = result
        finish(True)
        if len(trial) < len(done):
            self.buffer.info(f"{len(trial)} of {len(done)} buildpacks participating")
        width = max(len(d.el.id) for d in trial)
        for d in trial:
            self.buffer.info(f"{d.el.id:<{width}} {d.el.version}")
        return tuple(d.el.participating(d.desc.api, d.desc.info.homepage) for d in trial), plan

    def _run_trials(self, passing: list[_Element], reasons: list[str]
                    ) -> tuple[list[_Element], Plan] | None:
        by_key = {d.el.key: d for d in passing}
        result = resolve_plan([(d.el, d.run.plan) for d in passing if d.run is not None],
                              reasons, self.buffer)
        if result is None:
            return None
        group, plan = result
        return [by_key[el.key] for el in group], plan


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _targets_json(desc: BuildpackDescriptor) -> str:
    return "[" + ",".join(f'{{"os":"{t.os}","arch":"{t.arch}"}}' for t in desc.effective_targets()) + "]"
