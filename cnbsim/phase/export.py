"""Export a cnbsim build output as an OCI image layout, as the lifecycle's exporter writes an image.

Layer order (buildpacks/spec platform.md#exporter, lifecycle phase/exporter.go): the run image's layers, one
layer per launch layer (group
order, sorted by name per buildpack), the app layer(s) (one per `[[slices]]` + the rest), the
launcher, the launcher config (`/layers/config`) and the process types (`/cnb/process/<type>`).
Labels, env, entrypoint and history are the lifecycle's (platform.md#labels). Layer tars follow
lifecycle archive/ and layers/ (oci/tar.py), so an unchanged layer keeps its diffID and digest from one
export to the next, and two exports of one build are byte-identical.

Limitation: cnbsim has no Go launcher binary. `/cnb/lifecycle/launcher` is a POSIX sh script
that runs `cnbsim lifecycle launcher`, so the image starts its processes only on a run image
that has `cnbsim` (and its Python) on PATH. Not emulated: the SBOM layer, extension layers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbsim.errors import CnbsimError, ExportError
from cnbsim.fs import AtomicDir, DirKind
from cnbsim.log import Logger, as_logger
from cnbsim.model.api import DEFAULT_PLATFORM_API, ApiVersion
from cnbsim.model.buildpack import escape_id
from cnbsim.model.launch import PROCESS_TYPE_HINT, Process, process_type_problem
from cnbsim.model.layers import Layer, read_layers_dir
from cnbsim.model.metadata import BuildMetadata
from cnbsim.model.order import GroupElement
from cnbsim.model.project import read_project_toml
from cnbsim.oci.layout import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REF_NAME,
    ExportedLayer,
    ImageWriter,
    Layout,
    PreviousImage,
    RunImage,
    link_blob,
    read_run_image,
)
from cnbsim.oci.slices import app_slices, glob_regex
from cnbsim.oci.tar import NORMALIZED_TIME, TarWriter, dir_header, dir_layer, files_layer
from cnbsim.output import BuiltOutput
from cnbsim.platform import RunTarget

# Re-exported: the exporter's public names (tests and callers import them from here).
__all__ = ["APP_DIR", "LAUNCHER_PATH", "LAYERS_DIR", "OCI_CONFIG", "OCI_INDEX", "OCI_LAYER", "OCI_LAYER_GZIP",
           "OCI_MANIFEST", "ExportError", "ExportResult", "ExportedLayer", "export_oci", "glob_regex"]

LAYERS_DIR = "/layers"
APP_DIR = "/workspace"
LAUNCHER_PATH = "/cnb/lifecycle/launcher"
PROCESS_DIR = "/cnb/process"
DEFAULT_TAG = "latest"  # what `docker tag`/`pack build` assume when none is given
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

LIFECYCLE_METADATA_LABEL = "io.buildpacks.lifecycle.metadata"
BUILD_METADATA_LABEL = "io.buildpacks.build.metadata"
PROJECT_METADATA_LABEL = "io.buildpacks.project.metadata"
EXEC_ENV_LABEL = "io.buildpacks.exec-env"


# lifecycle layers/factory.go: history `created_by` of each kind of layer.
BUILDPACK_LAYER_HISTORY = "Layer: '{name}', Created by buildpack: {bp}"
APP_LAYER_HISTORY = "Application Layer"
SLICE_LAYER_HISTORY = "Application Slice: {n}"
LAUNCHER_HISTORY = "Buildpacks Application Launcher"
CONFIG_HISTORY = "Buildpacks Launcher Config"
PROCESS_TYPES_HISTORY = "Buildpacks Process Types"
SBOM_HISTORY = "Software Bill-of-Materials"
SBOM_LAYER_ID = "buildpacksio/lifecycle:launch.sbom"

# Stands in for the lifecycle's Go launcher. /cnb/process/<type> are symlinks to it: as the
# launcher takes the process type from argv[0], the script takes it from the name it runs as.
LAUNCHER_SCRIPT = """\
#!/bin/sh
# cnbsim stand-in for the CNB launcher: runs `cnbsim lifecycle launcher`, which must be on PATH.
if ! command -v cnbsim >/dev/null 2>&1; then
  echo "ERROR: failed to launch: this image was exported by cnbsim, whose launcher needs 'cnbsim' on PATH" >&2
  exit 82
