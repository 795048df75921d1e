"""The detect phase on real bin/detect executables (buildpacks/spec buildpack.md#detection,
#order-resolution; lifecycle phase/detector.go)."""

from __future__ import annotations

import pytest

from cnbsim.errors import BuildpackApiError
from cnbsim.phase.detect import DetectFailed

PROVIDE = 'printf "[[provides]]\\nname = \\"%s\\"\\n" "{0}" >> "$CNB_BUILD_PLAN_PATH"'
REQUIRE = 'printf "[[requires]]\\nname = \\"%s\\"\\n" "{0}" >> "$CNB_BUILD_PLAN_PATH"'


def ids(result):
    return [(e.id, e.version) for e in result.group]


def test_first_group_that_passes_wins_and_later_groups_are_not_run(lc, bps, tmp_path):
    bps("a", detect="exit 100")
    bps("b")
    bps("c", detect=f"touch {tmp_path}/c-ran")
    result = lc.detect([[("a", "1.0")], [("b", "1.0")], [("c", "1.0")]])
    assert ids(result) == [("b", "1.0")]
    assert not (tmp_path / "c-ran").exists()


def test_each_bin_detect_runs_once_even_when_in_several_groups(lc, bps, tmp_path):
    bps("a", detect=f"echo x >> {tmp_path}/a-runs; exit 0")
    bps("b", detect="exit 100")
    bps("c")
    lc.detect([[("a", "1.0"), ("b", "1.0")], [("a", "1.0"), ("c", "1.0")]])
    assert (tmp_path / "a-runs").read_text().count("x") == 1


def test_composite_expands_depth_first_with_rest_of_group_appended(lc, bps, tmp_path):
    # E = [A, F, B], F = [[C], [G], [D]]: tries [A, C, B], then [A, G..., B], then [A, D, B]
    bps("a")
    bps("b")
    bps("c", detect="exit 100")
    bps("g", detect="exit 100")
    bps("d")
    bps("f", order=[[("c", "1.0")], [("g", "1.0")], [("d", "1.0")]])
    result = lc.detect([[("a", "1.0"), ("f", "1.0"), ("b", "1.0")]])
    assert ids(result) == [("a", "1.0"), ("d", "1.0"), ("b", "1.0")]
    # composite buildpacks never appear in the group
    assert "f" not in [e.id for e in result.group]


def test_a_nested_composite_whose_api_is_not_a_version_is_expanded_but_one_in_the_order_is_exit_12(lc, bps):
    # lifecycle: only the order's own elements are verified (phase/hermetic_factory.go verifyOrder);
    # a composite's api is kept as text when read (buildpack/bp_descriptor.go ReadBpDescriptor)
    bps("a")
    bps("inner", api="0.x", order=[[("a", "1.0")]])
    bps("outer", order=[[("inner", "1.0")]])
    assert ids(lc.detect([[("outer", "1.0")]])) == [("a", "1.0")]
    with pytest.raises(BuildpackApiError, match="parse buildpack API '0.x' for buildpack 'inner@1.0'") as info:
        lc.detect([[("inner", "1.0")]])
    assert info.value.exit_code == 12


def test_optional_composite_whose_groups_all_fail_is_left_out(lc, bps):
    bps("a")
    bps("c", detect="exit 100")
    bps("f", order=[[("c", "1.0")]])
    result = lc.detect([[("a", "1.0"), ("f", "1.0", True)]])
    assert ids(result) == [("a", "1.0")]


def test_optional_buildpack_that_fails_detect_is_dropped_from_group(lc, bps):
    bps("a")
    bps("opt", detect="exit 100")
    result = lc.detect([[("opt", "1.0", True), ("a", "1.0")]])
    assert ids(result) == [("a", "1.0")]
    assert any("1 of 2 buildpacks participating" in m for _, m in lc.log.records)


def test_optional_buildpack_that_errors_is_dropped_and_group_still_passes(lc, bps):
    bps("a")
    bps("opt", detect="exit 3")
    assert ids(lc.detect([[("opt", "1.0", True), ("a", "1.0")]])) == [("a", "1.0")]


def test_group_fails_when_a_required_buildpack_fails(lc, bps):
    bps("a")
    bps("b", detect="echo 'no b here'; exit 100")
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0"), ("b", "1.0")]])
    assert info.value.exit_code == 20
    explained = info.value.explain()
    assert "fail: b@1.0 - no b here" in explained
    assert "pass: a@1.0" in explained


