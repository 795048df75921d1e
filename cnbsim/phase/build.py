"""The build phase: run each bin/build of the group, then read what it left in its layers dir.

Follows lifecycle phase/builder.go and lifecycle buildpack/build.go (buildpacks/spec platform.md#builder).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cnbsim.buildpacks import BuildpackStore
from cnbsim.env import BUILD_ROOT_DIRS, Env
from cnbsim.errors import BuildError, ExitCode
from cnbsim.fs import temp_dir
from cnbsim.log import Logger
from cnbsim.model.api import ApiVersion
from cnbsim.model.buildpack import BuildpackDescriptor, escape_id
from cnbsim.model.launch import (
    BuildToml,
    Label,
    LaunchToml,
    Process,
    Slice,
    StoreToml,
    read_build_toml,
    read_launch_toml,
)
from cnbsim.model.layer import LayerTypes
from cnbsim.model.layers import Layer, MalformedLayer, read_layers_dir
from cnbsim.model.metadata import BuildMetadata
from cnbsim.model.order import GroupElement
from cnbsim.model.plan import BuildpackPlan, Plan
from cnbsim.platform import Platform
from cnbsim.sbom import SbomFile, find_sbom_files, finish_sboms
from cnbsim.tomlio import read_toml, write_toml


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
    sbom_files: tuple[SbomFile, ...] = ()


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
        desc.check_api()  # exit 12 before anything runs
    shutil.rmtree(platform.layers_dir / "sbom", ignore_errors=True)
    env = platform.base_env.copy()
    remaining = plan
    processes: dict[str, Process] = {}
    default = ""
    labels: list[Label] = []
    slices: list[Slice] = []
    results = []
    for desc in descs:
        bp_plan = remaining.for_buildpack(desc.id)
        bp_dir = platform.layers_dir / escape_id(desc.id)
        bp_dir.mkdir(parents=True, exist_ok=True)
        env_from_layers = env_changes(env, platform.base_env)
        output = _run_build(desc, bp_plan, bp_dir, env, platform, log)
        layers, store_toml, layer_types = _process_layers(desc, platform.layers_dir)
        for layer in layers:  # the env later buildpacks see (buildpacks/spec buildpack.md#build-layers)
            if layer.build:
                env.add_root_dir(layer.path, BUILD_ROOT_DIRS, shown=platform.shown(layer.path))
                env.add_env_dir(layer.path / "env")
                env.add_env_dir(layer.path / "env.build")
        # lifecycle buildpack/build.go readOutputFilesBp: build.toml, then the SBOM files, then launch.toml
        build_toml = read_build_toml(bp_dir / "build.toml", bp_plan.names, desc.id, desc.version)
        sbom_files = find_sbom_files(bp_dir, desc.id, desc.key, layer_types, desc.info.sbom_formats)
        launch = read_launch_toml(bp_dir / "launch.toml", desc.api, desc.id, desc.version)
        for warning in launch.warnings:
            log.warn(warning)
        if (launch.bom or build_toml.bom) and not sbom_files:
            log.warn("BOM table is deprecated in this buildpack api version, though it remains supported for "
                     "backwards compatibility. Buildpack authors should write BOM information to "
                     "<layer>.sbom.<ext>, launch.sbom.<ext>, or build.sbom.<ext>.")
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
            build=build_toml, store=store_toml, sbom_files=sbom_files))
    launch_bom = tuple(b for r in results for b in r.launch.bom)
    finish_sboms(platform.layers_dir, platform.api, (f for r in results for f in r.sbom_files),
                 launch_bom, (b for r in results for b in r.build.bom))
    metadata = BuildMetadata(
        buildpacks=tuple(r.element for r in results),
        processes=tuple(processes[t] for t in sorted(processes)),
        labels=tuple(labels), slices=tuple(slices), default_process=default,
        # lifecycle phase/builder.go: from Platform API 0.9 the legacy BOM is in sbom.legacy.json only
        bom=launch_bom if platform.api < ApiVersion(0, 9) else ())
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
    with temp_dir("build", platform.scratch_root) as tmp:
        plan_path = Path(tmp) / escape_id(desc.id) / "plan.toml"
        write_toml(plan_path, bp_plan.to_toml())
        shown_plan, shown_layers = platform.shown(plan_path, scratch=Path(tmp)), platform.shown(bp_dir)
        run_env = platform.buildpack_env(env, desc, {"CNB_BP_PLAN_PATH": shown_plan, "CNB_LAYERS_DIR": shown_layers})
        done = platform.run_buildpack(desc, "build", [shown_layers, platform.shown(platform.platform_dir), shown_plan],
                                      run_env, platform.build_timeout, scratch=Path(tmp), on_line=log.raw)
    if done.code != 0:
        reason = done.error or f"exit status {done.code}"
        output = log.redact(done.output)
        where = "its output is above" if log.stream is not None else f"the end of its output:\n{tail(output)}"
        raise BuildError(f"failed to build: {reason}", file=desc.root / "bin" / "build",
                         exit_code=ExitCode.BUILD_FAILED_WITH_ERRORS, buildpack=desc.id, output=output,
                         hint=f"buildpack {desc.key} failed; {where}")
    return done.output


def tail(text: str, lines: int = 20) -> str:
    """The last `lines` lines of a buildpack's output, indented: what a failure shows of it."""
    kept = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in kept) if kept else "  | (no output)"