fi
case "$0" in
  /cnb/process/*) exec cnbsim lifecycle launcher --process "${0##*/}" "$@" ;;
  *) exec cnbsim lifecycle launcher "$@" ;;
esac
"""

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")   # a Docker tag: no ':' for oci:DIR:TAG




@dataclass(frozen=True)
class ExportResult:
    oci_dir: Path
    tag: str
    manifest_digest: str
    manifest_size: int
    config_digest: str
    layers: tuple[ExportedLayer, ...]
    log: tuple[str, ...]   # the exporter's info lines: `Adding layer '...'`, `Reusing layer '...'`, ...

    @property
    def reference(self) -> str:
        """The image as skopeo names it."""
        return f"oci:{self.oci_dir}:{self.tag}"

    @property
    def image_id(self) -> str:
        return self.config_digest

    def layer(self, layer_id: str) -> ExportedLayer:
        for layer in self.layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(f"no layer '{layer_id}' (layers: {', '.join(lay.id for lay in self.layers)})")


def export_oci(output_dir: Path | str, oci_dir: Path | str, *, tag: str | None = None,
               run_image: Path | str | None = None, compress: bool = True,
               platform_api: ApiVersion | str = DEFAULT_PLATFORM_API, default_process: str | None = None,
               exec_env: str = "production", log: Logger | Callable[[str], None] | None = None) -> ExportResult:
    """Write the image of a `cnbsim build` output into the OCI layout `oci_dir` under `tag` (default "latest").

    `run_image` is an OCI layout dir (or `DIR:TAG`) whose layers go first. Other tags already in
    `oci_dir` are kept; the layout is replaced only once the new one is complete. Without `run_image` or
    `default_process`, those the build was given (`cnbsim build --run-image/--default-process`) are used.
    """
    say = as_logger(log)
    first_line = len(say.records)
    api = _platform_api(platform_api)
    tag = _check_tag(tag if tag is not None else DEFAULT_TAG)
    source = _BuildOutput.read(Path(output_dir).absolute())
    entrypoint = _entrypoint(source.metadata, default_process or source.platform.process_type)
    if run_image is None and source.platform.run_image:
        run_image = source.platform.run_image
    run = read_run_image(Path(run_image)) if run_image is not None else None
    created = _created(api, say)
    oci_dir = Path(oci_dir).absolute()
    with _Staging(oci_dir, say) as staging:
        previous = PreviousImage.find(staging.old, tag, LIFECYCLE_METADATA_LABEL, say.debug) if staging.old else None
        image = ImageWriter(staging.path, previous, compress, created)
        if run is not None:
            image.add_run_image(run)
        lc_meta = _add_layers(image, source, previous, say)
        config = _image_config(source, run, image, lc_meta, api, exec_env, created, say)
        if entrypoint == LAUNCHER_PATH:
            say.info("no default process type")
        else:
            say.info(f"Setting default process type '{entrypoint.rsplit('/', 1)[1]}'")
        config["config"]["Entrypoint"] = [entrypoint]
        manifest_desc, config_desc = image.write_image(config, tag)
        staging.write_index(manifest_desc, tag, say)
        say.info(f"Saving oci:{oci_dir}:{tag}...")
        say.info(f"*** Images ({manifest_desc['digest'][7:19]}):")
        say.info(f"      oci:{oci_dir}:{tag}")
        say.debug(f"*** Digest: {manifest_desc['digest']}")
        staging.commit()
    return ExportResult(oci_dir=oci_dir, tag=tag, manifest_digest=manifest_desc["digest"],
                        manifest_size=manifest_desc["size"], config_digest=config_desc["digest"],
                        layers=tuple(image.layers), log=say.lines(first_line, ("info", "warn")))


# ---------------------------------------------------------------------------------------------
# Inputs: the build output, the run image, the previous export


@dataclass(frozen=True)
class _BuildOutput(BuiltOutput):
    """A build output with, per buildpack of the group, its launch layers and store.toml metadata."""

    layers: tuple[tuple[GroupElement, tuple[Layer, ...], dict[str, Any] | None], ...] = ()

    @classmethod
    def read(cls, root: Path) -> _BuildOutput:
        try:
            built = BuiltOutput.open(root)
            if not built.workspace.is_dir():
                raise ExportError("not a cnbsim build output (no workspace/)", file=root,
                                  hint="run cnbsim build first, and give its --output directory")
            per_bp = tuple((bp, *_buildpack_layers(built.layers_dir, bp)) for bp in built.metadata.buildpacks)
        except ExportError:
            raise
        except CnbsimError as exc:
            raise ExportError(exc.message, file=exc.file, field=exc.field, hint=exc.hint) from None
        return cls(built.path, built.metadata, built.platform, per_bp)


def _buildpack_layers(layers_dir: Path, bp: GroupElement) -> tuple[tuple[Layer, ...], dict[str, Any] | None]:
    """lifecycle phase/exporter.go addBuildpackLayers: the launch layers of ReadLayersDir; a malformed one fails."""
    bp_layers = read_layers_dir(layers_dir, bp.id, error=ExportError)
    if bp_layers.malformed:
        ids = " ".join(m.identifier for m in bp_layers.malformed)
        raise ExportError(f"failed to parse metadata for layers '[{ids}]'", file=bp_layers.malformed[0].error.file,
                          hint=bp_layers.malformed[0].error.message)
    return bp_layers.launch_layers(), (bp_layers.store.metadata if bp_layers.store is not None else None)












# ---------------------------------------------------------------------------------------------
# Layers of the lifecycle's own (lifecycle layers/launcher.go)






















def _launcher_layer(tw: TarWriter) -> None:
    """lifecycle layers/launcher.go LauncherLayer: root-owned /cnb, /cnb/lifecycle and the launcher (0755)."""
    tw.add(dir_header("/cnb", 0, 0))
    tw.add(dir_header("/cnb/lifecycle", 0, 0))
    script = LAUNCHER_SCRIPT.encode()
    info = tarfile.TarInfo(LAUNCHER_PATH)
    info.mode, info.size = 0o755, len(script)
    tw.add(info, script)


def _process_types_layer(processes: tuple[Process, ...]) -> Callable[[TarWriter], None]:
    """lifecycle layers/launcher.go ProcessTypesLayer: /cnb/process/<type> -> the launcher, root-owned."""
    for p in processes:
        problem = process_type_problem(p.type)
        if problem:
            raise ExportError(problem, field="processes.type", hint=PROCESS_TYPE_HINT)

    def write(tw: TarWriter) -> None:
        tw.add(dir_header("/cnb", 0, 0))
        tw.add(dir_header(PROCESS_DIR, 0, 0))
        for p in processes:
            info = tarfile.TarInfo(f"{PROCESS_DIR}/{p.type}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, LAUNCHER_PATH, 0o755
            tw.add(info)
    return write


# ---------------------------------------------------------------------------------------------
# Writing the image






def _add_layers(image: ImageWriter, source: _BuildOutput, previous: PreviousImage | None,
                say: Logger) -> dict[str, Any]:
    """Buildpack, app, launcher, config and process-types layers (lifecycle phase/exporter.go); returns the
    io.buildpacks.lifecycle.metadata label's content."""
    def prev(key: str) -> set[str]:
        return {previous.sha(key)} if previous else set()

    def announce(layer: ExportedLayer) -> str:
        say.info(f"{'Reusing' if layer.reused else 'Adding'} layer '{layer.id}'")
        return layer.diff_id

    buildpacks = []
    for bp, launch_layers, store in source.layers:
        layers_md = {}
        for layer in launch_layers:
            created_by = BUILDPACK_LAYER_HISTORY.format(name=layer.name, bp=f"{bp.id}@{bp.version}")
            if layer.path.is_dir():
                name = f"{LAYERS_DIR}/{escape_id(bp.id)}/{layer.name}"
                exported = image.add(layer.identifier, created_by, dir_layer(layer.path, name),
                                     {previous.layer_sha(bp.id, layer.name)} if previous else set())
            else:
                exported = _reuse_without_contents(image, layer, created_by)
            layers_md[layer.name] = {"sha": announce(exported), "data": layer.metadata.data, "build": layer.build,
                                     "launch": True, "cache": layer.cache}
        entry: dict[str, Any] = {"key": bp.id, "version": bp.version, "layers": layers_md}
        if store is not None:
            entry["store"] = {"metadata": store}
        buildpacks.append(entry)

    # lc:phase/exporter.go addSBOMLaunchLayer (Platform API >= 0.8): <layers>/sbom/launch as one layer,
    # after the buildpack layers, recorded as "sbom" in the lifecycle metadata label
    sbom_md: dict[str, Any] = {}
    sbom_dir = source.layers_dir / "sbom" / "launch"
    if sbom_dir.is_dir():
        sbom_md = {"sbom": {"sha": announce(image.add(SBOM_LAYER_ID, SBOM_HISTORY,
                                                      dir_layer(sbom_dir, f"{LAYERS_DIR}/sbom/launch"),
                                                      prev("sbom")))}}

    app_shas = previous.app_shas() if previous else set()
    slices = source.metadata.slices
    app = []
    for n, files in enumerate(app_slices(source.workspace, APP_DIR, slices), start=1):
        created_by = SLICE_LAYER_HISTORY.format(n=n) if slices else APP_LAYER_HISTORY
        app.append(image.add(f"slice-{n}", created_by, files_layer(files, APP_DIR), app_shas))
    reused = sum(lay.reused for lay in app)
    if reused:
        say.info(f"Reused {reused}/{len(app)} app layer(s)")
    if reused != len(app):
        say.info(f"Added {len(app) - reused}/{len(app)} app layer(s)")

    launcher = announce(image.add("buildpacksio/lifecycle:launcher", LAUNCHER_HISTORY, _launcher_layer,
                                  prev("launcher")))
    config = announce(image.add("buildpacksio/lifecycle:config", CONFIG_HISTORY,
                                dir_layer(source.layers_dir / "config", f"{LAYERS_DIR}/config"), prev("config")))
    types = ""
    if source.metadata.processes:
        types = announce(image.add("buildpacksio/lifecycle:process-types", PROCESS_TYPES_HISTORY,
                                   _process_types_layer(source.metadata.processes), prev("process-types")))
    # lifecycle platform/files LayersMetadata field order (runImage and stack follow).
    return {"app": [{"sha": lay.diff_id} for lay in app], **sbom_md, "buildpacks": buildpacks,
            "config": {"sha": config},
            "launcher": {"sha": launcher}, "process-types": {"sha": types}}


