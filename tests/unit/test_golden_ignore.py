"""The golden files' ignore patterns (`assert_matches_golden(..., ignore=[...])`), on plain JSON values."""

from __future__ import annotations

import pytest

from cnbsim.pytest_plugin import IGNORED, ignore_fields

REPORT = {
    "buildpacks": [
        {"id": "a", "layers": [{"name": "x", "digest": "sha256:1", "metadata": {"version": "1", "k": 2}}]},
        {"id": "b", "layers": [{"name": "y", "digest": "sha256:2", "metadata": {}}]},
    ],
    "launch_env": {"web": {"V": "1", "W": "2"}, "worker": {"V": "3"}},
}


def test_wildcards_over_lists_and_keys():
    value, unmatched = ignore_fields(REPORT, ["buildpacks[*].layers[*].digest", "launch_env.*.V"])
    assert unmatched == []
    assert [lay["digest"] for bp in value["buildpacks"] for lay in bp["layers"]] == [IGNORED, IGNORED]
    assert value["launch_env"] == {"web": {"V": IGNORED, "W": "2"}, "worker": {"V": IGNORED}}
    assert REPORT["buildpacks"][0]["layers"][0]["digest"] == "sha256:1"       # the input is not changed


def test_an_index_and_a_whole_subtree():
    value, _ = ignore_fields(REPORT, ["buildpacks[0].layers[0].metadata"])
    assert value["buildpacks"][0]["layers"][0]["metadata"] == IGNORED
    assert value["buildpacks"][1]["layers"][0]["metadata"] == {}


def test_patterns_that_name_nothing_are_returned():
    _, unmatched = ignore_fields(REPORT, ["buildpacks[5].id", "launch_env.web.Z", "buildpacks.id", "x"])
    assert unmatched == ["buildpacks[5].id", "launch_env.web.Z", "buildpacks.id", "x"]


@pytest.mark.parametrize("pattern", ["", ".a", "a..b", "a[x]", "a[", "a]"])
def test_an_unreadable_pattern_says_how_to_write_one(pattern):
    with pytest.raises(ValueError, match="ignore pattern"):
        ignore_fields(REPORT, [pattern])
