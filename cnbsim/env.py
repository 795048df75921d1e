"""Environment rules: the build env, platform env, layer env dirs and their suffixes.

buildpacks/spec buildpack.md#environment and #environment-variable-modification-rules, and lifecycle env/
(env.go, build.go, launch.go).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# lifecycle env/build.go: the only variables of the lifecycle's own environment a buildpack gets.
BUILD_ENV_ALLOWLIST = ("CNB_STACK_ID", "HOSTNAME", "HOME", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                       "http_proxy", "NO_PROXY", "no_proxy")
POSIX_PATH_VARS = ("PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "PKG_CONFIG_PATH")

# AddRootDir: which subdirectory of a layer extends which variable.
BUILD_ROOT_DIRS = {"bin": ("PATH",), "lib": ("LD_LIBRARY_PATH", "LIBRARY_PATH"),
                   "include": ("CPATH",), "pkgconfig": ("PKG_CONFIG_PATH",)}
LAUNCH_ROOT_DIRS = {"bin": ("PATH",), "lib": ("LD_LIBRARY_PATH",)}

# Launcher: variables the platform sets for the launcher only (lifecycle env/launch.go).
LAUNCH_ENV_EXCLUDE = ("CNB_LAYERS_DIR", "CNB_APP_DIR", "CNB_PROCESS_TYPE", "CNB_PLATFORM_API",
                      "CNB_DEPRECATION_MODE")

OVERRIDE, DEFAULT, PREPEND, APPEND = "override", "default", "prepend", "append"


@dataclass
class Env:
    """A mutable environment that applies the CNB modification rules."""

    vars: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_build(cls, environ: Mapping[str, str] | None = None) -> Env:
        """lifecycle env/build.go NewBuildEnv: the allow-listed and POSIX path variables only."""
        environ = os.environ if environ is None else environ
        keep = BUILD_ENV_ALLOWLIST + POSIX_PATH_VARS
        return cls({k: v for k, v in environ.items() if k in keep})

    @classmethod
    def for_launch(cls, environ: Mapping[str, str]) -> Env:
        """lifecycle env/launch.go NewLaunchEnv: the container env minus the launcher's own variables,
        with /cnb/process and /cnb/lifecycle removed from PATH."""
        out = {k: v for k, v in environ.items() if k not in LAUNCH_ENV_EXCLUDE}
        if "PATH" in out:
            out["PATH"] = os.pathsep.join(p for p in out["PATH"].split(os.pathsep)
                                          if p not in ("/cnb/process", "/cnb/lifecycle"))
        return cls(out)

    def copy(self) -> Env:
        return Env(dict(self.vars))

    def get(self, name: str, default: str = "") -> str:
        return self.vars.get(name, default)

    def apply(self, name: str, action: str, value: str, delim: str = "") -> None:
        """One modification rule (buildpacks/spec buildpack.md#environment-variable-modification-rules)."""
        cur = self.vars.get(name, "")
        if action == OVERRIDE:
            self.vars[name] = value
        elif action == DEFAULT:
            if cur == "":
                self.vars[name] = value
        elif action == PREPEND:
            self.vars[name] = value + (delim + cur if cur else "")
        elif action == APPEND:
            self.vars[name] = (cur + delim if cur else "") + value

    def prepend_path(self, name: str, value: str) -> None:
        self.apply(name, PREPEND, value, os.pathsep)

    def add_root_dir(self, layer_dir: Path, mapping: Mapping[str, tuple[str, ...]], shown: str | None = None) -> None:
        """AddRootDir: `<layer>/bin` prepends PATH, `<layer>/lib` the library paths, ...; `shown` is
        the layer's path as the process sees it (in the build namespace: under /layers)."""
        base = shown if shown is not None else str(layer_dir.absolute())
        for sub, names in mapping.items():
            if (layer_dir / sub).exists():  # lc: any entry of that name, as os.Stat finds it
                for name in names:
                    self.prepend_path(name, f"{base}/{sub}")

    def add_env_dir(self, env_dir: Path, default_action: str = OVERRIDE) -> None:
        """Apply every file of an env dir in sorted name order, with the suffix rules of buildpack.md."""
        for name, action, value, delim in read_env_dir(env_dir, default_action):
            self.apply(name, action, value, delim)

    def with_platform(self, platform_dir: Path | None, build_config_dir: Path | None = None) -> Env:
        """lifecycle env/env.go WithOverrides: a copy with `<platform>/env` and `<build-config>/env` applied.

        `<platform>/env`: whole file name = variable name (no suffix parsing, [IMPL] gap 15);
        the POSIX path variables are prepended, everything else overrides.
        `<build-config>/env`: the suffix rules, where no suffix means `default`.
        """
        out = self.copy()
        if platform_dir is not None:
            for path in _env_files(platform_dir / "env"):
                value = _raw(path)
                if path.name in POSIX_PATH_VARS:
                    out.prepend_path(path.name, value)
                else:
                    out.vars[path.name] = value
        if build_config_dir is not None:
            out.add_env_dir(build_config_dir / "env", DEFAULT)
        return out


def read_platform_env(platform_dir: Path) -> dict[str, str]:
    """The variables `<platform>/env` gives (file name -> raw content)."""
    return {p.name: _raw(p) for p in _env_files(platform_dir / "env")}


def _raw(path: Path) -> str:
    """The file's bytes as they are (no newline translation): values are never trimmed
    (buildpacks/spec buildpack.md#environment-variable-modification-rules)."""
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def _env_files(env_dir: Path) -> list[Path]:
    """Regular files (or links to files) in name order; directories are skipped."""
    try:
        entries = sorted(env_dir.iterdir(), key=lambda p: p.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p for p in entries if p.is_file()]


def read_env_dir(env_dir: Path, default_action: str = OVERRIDE) -> Iterable[tuple[str, str, str, str]]:
    """Yield (name, action, value, delim) for each file of an env dir, in the order the lifecycle applies them.

    `NAME.delim` is read as the delimiter of NAME in the same dir, never applied; an
    unknown suffix (`NAME.foo.append`) is ignored (lifecycle env/env.go addEnvDir).
    """
    files = _env_files(env_dir)
    names = {p.name for p in files}
    for path in files:
        name, _, suffix = path.name.partition(".")
        action = suffix or default_action
        if action not in (OVERRIDE, DEFAULT, PREPEND, APPEND):
            continue
        delim = ""
        if f"{name}.delim" in names:
            delim = _raw(env_dir / f"{name}.delim")
        value = _raw(path)
        yield name, action, value, delim