def _reuse_without_contents(image: ImageWriter, layer: Layer, created_by: str) -> ExportedLayer:
    """lifecycle phase/exporter.go: a launch layer with a toml but no directory keeps the previous image's layer,
    or fails."""
    if layer.cache:
        raise ExportError(f"layer '{layer.identifier}' is cache=true but has no contents", file=layer.toml,
                          hint="create the layer directory, or set cache = false")
    previous = image.previous
    sha = previous.layer_sha(layer.buildpack_id, layer.name) if previous else ""
    if previous is None or not sha or sha not in previous.blobs:
        raise ExportError(f"cannot reuse '{layer.identifier}', previous image has no metadata for layer "
                          f"'{layer.identifier}'",
                          file=layer.toml, hint="the buildpack must create the layer directory (or export to the "
                                                "OCI layout and tag that holds the previous image)")
    return image.reuse(layer.identifier, created_by, sha)


def _image_config(source: _BuildOutput, run: RunImage | None, image: ImageWriter, lc_meta: dict[str, Any],
                  api: ApiVersion, exec_env: str, created: str, say: Logger) -> dict[str, Any]:
    """The image config: the run image's, with the lifecycle's env, labels and workdir (platform.md#exporter, #labels)."""
    base = dict(run.config) if run else {}
    container = dict(base.get("config") or {})
    top_layer = run.diff_ids[-1] if run and run.diff_ids else ""
    lc_meta = {**lc_meta, "runImage": {"topLayer": top_layer, "reference": run.manifest_digest if run else ""},
               "stack": {"runImage": {}}}
    labels = dict(container.get("Labels") or {})
    new_labels = {LIFECYCLE_METADATA_LABEL: _json(lc_meta),
                  BUILD_METADATA_LABEL: _json(_build_metadata(source.metadata, api)),
                  PROJECT_METADATA_LABEL: _json(_project_metadata(source.workspace))}
    for label in source.metadata.labels:   # set after the three above: a buildpack may overwrite them
        new_labels[label.key] = label.value
    if api >= ApiVersion(0, 15) and exec_env:
        new_labels[EXEC_ENV_LABEL] = exec_env
    for key, value in new_labels.items():
        say.info(f"Adding label '{key}'")
        labels[key] = value
    container["Env"] = _image_env(container.get("Env") or [], api)
    container.pop("Cmd", None)     # lc: "Command intentionally empty"
    container["WorkingDir"] = APP_DIR
    container["Labels"] = labels
    host = RunTarget.host()
    config = {**base, "created": created,
              "architecture": base.get("architecture") or host.arch, "os": base.get("os") or "linux",
              "config": container,
              "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in image.layers]},
              "history": image.history}
    return config