def _process_layers(desc: BuildpackDescriptor, layers_dir: Path) -> tuple[tuple[Layer, ...], StoreToml | None, dict[str, LayerTypes]]:
    """lifecycle buildpack/build.go processLayers: every `<layer>.toml` must decode (else the build fails);
    a layer with no types is renamed `<layer>.ignore` and not used.

    The builder walks the `<layer>.toml` files in file-name order (eachLayer: os.ReadDir), not in
    ReadLayersDir's identifier order: `pip-source.toml` comes before `pip.toml`. Build env (setupEnv)
    and the layers' order here follow it.

    Also the types of every `*.toml` (processLayers decodes launch.toml, build.toml and store.toml as
    layers with no types), which decide where an SBOM file goes.
    """
    bp_layers = read_layers_dir(layers_dir, desc.id)
    bp_dir = layers_dir / escape_id(desc.id)
    types: dict[str, LayerTypes] = {name: LayerTypes() for name in ("launch", "build", "store")
                                    if (bp_dir / f"{name}.toml").is_file()}
    layers = []
    # One walk in eachLayer's order: the layers before a malformed <layer>.toml are processed (an
    # untyped one renamed <layer>.ignore) when the build fails on it, as the lifecycle leaves them.
    # eachLayer takes every `*.toml` for a layer's, launch.toml and build.toml too: one that is not
    # TOML fails the build at its place in the walk, before the layers after it are renamed.
    # (A directory of that name is a layer already, its toml read as one.)
    entries: list[Layer | MalformedLayer | Path] = [*bp_layers.layers, *bp_layers.malformed]
    entries += [toml for toml in (bp_layers.launch_toml, bp_layers.build_toml)
                if toml.is_file() and not toml.with_suffix("").is_dir()]
    for layer in sorted(entries, key=lambda e: os.fsencode(e.name if isinstance(e, Path) else f"{e.name}.toml")):
        if isinstance(layer, Path):
            read_toml(layer, what=layer.name, error=BuildError)
            continue
        if isinstance(layer, MalformedLayer):
            raise layer.error
        if not layer.toml.is_file():
            continue  # a directory without a <layer>.toml: the builder does not look at it
        if layer.path.is_symlink():
            raise BuildError(f"layer '{layer.name}' is a symbolic link; a layer must be a directory inside the "
                             "buildpack's layers dir", file=layer.path, hint="create a real directory instead")
        types[layer.name] = layer.types
        if not layer.types.any:
            # buildpack.md: a layer with no types is not used; lc renames it to <layer>.ignore.
            if layer.path.exists():
                ignored = layer.path.with_name(f"{layer.name}.ignore")
                shutil.rmtree(ignored, ignore_errors=True)
                layer.path.rename(ignored)
            continue
        layers.append(layer)
    return tuple(layers), bp_layers.store, types
