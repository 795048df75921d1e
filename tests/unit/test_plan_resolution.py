"""Build-plan resolution over the buildpacks that passed detection (buildpacks/spec buildpack.md#phase-1-detection;
lifecycle phase/detector.go runTrial).

`resolve_plan` is pure: each case gives the passing buildpacks with the plan each wrote,
in group order, and checks the participating group and the resolved plan.
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from cnbsim.log import BufferedLogger
from cnbsim.model.order import GroupElement
from cnbsim.model.plan import DetectPlan, Plan, PlanEntry, PlanOption, Provide, Provider, Require
from cnbsim.phase.resolve import resolve_plan


def option(provides: Iterable[str] = (), requires: Iterable[str | Require] = ()) -> PlanOption:
    return PlanOption(tuple(Provide(n) for n in provides),
                      tuple(r if isinstance(r, Require) else Require(r) for r in requires))


def bp(bp_id: str, provides: Iterable[str] = (), requires: Iterable[str | Require] = (), *,
       optional: bool = False, ors: Iterable[PlanOption] = ()) -> tuple[GroupElement, DetectPlan]:
    return GroupElement(bp_id, "1", optional=optional), DetectPlan(option(provides, requires), tuple(ors))


def ids(result) -> list[str]:
    assert result is not None, "expected the group to resolve"
    return [el.id for el in result[0]]


def entries(result) -> dict[str, PlanEntry]:
    """Plan entries by dependency name (entry order is unspecified in the lifecycle: phase/detector.go)."""
    assert result is not None, "expected the group to resolve"
    out = {}
    for entry in result[1].entries:
        names = {r.name for r in entry.requires}
        assert len(names) == 1, f"an entry mixes dependency names: {entry}"
        out[names.pop()] = entry
    return out


def providers(entry: PlanEntry) -> list[str]:
    return [p.id for p in entry.providers]


# -- provides and requires (lifecycle phase/detector.go runTrial) ---

def test_buildpack_own_provide_satisfies_its_own_require():
    result = resolve_plan([bp("a", ["x"], ["x"])])
    assert ids(result) == ["a"]
    assert result[1] == Plan((PlanEntry((Provider("a", "1"),), (Require("x"),)),))


def test_provide_satisfies_a_require_of_a_later_buildpack():
    result = resolve_plan([bp("a", ["x"]), bp("b", requires=["x"])])
    assert ids(result) == ["a", "b"]
    assert providers(entries(result)["x"]) == ["a"]


def test_require_before_any_provide_fails_a_required_buildpack():
    reasons: list[str] = []
    assert resolve_plan([bp("a", requires=["x"]), bp("b", ["x"], ["x"])], reasons) is None
    assert any("fail: a@1 requires x" in r for r in reasons)


def test_require_before_any_provide_drops_an_optional_buildpack():
    log = BufferedLogger()
    result = resolve_plan([bp("a", requires=["x"], optional=True), bp("b", ["x"], ["x"])], log=log)
    assert ids(result) == ["b"]
    assert ("debug", "skip: a@1 requires x") in log.records


def test_unused_provide_fails_a_required_buildpack():
    reasons: list[str] = []
    assert resolve_plan([bp("a", ["x"]), bp("b")], reasons) is None
    assert any("fail: a@1 provides unused x" in r for r in reasons)


def test_unused_provide_drops_an_optional_buildpack():
    log = BufferedLogger()
    result = resolve_plan([bp("a", ["x"], optional=True), bp("b")], log=log)
    assert ids(result) == ["b"]
    assert result[1] == Plan()
    assert ("debug", "skip: a@1 provides unused x") in log.records


def test_provide_after_the_last_require_is_unused_even_if_an_earlier_provide_was_consumed():
    assert resolve_plan([bp("a", ["x"]), bp("b", requires=["x"]), bp("c", ["x"])]) is None
    result = resolve_plan([bp("a", ["x"]), bp("b", requires=["x"]), bp("c", ["x"], optional=True)])
    assert ids(result) == ["a", "b"]


def test_provider_between_two_requires_of_a_name_is_listed_with_the_earlier_provider():
    result = resolve_plan([bp("a", ["x"]), bp("b", requires=[Require("x", {"by": "b"})]),
                           bp("c", ["x"]), bp("d", requires=[Require("x", {"by": "d"})])])
    assert ids(result) == ["a", "b", "c", "d"]
    assert providers(entries(result)["x"]) == ["a", "c"]
    assert entries(result)["x"].requires == (Require("x", {"by": "b"}), Require("x", {"by": "d"}))


def test_required_buildpack_that_requires_what_only_a_later_one_provides_fails_the_group():
    assert resolve_plan([bp("a", requires=["x"]), bp("b", ["x"])]) is None


def test_dropping_an_optional_buildpack_is_repeated_until_nothing_more_is_dropped():
    # b needs x (nobody provides it) -> b dropped -> y is no longer provided -> c dropped too.
    group = [bp("a"), bp("b", ["y"], ["x"], optional=True), bp("c", requires=["y"], optional=True)]
    result = resolve_plan(group)
    assert ids(result) == ["a"]
    assert result[1] == Plan()


def test_group_that_passes_detection_with_no_plan_resolves_to_an_empty_plan():
    result = resolve_plan([bp("a"), bp("b")])
    assert ids(result) == ["a", "b"]
    assert result[1] == Plan()


# -- plan entries (lifecycle phase/detector.go runTrial) -----

def test_plan_entry_lists_every_provider_and_every_require_in_group_order_with_metadata():
    result = resolve_plan([
        bp("a", ["x"]),
        bp("b", ["x"], [Require("x", {"version": "3.12"})]),
        bp("c", ["y"], [Require("x", {"build": True})]),
        bp("d", requires=[Require("y", {"launch": True})]),
    ])
    by_name = entries(result)
    assert providers(by_name["x"]) == ["a", "b"]
    assert by_name["x"].requires == (Require("x", {"version": "3.12"}), Require("x", {"build": True}))
    assert providers(by_name["y"]) == ["c"]
    assert by_name["y"].requires == (Require("y", {"launch": True}),)
    assert by_name["x"].providers == (Provider("a", "1"), Provider("b", "1"))


def test_plan_entries_come_in_the_order_of_their_first_provide():
    result = resolve_plan([bp("a", ["z"]), bp("b", ["x"], ["x"]), bp("c", requires=["z"])])
    assert [e.requires[0].name for e in result[1].entries] == ["z", "x"]


def test_requires_of_an_optional_buildpack_dropped_for_requiring_early_are_not_in_the_plan():
    result = resolve_plan([bp("a", requires=[Require("x", {"by": "a"})], optional=True),
                           bp("b", ["x"]), bp("c", requires=[Require("x", {"by": "c"})])])
    assert ids(result) == ["b", "c"]
    assert entries(result)["x"].requires == (Require("x", {"by": "c"}),)


# -- [[or]] alternatives and trials (lifecycle phase/detector.go runTrial) ---

def test_or_alternative_is_tried_when_the_primary_plan_does_not_resolve():
    result = resolve_plan([bp("a", requires=["missing"], ors=[option(["x"], ["x"])])])
    assert ids(result) == ["a"]
    assert list(entries(result)) == ["x"]


def test_alternatives_are_tried_in_order_and_the_first_that_resolves_wins():
    result = resolve_plan([bp("a", requires=["missing"], ors=[option(["x"], ["x"]), option(["y"], ["y"])])])
    assert list(entries(result)) == ["x"]


def test_trials_vary_the_last_buildpack_first_so_the_first_buildpack_is_outermost():
    # (a0, b0) fails; (a0, b1) resolves with x; (a1, b0) would resolve with y.
    group = [bp("a", ["x"], ors=[option(["y"])]), bp("b", requires=["y"], ors=[option(requires=["x"])])]
    log = BufferedLogger()
    result = resolve_plan(group, log=log)
    assert list(entries(result)) == ["x"]
    assert [m for _, m in log.records if m.startswith("Resolving plan")] == [
        "Resolving plan... (try #1)", "Resolving plan... (try #2)"]


def test_optional_buildpack_is_not_dropped_by_an_alternative_that_is_not_its_last():
    # Were the primary plan allowed to drop a, try #1 would resolve to [b] alone.
    group = [bp("a", requires=["missing"], optional=True, ors=[option(["x"], ["x"])]), bp("b")]
    result = resolve_plan(group)
    assert ids(result) == ["a", "b"]
    assert list(entries(result)) == ["x"]


def test_optional_buildpack_is_dropped_when_its_last_alternative_does_not_resolve():
    group = [bp("a", requires=["missing"], optional=True, ors=[option(requires=["gone"])]), bp("b")]
    assert ids(resolve_plan(group)) == ["b"]


def test_optional_buildpack_without_alternatives_may_be_dropped_by_its_only_plan():
    assert ids(resolve_plan([bp("a", requires=["missing"], optional=True), bp("b")])) == ["b"]


def test_when_no_trial_resolves_the_reasons_name_every_try():
    reasons: list[str] = []
    group = [bp("a", requires=["missing"], ors=[option(requires=["gone"])])]
    assert resolve_plan(group, reasons) is None
    assert any(r.startswith("try #1: fail: a@1 requires missing") for r in reasons)
    assert any(r.startswith("try #2: fail: a@1 requires gone") for r in reasons)


# -- empty trials (lifecycle phase/detector.go runTrial) -----

def test_no_passing_buildpacks_fails():
    assert resolve_plan([]) is None


def test_trial_whose_every_buildpack_was_dropped_fails():
    reasons: list[str] = []
    assert resolve_plan([bp("a", ["x"], optional=True), bp("b", requires=["y"], optional=True)], reasons) is None
    assert "try #1: fail: no viable buildpacks in group" in reasons


# -- properties -----------------------------------------------------------------------------------------

NAMES = ["x", "y", "z"]


def names_of(mask: int) -> list[str]:
    return [name for bit, name in enumerate(NAMES) if mask & (1 << bit)]


def to_option(index: int, masks: tuple[int, int]) -> PlanOption:
    # Every require carries who asked for it, so a plan entry's requires can be traced to a buildpack.
    provides, requires = masks
    return option(names_of(provides), [Require(n, {"by": f"bp{index}"}) for n in names_of(requires)])


def to_group(drawn: list[tuple[bool, tuple[int, int], list[tuple[int, int]]]]
             ) -> list[tuple[GroupElement, DetectPlan]]:
    return [(GroupElement(f"bp{i}", "1", optional=optional),
             DetectPlan(to_option(i, primary), tuple(to_option(i, alt) for alt in ors)))
            for i, (optional, primary, ors) in enumerate(drawn)]


MASKS = st.tuples(st.integers(0, 7), st.integers(0, 7))   # (provides, requires) as bit sets of NAMES


def passing_groups(*, with_or: bool = True, with_optional: bool = True):
    """Up to five passing buildpacks bp0..bp4, each with a plan over the names x, y, z."""
    return st.lists(st.tuples(st.booleans() if with_optional else st.just(False), MASKS,
                              st.lists(MASKS, max_size=2) if with_or else st.just([])),
                    max_size=5).map(to_group)


def position(bp_id: str) -> int:
    return int(bp_id[2:])


property_test = settings(deadline=None, max_examples=120)


@property_test
@given(passing_groups())
def test_resolved_group_is_a_subsequence_of_the_input_in_order(group):
    result = resolve_plan(group)
    if result is not None:
        inputs = [el for el, _ in group]
        it = iter(inputs)
        assert all(any(el == candidate for candidate in it) for el in result[0])


@property_test
@given(passing_groups())
def test_every_required_buildpack_participates_or_the_group_fails(group):
    result = resolve_plan(group)
    if result is not None:
        assert {el.id for el, _ in group if not el.optional} <= {el.id for el in result[0]}


@property_test
@given(passing_groups())
def test_every_plan_entry_has_a_provider_and_a_require_from_participating_buildpacks(group):
    result = resolve_plan(group)
    if result is not None:
        participating = {el.id for el in result[0]}
        for entry in result[1].entries:
            assert entry.providers and entry.requires
            assert {p.id for p in entry.providers} <= participating
            assert {r.metadata["by"] for r in entry.requires} <= participating


@property_test
@given(passing_groups())
def test_every_require_comes_at_or_after_the_first_provider_and_every_provider_at_or_before_the_last_require(
        group):
    result = resolve_plan(group)
    if result is not None:
        for entry in result[1].entries:
            provider_positions = [position(p.id) for p in entry.providers]
            require_positions = [position(r.metadata["by"]) for r in entry.requires]
            assert provider_positions == sorted(provider_positions)
            assert require_positions == sorted(require_positions)
            assert min(provider_positions) <= min(require_positions)
            assert max(provider_positions) <= max(require_positions)


def satisfied(group: list[tuple[GroupElement, PlanOption]]) -> bool:
    """lifecycle phase/detector.go runTrial: every require has a provide at the same or an earlier
    buildpack, and every provide has a require at the same or a later buildpack."""
    for i, (_, opt) in enumerate(group):
        for r in opt.requires:
            if not any(r.name in {p.name for p in o.provides} for _, o in group[:i + 1]):
                return False
        for p in opt.provides:
            if not any(p.name in {r.name for r in o.requires} for _, o in group[i:]):
                return False
    return True


@property_test
@given(passing_groups(with_or=False, with_optional=False))
def test_all_required_group_without_alternatives_resolves_exactly_when_every_dependency_is_satisfied(group):
    result = resolve_plan(group)
    options = [(el, plan.primary) for el, plan in group]
    if not group or not satisfied(options):
        assert result is None
        return
    assert result is not None and list(result[0]) == [el for el, _ in group]
    expected = {}
    for name in NAMES:
        provided_by = [el.id for el, o in options if name in {p.name for p in o.provides}]
        required = [r for _, o in options for r in o.requires if r.name == name]
        if provided_by:
            expected[name] = (provided_by, required)
    assert {n: (providers(e), list(e.requires)) for n, e in entries(result).items()} == expected


@property_test
@given(passing_groups(with_or=False))
def test_group_without_alternatives_resolves_to_a_satisfied_group(group):
    result = resolve_plan(group)
    if result is not None:
        chosen = {el.id for el in result[0]}
        assert satisfied([(el, plan.primary) for el, plan in group if el.id in chosen])


@property_test
@given(passing_groups(with_or=False))
def test_group_without_alternatives_fails_only_for_a_required_buildpack_or_an_empty_result(group):
    # Dropping every optional buildpack that can be dropped must leave a resolvable group when the
    # required buildpacks alone (in order) satisfy each other; the resolution may keep more.
    required = [(el, plan.primary) for el, plan in group if not el.optional]
    if required and satisfied(required):
        assert resolve_plan(group) is not None
