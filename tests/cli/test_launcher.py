"""The launcher (buildpacks/spec platform.md#launcher; lifecycle launch/, cmd/launcher)
through `cnbsim lifecycle launcher`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cnbsim


def launcher(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": "/usr/bin:/bin", "CNB_LAYERS_DIR": str(out / "layers"), "CNB_APP_DIR": str(out / "workspace"),
            "CNB_PLATFORM_API": "0.15", **env}
    return subprocess.run([sys.executable, "-m", "cnbsim.cli", "lifecycle", "launcher", *args], env=full,
                          capture_output=True, text=True, timeout=60)


LAYER = '''mkdir -p "$CNB_LAYERS_DIR/{name}"
printf '[types]\\nlaunch = {launch}\\n' > "$CNB_LAYERS_DIR/{name}.toml"
'''


def put(layer: str, rel: str, content: str, mode: str = "") -> str:
    """A file in a layer: env values written exactly (no newline), scripts through a heredoc."""
    line = f'mkdir -p "$(dirname "$CNB_LAYERS_DIR/{layer}/{rel}")"\n'
    if mode:
        line += f"cat > \"$CNB_LAYERS_DIR/{layer}/{rel}\" <<'CNBEOF'\n{content}\nCNBEOF\n"
    else:
        line += f"printf '%s' '{content}' > \"$CNB_LAYERS_DIR/{layer}/{rel}\"\n"
    if mode:
        line += f'chmod {mode} "$CNB_LAYERS_DIR/{layer}/{rel}"\n'
    return line


PROCS = '''cat > "$CNB_LAYERS_DIR/launch.toml" <<'TOML'
[[processes]]
type = "web"
command = ["bash", "-c", "echo web:$V:$P:$W:$X:$0:$*", "argv0"]
args = ["default-arg"]
default = true

[[processes]]
type = "worker"
command = ["printenv"]
args = ["V"]
working-dir = "sub"

[[processes]]
type = "pwd"
command = ["pwd"]
working-dir = "sub"
TOML
mkdir -p sub
'''


@pytest.fixture
def built(bps, app, tmp_path):
    body = LAYER.format(name="l", launch="true") + LAYER.format(name="hidden", launch="false")
    body += put("l", "env/V", "from-env")
    body += put("l", "env.launch/P.append", "launch")
    body += put("l", "env.launch/P.delim", "+")
    body += put("l", "env.launch/web/W", "web-only")
    body += put("l", "env.launch/X.default", "bp-default")
    body += put("hidden", "env/HIDDEN", "x")
    body += put("l", "bin/tool", "#!/bin/sh\necho tool-ran", mode="+x")
    body += PROCS
    bps("a", build=body)
    return cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out")


def test_default_process_runs_with_its_launch_env(built):
    res = launcher(built.output, "--process", "web", P="user", X="user-x")
    assert res.returncode == 0, res.stderr
    # env/ overrides; append uses the delim with the user value; a .default does not beat the user's
    assert res.stdout.strip() == "web:from-env:user+launch:web-only:user-x:argv0:default-arg"


def test_process_specific_env_applies_only_to_that_process(built):
    res = launcher(built.output, "--process", "worker")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "from-env"
    assert "W" not in built.launch_env("worker")
    assert built.launch_env("web")["W"] == "web-only"


def test_user_args_replace_process_args_for_api_0_9_and_later(built):
    res = launcher(built.output, "--process", "web", "one", "two")
    assert res.stdout.strip().endswith(":argv0:one two")


def test_working_dir_is_relative_to_the_app(built):
    res = launcher(built.output, "--process", "pwd")
    assert res.stdout.strip() == str(built.workspace / "sub")


def test_layer_bin_is_on_path_and_non_launch_layers_are_not_applied(built):
    env = built.launch_env("web")
    layers = "/layers" if built.image_paths else str(built.layers_dir)   # as the image has it
    assert env["PATH"].split(":")[0] == f"{layers}/a/l/bin"
    assert "HIDDEN" not in env
    res = launcher(built.output, "--", "tool")
    assert res.returncode == 0, res.stdout
    assert res.stdout.strip() == "tool-ran"


def test_launcher_args_are_a_user_command_even_with_a_default_process(built):
    # lifecycle launch/process.go ProcessFor: as /cnb/lifecycle/launcher there is no default process type
    # (it comes from argv[0] only), so `launcher -- echo hi` runs echo, and a single string goes through bash
    res = launcher(built.output, "--", "echo", "hi", "$V")
    assert (res.returncode, res.stdout) == (0, "hi $V\n")
    res = launcher(built.output, "echo $V:$W")
    assert (res.returncode, res.stdout) == (0, "from-env:\n")      # the launch env, no process-specific env
    res = launcher(built.output)
    assert res.returncode == 82
    assert res.stdout == ("ERROR: failed to launch: determine start command: when there is no default "
                          "process a command is required (name a process type or give a command)\n")


def test_direct_user_command_without_default_process(bps, app, tmp_path):
    bps("a", build=LAYER.format(name="l", launch="true") + put("l", "bin/tool", "#!/bin/sh\necho tool:$1", "+x"))
    result = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out")
    assert launcher(result.output, "--", "tool", "x").stdout.strip() == "tool:x"
    assert launcher(result.output, "echo $((1+2))").stdout.strip() == "3"   # a shell command
    res = launcher(result.output)
    assert res.returncode == 82
    assert "when there is no default process a command is required" in res.stdout


def test_unknown_process_type_is_a_launch_error(built):
    res = launcher(built.output, "--process", "nope")
    assert res.returncode == 82
    assert "process type nope was not found" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_missing_working_dir_is_launch_error_82_on_stdout(bps, app, tmp_path):
    bps("a", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["pwd"]\\nworking-dir = "gone"\\n\' '
                   '> "$CNB_LAYERS_DIR/launch.toml"')
    result = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out")
    res = launcher(result.output, "--process", "web")
    # lifecycle launch/launcher.go launchDirect: "change directory" wraps the chdir error; cmd/exit.go logs to stdout
    assert res.returncode == 82
    assert res.stdout.startswith("ERROR: failed to launch: change directory: chdir gone: no such file or directory")
    assert res.stderr == ""


def test_exit_code_is_the_process_exit_code(bps, app, tmp_path):
    bps("a", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "exit 7"]\\ndefault = true\\n\' '
                   '> "$CNB_LAYERS_DIR/launch.toml"')
    result = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out")
    assert launcher(result.output, "--process", "web").returncode == 7


def test_cnb_process_type_is_not_honoured_but_warned_about(built):
    res = launcher(built.output, "--process", "web", CNB_PROCESS_TYPE="worker")
    assert res.stdout.startswith("Warning: CNB_PROCESS_TYPE is not supported in Platform API 0.15\n")
    assert res.stdout.splitlines()[2].startswith("web:")


def test_exec_d_output_on_fd_3_overrides_env_and_runs_in_order(bps, app, tmp_path):
    body = LAYER.format(name="l", launch="true")
    body += put("l", "exec.d/10-first", "#!/bin/sh\necho 'A = \"one\"' >&3\necho 'B = \"b\"' >&3", "+x")
    body += put("l", "exec.d/20-second", "#!/bin/sh\necho \"A = \\\"$A-two\\\"\" >&3", "+x")
    body += put("l", "exec.d/web/30-web", "#!/bin/sh\necho 'C = \"web\"' >&3", "+x")
    body += ('printf \'[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "echo $A:$B:$C"]\\ndefault = true\\n\' '
             '> "$CNB_LAYERS_DIR/launch.toml"\n')
    bps("a", build=body)
    result = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out")
    res = launcher(result.output, "--process", "web")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "one-two:b:web"


def test_failing_exec_d_program_stops_the_launch(bps, app, tmp_path):
    body = LAYER.format(name="l", launch="true") + put("l", "exec.d/bad", "#!/bin/sh\nexit 3", "+x")
    body += ('printf \'[[processes]]\\ntype = "web"\\ncommand = ["true"]\\ndefault = true\\n\' '
             '> "$CNB_LAYERS_DIR/launch.toml"\n')
    bps("a", build=body)
    result = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out")
    res = launcher(result.output, "--process", "web")
    assert res.returncode == 82
    assert "failed to launch: exec.d: failed to execute exec.d file" in res.stdout


def test_api_0_7_shell_process_appends_user_args_and_sources_profile_d(bps, app, tmp_path):
    body = 'CNB_LAYERS_DIR="$1"  # API 0.7 gets the layers dir as $1 only\n'
    body += LAYER.format(name="l", launch="true") + put("l", "profile.d/set.sh", "export FROM_PROFILE=yes")
    body += ('printf \'[[processes]]\\ntype = "web"\\ncommand = "echo"\\nargs = ["$FROM_PROFILE"]\\n'
             'default = true\\n\' > "$1/launch.toml"\n')
    bps("a", api="0.7", build=body)
    result = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out")
    res = launcher(result.output, "--process", "web", "extra")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "yes extra"
