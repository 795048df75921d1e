"""Optional isolation with bubblewrap (bwrap): the process sees an image's paths, no network.

The root is a read-only view of the host's top-level directories (so interpreters and
tools resolve as on the host), with `/workspace`, `/layers` and `/var/input` mounted where
an image has them, a private `/tmp`, and no network, as `docker run` would give.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

from cnbsim.errors import ConfigError

SKIP_TOP_LEVEL = {"proc", "dev", "sys", "tmp", "run", "var", "workspace", "layers", "cnb"}
MODES = ("auto", "always", "never")


@lru_cache(maxsize=1)
def available() -> str:
    """'' when bwrap works here, else the reason it cannot be used."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bwrap (bubblewrap) is not installed"
    try:
        probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-net", "true"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run here: {exc}"
    if probe.returncode != 0:
        return f"bwrap does not run here: {probe.stderr.decode(errors='replace').strip()}"
    return ""


def use_sandbox(mode: str) -> bool:
    if mode not in MODES:
        raise ConfigError(f"unknown sandbox mode '{mode}'", field="--sandbox", hint="use auto, always or never")
    if mode == "never":
        return False
    reason = available()
    if mode == "always" and reason:
        raise ConfigError(f"--sandbox always, but {reason}",
                          hint="install bubblewrap (apt-get install bubblewrap) or use --sandbox never")
    return not reason


def _host_paths_needed() -> list[str]:
    """This interpreter, its venv and cnbsim itself, when they live where the sandbox has a
    private dir (e.g. a checkout in /tmp): the launcher inside runs from them."""
    package_root = Path(__file__).resolve().parent.parent
    out = []
    for path in sorted({os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), sys.prefix,
                        str(package_root)}):
        top = Path(path).parts[1] if len(Path(path).parts) > 1 else ""
        if top in SKIP_TOP_LEVEL and os.path.isdir(path):
            out.append(path)
    return out


def wrap(argv: Sequence[str], *, output: Path, workspace: Path, layers: Path,
         inputs: Mapping[str, Path], writable_workspace: bool = False, network: bool = False,
         outputs: Mapping[str, Path] | None = None) -> list[str]:
    """The bwrap command line that runs `argv` with the image layout; `inputs` maps image paths to files
    (read-only), `outputs` image paths to host dirs the process may write (e.g. /var/runtime/output)."""
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--tmpfs", "/"]
    if not network:
        args.append("--unshare-net")
    for entry in sorted(os.listdir("/")):
        path = Path("/") / entry
        if entry in SKIP_TOP_LEVEL:
            continue
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/var"]
    for path in _host_paths_needed():
        args += ["--ro-bind", path, path]
    args += [# the build output at its host path too: buildpacks write absolute paths into layers
             "--ro-bind", str(output), str(output),
             "--ro-bind", str(layers), "/layers",
             "--bind" if writable_workspace else "--ro-bind", str(workspace), "/workspace"]
    for image_path, host in sorted(inputs.items()):
        args += ["--ro-bind", str(host), image_path]
    for image_path, host in sorted((outputs or {}).items()):
        args += ["--bind", str(host), image_path]
    args += ["--chdir", "/workspace", "--remount-ro", "/", "--"]
    return args + list(argv)