def test_buildpack_error_makes_detection_exit_21(lc, bps):
    bps("a", detect="echo boom >&2; exit 7")
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0")]])
    assert info.value.exit_code == 21
    assert "err:  a@1.0 (7)" in [m for _, m in lc.log.records]
    assert "boom" in info.value.explain()


def test_duplicate_id_in_a_group_keeps_the_first_occurrence(lc, bps):
    bps("a", "1")
    bps("a", "2")
    bps("b")
    result = lc.detect([[("a", "1"), ("b", "1.0"), ("a", "2")]])
    assert ids(result) == [("a", "1"), ("b", "1.0")]


def test_provide_without_require_fails_required_buildpack(lc, bps):
    bps("a", detect=PROVIDE.format("py"))
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0")]])
    assert "fail: a@1.0 provides unused py" in info.value.explain()


def test_require_resolved_by_earlier_provider_gives_plan_entry_with_metadata(lc, bps):
    bps("a", detect=PROVIDE.format("py"))
    bps("b", detect='printf "[[requires]]\\nname = \\"py\\"\\n[requires.metadata]\\nversion = \\"3.11\\"\\n" > "$2"',
        api="0.7")
    result = lc.detect([[("a", "1.0"), ("b", "1.0")]])
    (entry,) = result.plan.entries
    assert [p.id for p in entry.providers] == ["a"]
    assert [(r.name, r.metadata) for r in entry.requires] == [("py", {"version": "3.11"})]


def test_require_before_provide_drops_optional_requirer(lc, bps):
    bps("early", detect=REQUIRE.format("py"))
    bps("a", detect=PROVIDE.format("py") + "\n" + REQUIRE.format("py"))
    result = lc.detect([[("early", "1.0", True), ("a", "1.0")]])
    assert ids(result) == [("a", "1.0")]


def test_or_alternative_is_used_when_primary_does_not_resolve(lc, bps):
    bps("a", detect=r'''cat > "$CNB_BUILD_PLAN_PATH" <<'EOF'
[[requires]]
name = "cpython"
[[or]]
[[or.requires]]
name = "conda-environment"
EOF''')
    bps("conda", detect=PROVIDE.format("conda-environment"))
    result = lc.detect([[("conda", "1.0"), ("a", "1.0")]])
    assert ids(result) == [("conda", "1.0"), ("a", "1.0")]
    assert [e.requires[0].name for e in result.plan.entries] == ["conda-environment"]
    assert any(m == "Resolving plan... (try #2)" for _, m in lc.log.records)


def test_version_key_in_requires_is_a_buildpack_error(lc, bps):
    bps("a", detect='printf "[[requires]]\\nname = \\"x\\"\\nversion = \\"1\\"\\n" > "$CNB_BUILD_PLAN_PATH"')
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0")]])
    assert info.value.exit_code == 21
    assert '"metadata.version" should be used instead' in info.value.explain()


def test_malformed_plan_toml_is_a_buildpack_error_naming_the_buildpack(lc, bps):
    bps("a", detect='echo "[[provides" > "$CNB_BUILD_PLAN_PATH"')
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0")]])
    assert info.value.exit_code == 21
    assert "invalid TOML in build plan written by a" in info.value.explain()


def test_missing_bin_detect_is_an_error_that_says_what_to_add(lc, bps):
    bps("a", detect=None)
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0")]])
    assert "bin/detect does not exist" in info.value.explain()


def test_bin_detect_without_run_bit_says_chmod(lc, bps):
    path = bps("a")
    (path / "bin" / "detect").chmod(0o644)
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0")]])
    assert "chmod +x" in info.value.explain()


def test_hanging_bin_detect_is_killed_after_the_timeout(lc, bps):
    bps("a", detect="sleep 30")
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0")]], detect_timeout=0.5)
    assert "timed out after 0.5s" in info.value.explain()


def test_unsupported_buildpack_api_is_exit_12(lc, bps):
    bps("a", api="0.6")
    with pytest.raises(BuildpackApiError) as info:
        lc.detect([[("a", "1.0")]])
    assert info.value.exit_code == 12
    assert "buildpack API version '0.6' is incompatible with the lifecycle" in str(info.value)