def _build_metadata(metadata: BuildMetadata, api: ApiVersion) -> dict[str, Any]:
    """io.buildpacks.build.metadata (lifecycle platform/files BuildMetadata): no api, labels or slices [GAP]."""
    from cnbsim import __version__
    out: dict[str, Any] = {
        "buildpacks": [b.to_toml(api=False) for b in metadata.buildpacks],
        "launcher": {"version": __version__, "source": {"git": {"repository": "cnbsim", "commit": ""}}},
        "processes": [_process_json(p, api) for p in metadata.processes],
    }
    if metadata.default_process:
        out["buildpack-default-process-type"] = metadata.default_process
    return out


def _process_json(p: Process, api: ApiVersion) -> dict[str, Any]:
    """lifecycle launch Process JSON: command is an array from Platform 0.10, a string before."""
    toml = p.to_metadata_toml(api)
    out: dict[str, Any] = {"type": p.type, "command": toml["command"], "args": toml.get("args"),
                           "direct": p.direct, "buildpackID": p.buildpack_id}
    if p.working_dir:
        out["working-dir"] = p.working_dir
    if p.exec_env:
        out["exec-env"] = list(p.exec_env)
    return out


def _project_metadata(workspace: Path) -> dict[str, Any]:
    """What pack puts in io.buildpacks.project.metadata from project.toml; `{}` without version and source-url."""
    project = read_project_toml(workspace / "project.toml", error=ExportError)
    if project is None or (not project.version and not project.source_url):
        return {}
    return {"source": {"type": "project", "version": {"declared": project.version},
                       "metadata": {"url": project.source_url}}}


