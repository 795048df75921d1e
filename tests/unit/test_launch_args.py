"""User arguments given at launch, per Platform API and Buildpack API (buildpacks/spec platform.md#launcher;
lifecycle launch/process.go)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnbsim.errors import LaunchError
from cnbsim.model.api import ApiVersion
from cnbsim.model.launch import Process
from cnbsim.phase.launch import _user_args

NEW_PLATFORM = ApiVersion.parse("0.15")


def process(*command: str, args: tuple[str, ...] = ()) -> Process:
    return Process(type="web", command=tuple(command), args=args, buildpack_id="my-bp")


def resolve(proc: Process, user: tuple[str, ...], bp_api: str, platform_api: str = "0.15"):
    return _user_args(proc, user, ApiVersion.parse(bp_api), ApiVersion.parse(platform_api))


@pytest.mark.parametrize("platform_api", ["0.7", "0.9"])
@pytest.mark.parametrize("bp_api", ["0.7", "0.9", "0.12"])
def test_before_platform_0_10_user_args_are_always_appended_to_the_process_args(platform_api, bp_api):
    assert resolve(process("python", args=("app.py",)), ("--debug",), bp_api, platform_api) == (
        "python", ("app.py", "--debug"))


def test_before_platform_0_10_extra_command_words_stay_in_front_of_the_args():
    # metadata.toml < 0.10 moves command[1:] into args; the launcher then appends user args.
    result = resolve(process("python", "-m", "app", args=("--port", "8080")), ("--debug",), "0.10", "0.9")
    assert result == ("python", ("-m", "app", "--port", "8080", "--debug"))


@pytest.mark.parametrize("bp_api", ["0.8", "0.9", "0.12"])
def test_command_of_several_words_keeps_its_extra_words_and_user_args_replace_the_process_args(bp_api):
    proc = process("python", "-m", "app", args=("--port", "8080"))
    assert resolve(proc, ("--port", "9000"), bp_api) == ("python", ("-m", "app", "--port", "9000"))


@pytest.mark.parametrize("bp_api", ["0.8", "0.9", "0.12"])
def test_command_of_several_words_without_user_args_keeps_the_process_args(bp_api):
    proc = process("python", "-m", "app", args=("--port", "8080"))
    assert resolve(proc, (), bp_api) == ("python", ("-m", "app", "--port", "8080"))


@pytest.mark.parametrize("bp_api", ["0.7", "0.9", "0.12"])
def test_single_word_command_without_user_args_runs_the_process_args(bp_api):
    assert resolve(process("gunicorn", args=("app:app",)), (), bp_api) == ("gunicorn", ("app:app",))


@pytest.mark.parametrize("bp_api", ["0.7", "0.8"])
def test_single_word_command_of_a_buildpack_before_api_0_9_appends_user_args(bp_api):
    assert resolve(process("python app.py", args=("--port", "8080")), ("--debug",), bp_api) == (
        "python app.py", ("--port", "8080", "--debug"))


@pytest.mark.parametrize("bp_api", ["0.9", "0.10", "0.12"])
def test_single_word_command_of_a_buildpack_from_api_0_9_replaces_the_args_with_user_args(bp_api):
    assert resolve(process("gunicorn", args=("app:app",)), ("other:app", "-w", "2"), bp_api) == (
        "gunicorn", ("other:app", "-w", "2"))


@pytest.mark.parametrize("command", [(), ("",)])
@pytest.mark.parametrize("platform_api", ["0.9", "0.15"])
def test_process_without_a_command_is_a_launch_error(command, platform_api):
    with pytest.raises(LaunchError, match='no command provided for process type "web"') as err:
        resolve(process(*command), ("x",), "0.10", platform_api)
    assert err.value.exit_code == 82


WORDS = st.lists(st.text(min_size=1, max_size=5), max_size=3).map(tuple)


@settings(deadline=None, max_examples=100)
@given(command=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3).map(tuple),
       args=WORDS, user=WORDS, bp_minor=st.integers(7, 12))
def test_command_head_runs_with_its_extra_words_first_then_the_args_the_table_selects(
        command, args, user, bp_minor):
    head, final_args = _user_args(process(*command, args=args), user, ApiVersion(0, bp_minor), NEW_PLATFORM)
    if not user:
        selected = args
    elif len(command) > 1 or bp_minor >= 9:
        selected = user
    else:
        selected = args + user
    assert (head, final_args) == (command[0], command[1:] + selected)