@pytest.mark.parametrize("api, expected", [
    ("0.7", {"CNB_BUILDPACK_DIR"}),
    ("0.8", {"CNB_BUILDPACK_DIR", "CNB_PLATFORM_DIR", "CNB_BUILD_PLAN_PATH"}),
    ("0.10", {"CNB_BUILDPACK_DIR", "CNB_PLATFORM_DIR", "CNB_BUILD_PLAN_PATH", "CNB_TARGET_OS", "CNB_TARGET_ARCH"}),
    ("0.12", {"CNB_BUILDPACK_DIR", "CNB_PLATFORM_DIR", "CNB_BUILD_PLAN_PATH", "CNB_TARGET_OS", "CNB_TARGET_ARCH",
              "CNB_EXEC_ENV"}),
])
def test_detect_gets_the_cnb_variables_of_its_declared_api(lc, bps, tmp_path, api, expected):
    bps("a", api=api, detect=f'env | grep ^CNB_ | cut -d= -f1 | sort > {tmp_path}/vars; '
                             f'echo "$#:$1:$2:$PWD" > {tmp_path}/args')
    lc.detect([[("a", "1.0")]])
    seen = set((tmp_path / "vars").read_text().split())
    seen -= {"CNB_TARGET_DISTRO_NAME", "CNB_TARGET_DISTRO_VERSION"}
    assert seen == expected
    count, platform_arg, plan_arg, cwd = (tmp_path / "args").read_text().strip().split(":")
    assert count == "2" and platform_arg == str(lc.platform_dir) and plan_arg.endswith("plan.toml")
    assert cwd == str(lc.app)


def test_platform_env_files_are_given_to_detect_but_not_the_lifecycle_environment(lc, bps, tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_HOST_VAR", "leaky")
    lc.platform_env("BP_GREETING", "hello")
    bps("a", detect=f'echo "${{BP_GREETING:-}}|${{SOME_HOST_VAR:-}}" > {tmp_path}/seen')
    from cnbsim.env import Env
    lc.detect([[("a", "1.0")]], base_env=Env.for_build())
    assert (tmp_path / "seen").read_text().strip() == "hello|"


def test_clear_env_buildpack_does_not_get_platform_env(lc, bps, tmp_path):
    lc.platform_env("BP_GREETING", "hello")
    bps("a", extra="clear-env = true", detect=f'echo "${{BP_GREETING:-unset}}" > {tmp_path}/seen')
    lc.detect([[("a", "1.0")]])
    assert (tmp_path / "seen").read_text().strip() == "unset"


def _meet(me: str, other: str, tmp_path) -> str:
    """A bin/detect that passes only if `other`'s bin/detect runs while it waits (10 s at most)."""
    return (f'touch {tmp_path}/{me}-started; i=0; while [ $i -lt 500 ]; do '
            f'[ -e {tmp_path}/{other}-started ] && exit 0; sleep 0.02; i=$((i+1)); done; exit 100')


def test_the_bin_detects_of_a_group_run_side_by_side_as_the_lifecycle_starts_them(lc, bps, tmp_path):
    # lifecycle phase/detector.go detectGroup: one goroutine per element, all waited for before resolving.
    # Each of these passes only if the other runs at the same time: one after the other, the first fails.
    bps("a", detect=_meet("a", "b", tmp_path))
    bps("b", detect=_meet("b", "a", tmp_path))
    assert ids(lc.detect([[("a", "1.0"), ("b", "1.0")]])) == [("a", "1.0"), ("b", "1.0")]


def test_a_composite_s_first_group_runs_beside_the_enclosing_group_s_prefix(lc, bps, tmp_path):
    # the lifecycle passes its WaitGroup into the composite's detectOrder: the prefix's goroutines are
    # still running while the nested group's start
    bps("a", detect=_meet("a", "c", tmp_path))
    bps("c", detect=_meet("c", "a", tmp_path))
    bps("f", order=[[("c", "1.0")]])
    assert ids(lc.detect([[("a", "1.0"), ("f", "1.0")]])) == [("a", "1.0"), ("c", "1.0")]


def test_side_by_side_runs_keep_the_group_s_order_in_the_log_and_run_once(lc, bps, tmp_path):
    for name, delay in (("a", "0.3"), ("b", "0"), ("c", "0.1")):
        bps(name, detect=f"sleep {delay}; echo detect-{name}; echo x >> {tmp_path}/{name}-runs; exit 100")
    bps("d")
    with pytest.raises(DetectFailed) as info:
        lc.detect([[("a", "1.0"), ("b", "1.0"), ("c", "1.0")], [("a", "1.0"), ("d", "1.0"), ("c", "1.0")]])
    text = info.value.explain()
    assert text.index("a@1.0") < text.index("b@1.0") < text.index("c@1.0")
    assert all((tmp_path / f"{n}-runs").read_text() == "x\n" for n in "abc")