def _image_env(env: list[str], api: ApiVersion) -> list[str]:
    """lifecycle phase/exporter.go setEnv: CNB_* dirs and API, then /cnb/process:/cnb/lifecycle: before PATH."""
    out = list(env)

    def get(name: str) -> str | None:
        return next((e.split("=", 1)[1] for e in out if e.startswith(name + "=")), None)

    def put(name: str, value: str) -> None:
        for i, e in enumerate(out):
            if e.startswith(name + "="):
                out[i] = f"{name}={value}"
                return
        out.append(f"{name}={value}")

    path = get("PATH") or DEFAULT_PATH   # [IMPL] would leave "…:/cnb/lifecycle:" (cwd on PATH) without one
    put("CNB_LAYERS_DIR", LAYERS_DIR)
    put("CNB_APP_DIR", APP_DIR)
    put("CNB_PLATFORM_API", str(api))
    put("CNB_DEPRECATION_MODE", "quiet")
    put("PATH", f"{PROCESS_DIR}:/cnb/lifecycle:{path}")
    return out


def _entrypoint(metadata: BuildMetadata, default_process: str | None) -> str:
    """buildpacks/spec platform.md#exporter: the platform's -process-type, else the buildpacks' default, else the launcher."""
    if default_process and metadata.process(default_process) is None:
        raise ExportError(f"tried to set {default_process} to default but it doesn't exist",
                          field="default_process",
                          hint=f"process types: {', '.join(p.type for p in metadata.processes) or 'none'}")
    chosen = default_process or metadata.default_process
    return f"{PROCESS_DIR}/{chosen}" if chosen else LAUNCHER_PATH


