"""The build phase: run each bin/build of the group, then read what it left in its layers dir.

Follows lc:phase/builder.go and lc:buildpack/build.go (cnb-spec.md 3.1-3.10).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cnbsim import proc
from cnbsim.buildpacks import BuildpackStore
from cnbsim.env import BUILD_ROOT_DIRS, Env
from cnbsim.errors import BuildError
from cnbsim.log import Logger
from cnbsim.model.buildpack import BuildpackDescriptor, escape_id
from cnbsim.model.launch import (BuildToml, Label, LaunchToml, Process, Slice, StoreToml, read_build_toml,
                                 read_launch_toml, read_store_toml)
from cnbsim.model.layer import LayerMetadata, read_layer_toml
from cnbsim.model.metadata import BuildMetadata
from cnbsim.model.order import GroupElement
from cnbsim.model.plan import BuildpackPlan, Plan
from cnbsim.platform import Platform
from cnbsim.tomlio import write_toml

# Files in a buildpack's layers dir that are not layers.
NON_LAYER_TOMLS = frozenset({"launch.toml", "build.toml", "store.toml"})


@dataclass(frozen=True)
class Layer:
    buildpack_id: str
    name: str
    path: Path                 # <layers>/<escaped id>/<name> (may not exist)
    metadata: LayerMetadata

    @property
    def types(self):  # noqa: ANN201 - LayerTypes
        return self.metadata.types

    @property
    def launch(self) -> bool:
        return self.metadata.types.launch

    @property
    def build(self) -> bool:
        return self.metadata.types.build

    @property
    def cache(self) -> bool:
        return self.metadata.types.cache


@dataclass(frozen=True)
class BuildpackBuild:
    """What one buildpack did: its plan, output, the env earlier buildpacks gave it, its files."""

    element: GroupElement
    plan: BuildpackPlan
    output: str
    env_from_layers: dict[str, str] = field(hash=False)
    layers: tuple[Layer, ...]
    launch: LaunchToml
    build: BuildToml
    store: StoreToml | None


@dataclass(frozen=True)
class BuildOutcome:
    buildpacks: tuple[BuildpackBuild, ...]
    metadata: BuildMetadata
    final_build_env: dict[str, str] = field(hash=False)


def build(group: tuple[GroupElement, ...], plan: Plan, store: BuildpackStore, platform: Platform,
          log: Logger | None = None) -> BuildOutcome:
    """Run the build phase; raise BuildError (exit 51 for a failing bin/build, 52 otherwise)."""
    log = log or Logger()
    descs = [store.lookup(el.id, el.version) for el in group]
    for desc in descs:
        desc.api_version  # exit 12 before anything runs
    shutil.rmtree(platform.layers_dir / "sbom", ignore_errors=True)
    env = platform.base_env.copy()
    remaining = plan
    processes: dict[str, Process] = {}
    default = ""
    labels: list[Label] = []
    slices: list[Slice] = []
    results = []
    for el, desc in zip(group, descs):
        bp_plan = remaining.for_buildpack(desc.id)
        bp_dir = platform.layers_dir / escape_id(desc.id)
        bp_dir.mkdir(parents=True, exist_ok=True)
        env_from_layers = env_changes(env, platform.base_env)
        output = _run_build(desc, bp_plan, bp_dir, env, platform, log)
        layers = _process_layers(desc, bp_dir)
        for layer in layers:  # the env later buildpacks see (cnb-spec.md 3.3.3)
            if layer.build:
                env.add_root_dir(layer.path, BUILD_ROOT_DIRS)
                env.add_env_dir(layer.path / "env")
                env.add_env_dir(layer.path / "env.build")
        build_toml = read_build_toml(bp_dir / "build.toml", bp_plan.names)
        launch = read_launch_toml(bp_dir / "launch.toml", desc.api_version, desc.id)
        for warning in launch.warnings:
            log.warn(warning)
        remaining = remaining.without_met(bp_plan.names - set(build_toml.unmet))
        for p in launch.processes:  # lc processMap: a later buildpack's type replaces an earlier one
            if p.default:
                default = p.type
            elif p.type == default:
                log.warn(f"redefining the following default process type with a process not marked "
                         f"as default: {p.type}")
                default = ""
            processes[p.type] = p
        labels.extend(launch.labels)
        slices.extend(launch.slices)
        results.append(BuildpackBuild(
            element=GroupElement(desc.id, desc.version, api=desc.api, homepage=desc.info.homepage),
            plan=bp_plan, output=output, env_from_layers=env_from_layers, layers=layers, launch=launch,
            build=build_toml, store=read_store_toml(bp_dir / "store.toml")))
    metadata = BuildMetadata(
        buildpacks=tuple(r.element for r in results),
        processes=tuple(processes[t] for t in sorted(processes)),
        labels=tuple(labels), slices=tuple(slices), default_process=default)
    write_toml(platform.layers_dir / "config" / "metadata.toml", metadata.to_toml(platform.api))
    return BuildOutcome(tuple(results), metadata, dict(env.vars))


def env_changes(env: Env, base: Env) -> dict[str, str]:
    """What buildpacks changed in `base`; a value that extends the base one shows it as `$NAME`."""
    out = {}
    for name, value in env.vars.items():
        before = base.get(name)
        if before == value:
            continue
        if before and value.endswith(before):
            value = value[: -len(before)] + f"${name}"
        out[name] = value
    return out


def _run_build(desc: BuildpackDescriptor, bp_plan: BuildpackPlan, bp_dir: Path, env: Env,
               platform: Platform, log: Logger) -> str:
    with tempfile.TemporaryDirectory(prefix="cnbsim-build-") as tmp:
        plan_path = Path(tmp) / escape_id(desc.id) / "plan.toml"
        write_toml(plan_path, bp_plan.to_toml())
        run_env = platform.buildpack_env(env, desc, {"CNB_BP_PLAN_PATH": str(plan_path),
                                                     "CNB_LAYERS_DIR": str(bp_dir)})
        argv = [str(desc.root / "bin" / "build"), str(bp_dir), str(platform.platform_dir), str(plan_path)]
        done = proc.run(argv, env=run_env, cwd=platform.app_dir, timeout=platform.build_timeout,
                        on_line=log.raw)
    if done.code != 0:
        reason = done.error or f"exit status {done.code}"
        raise BuildError(f"failed to build: {reason}", file=argv[0], exit_code=51,
                         hint=f"buildpack {desc.key} failed; its output is above")
    return done.output


def _process_layers(desc: BuildpackDescriptor, bp_dir: Path) -> tuple[Layer, ...]:
    """Every `<layer>.toml`, sorted by file name as lc does; layers with no types become `.ignore`."""
    layers = []
    for toml in sorted(bp_dir.glob("*.toml"), key=lambda p: p.name):
        if toml.name in NON_LAYER_TOMLS or not toml.is_file():
            continue
        name = toml.name[: -len(".toml")]
        layer_dir = bp_dir / name
        if layer_dir.is_symlink():
            raise BuildError(f"layer '{name}' is a symbolic link; a layer must be a directory inside the "
                             "buildpack's layers dir", file=layer_dir, hint="create a real directory instead")
        meta = read_layer_toml(toml, desc.api_version)
        if not meta.types.any:
            # buildpack.md: a layer with no types is not used; lc renames it to <layer>.ignore.
            if layer_dir.exists():
                ignored = bp_dir / f"{name}.ignore"
                shutil.rmtree(ignored, ignore_errors=True)
                layer_dir.rename(ignored)
            continue
        layers.append(Layer(desc.id, name, layer_dir, meta))
    return tuple(layers)