def _json(value: Any) -> str:
    """Compact JSON as Go's json.Marshal writes labels; TOML dates become RFC 3339 strings."""
    def default(o: Any) -> Any:
        if isinstance(o, (dt.datetime, dt.date, dt.time)):
            return o.isoformat()
        raise TypeError(f"{type(o).__name__} is not JSON serializable")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=default)


def _created(api: ApiVersion, say: Logger) -> str:
    """buildpacks/spec platform.md#build-reproducibility: SOURCE_DATE_EPOCH (Platform >= 0.9), else 1980-01-01T00:00:01Z."""
    when = NORMALIZED_TIME
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch and api >= ApiVersion(0, 9):
        try:
            when = dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc)
        except (ValueError, OverflowError, OSError):
            say.warn("Ignoring invalid SOURCE_DATE_EPOCH")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _platform_api(value: ApiVersion | str) -> ApiVersion:
    if isinstance(value, ApiVersion):
        return value
    try:
        return ApiVersion.parse(value)
    except ValueError as exc:
        raise ExportError(str(exc), field="platform_api", hint="e.g. 0.15") from None


def _check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise ExportError(f"'{tag}' is not a valid image tag", field="tag",
                          hint="use letters, digits and . _ - (at most 128 characters), e.g. v1.0")
    return tag


# ---------------------------------------------------------------------------------------------
# The layout directory: built aside, swapped in


@contextlib.contextmanager
def _export_errors() -> Iterator[None]:
    """cnbsim errors raised while placing the layout, as ExportErrors."""
    try:
        yield
    except ExportError:
        raise
    except CnbsimError as exc:
        raise ExportError(exc.message, file=exc.file, field=exc.field, hint=exc.hint) from None


class _Staging(AtomicDir):
    """The new layout, built beside `target` and swapped in: a failure leaves `target` as it was."""

    def __init__(self, target: Path, say: Logger) -> None:
        super().__init__(target, DirKind.OCI_LAYOUT, "OCI layout", notice=say.warn)
        self.old: Layout | None = None   # the layout being replaced

    def __enter__(self) -> _Staging:
        with _export_errors():
            super().__enter__()
        try:
            if self.current is not None:
                self.old = Layout(self.current, "the OCI layout to update")
        except BaseException:
            self.__exit__()            # entering failed: no `with` body, so no __exit__ either
            raise
        return self

    def commit(self) -> None:
        with _export_errors():
            super().commit()

    def write_index(self, entry: dict[str, Any], tag: str, say: Logger) -> None:
        """index.json: the old entries (their blobs kept) but this tag's, which `entry` replaces in place."""
        entries, placed = [], False
        old = self.old
        for e in old.entries() if old else []:
            if old is not None and (e.get("annotations") or {}).get(REF_NAME) != tag:
                self._copy_blobs(old, e, say)
                entries.append(e)
            elif not placed:
                entries.append(entry)
                placed = True
        if not placed:
            entries.append(entry)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        (self.path / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n", encoding="utf-8")

    def _copy_blobs(self, old: Layout, desc: dict[str, Any], say: Logger) -> None:
        """Everything `desc` reaches: an index's manifests, a manifest's config and layers."""
        try:
            link_blob(old.blob(desc.get("digest")), self.path / "blobs" / "sha256")
            media_type = desc.get("mediaType")
            if media_type in INDEX_TYPES:
                for child in old.read_json(desc, "image index").get("manifests") or []:
                    self._copy_blobs(old, child, say)
            elif media_type in MANIFEST_TYPES:
                manifest = old.read_json(desc, "manifest")
                for child in [manifest.get("config"), *(manifest.get("layers") or [])]:
                    self._copy_blobs(old, child, say)
        except (CnbsimError, OSError, AttributeError) as exc:
            say.warn(f"an image already in the OCI layout is incomplete: {exc}")
