"""Export a cnbsim build output as an OCI image layout, as the lifecycle's exporter writes an image.

Layer order (cnb-spec.md 5.1.5): the run image's layers, one layer per launch layer (group
order, sorted by name per buildpack), the app layer(s) (one per `[[slices]]` + the rest), the
launcher, the launcher config (`/layers/config`) and the process types (`/cnb/process/<type>`).
Labels, env, entrypoint and history are the lifecycle's (4.1, 5.4). Layer tars follow
lc:archive and lc:layers (5.5), so an unchanged layer keeps its diffID and digest from one
export to the next, and two exports of one build are byte-identical.

Limitation: cnbsim has no Go launcher binary. `/cnb/lifecycle/launcher` is a POSIX sh script
that runs `cnbsim lifecycle launcher`, so the image starts its processes only on a run image
that has `cnbsim` (and its Python) on PATH. Not emulated: the SBOM layer, extension layers.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from cnbsim.errors import CnbsimError
from cnbsim.log import Logger
from cnbsim.model._fields import Fields
from cnbsim.model.api import DEFAULT_PLATFORM_API, ApiVersion
from cnbsim.model.buildpack import escape_id
from cnbsim.model.launch import FORBIDDEN_TYPE_CHARS, Process, Slice, read_store_toml
from cnbsim.model.layer import LayerTypes, parse_layer_toml
from cnbsim.model.metadata import BuildMetadata
from cnbsim.output import BuiltOutput
from cnbsim.model.order import GroupElement
from cnbsim.platform import RunTarget
from cnbsim.tomlio import read_toml

LAYERS_DIR = "/layers"
APP_DIR = "/workspace"
LAUNCHER_PATH = "/cnb/lifecycle/launcher"
PROCESS_DIR = "/cnb/process"
CNB_USER_ID = 1000     # owner of layer and app entries, as CNB_USER_ID/CNB_GROUP_ID of a builder
CNB_GROUP_ID = 1000
DEFAULT_TAG = "latest"  # what `docker tag`/`pack build` assume when none is given
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NORMALIZED_TIME = dt.datetime(1980, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc)  # lc:archive/writer.go

LIFECYCLE_METADATA_LABEL = "io.buildpacks.lifecycle.metadata"
BUILD_METADATA_LABEL = "io.buildpacks.build.metadata"
PROJECT_METADATA_LABEL = "io.buildpacks.project.metadata"
EXEC_ENV_LABEL = "io.buildpacks.exec-env"
REF_NAME = "org.opencontainers.image.ref.name"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

# lc:layers/factory.go: history `created_by` of each kind of layer.
BUILDPACK_LAYER_HISTORY = "Layer: '{name}', Created by buildpack: {bp}"
APP_LAYER_HISTORY = "Application Layer"
SLICE_LAYER_HISTORY = "Application Slice: {n}"
LAUNCHER_HISTORY = "Buildpacks Application Launcher"
CONFIG_HISTORY = "Buildpacks Launcher Config"
PROCESS_TYPES_HISTORY = "Buildpacks Process Types"

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

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")   # a Docker tag: no ':' for oci:DIR:TAG
_CHUNK = 1 << 20


class ExportError(CnbsimError):
    """platform.md "Exit Codes": 62 = generic export error."""

    exit_code = 62


@dataclass(frozen=True)
class ExportedLayer:
    """One layer of the exported image, in image order.

    `id` is the lifecycle's: `<bp id>:<layer>`, `slice-<n>` (app), `buildpacksio/lifecycle:launcher`,
    `buildpacksio/lifecycle:config`, `buildpacksio/lifecycle:process-types`; run image layers
    are `run-image:<n>`. `status` is "added", "reused" (same diffID and blob as the previous
    export under this tag) or "run-image".
    """

    id: str
    created_by: str
    diff_id: str
    digest: str
    size: int
    media_type: str
    status: str

    @property
    def reused(self) -> bool:
        return self.status == "reused"


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
    `oci_dir` are kept; the layout is replaced only once the new one is complete.
    """
    say = _Say(log)
    api = _platform_api(platform_api)
    tag = _check_tag(tag if tag is not None else DEFAULT_TAG)
    source = _BuildOutput.read(Path(output_dir).absolute())
    entrypoint = _entrypoint(source.metadata, default_process)
    run = _run_image(Path(run_image)) if run_image is not None else None
    created = _created(api, say)
    oci_dir = Path(oci_dir).absolute()
    with _Staging(oci_dir) as staging:
        previous = _PreviousImage.find(staging.old, tag, say) if staging.old else None
        image = _ImageWriter(staging.path, previous, compress, created)
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
                        layers=tuple(image.layers), log=tuple(say.lines))


# ---------------------------------------------------------------------------------------------
# Inputs: the build output, the run image, the previous export


@dataclass(frozen=True)
class _LaunchLayer:
    buildpack: GroupElement
    name: str
    path: Path
    types: LayerTypes
    data: Any      # the layer's [metadata] table, None when the toml has none

    @property
    def id(self) -> str:
        return f"{self.buildpack.id}:{self.name}"


@dataclass(frozen=True)
class _BuildOutput(BuiltOutput):
    """A build output with, per buildpack of the group, its launch layers and store.toml metadata."""

    layers: tuple[tuple[GroupElement, tuple[_LaunchLayer, ...], dict[str, Any] | None], ...] = ()

    @classmethod
    def read(cls, root: Path) -> "_BuildOutput":
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
        return cls(built.path, built.metadata, per_bp)


def _buildpack_layers(layers_dir: Path, bp: GroupElement) -> tuple[tuple[_LaunchLayer, ...], dict[str, Any] | None]:
    """lc:buildpack/layers.go ReadLayersDir: layer dirs and tomls, sorted by `<bp>:<layer>`; launch ones kept."""
    bp_dir = layers_dir / escape_id(bp.id)
    names: set[str] = set()
    if bp_dir.is_dir():
        for entry in os.scandir(bp_dir):
            if entry.is_dir(follow_symlinks=False):
                names.add(entry.name)
            elif entry.name.endswith(".toml"):
                names.add(entry.name[: -len(".toml")])
    names -= {"launch", "build", "store"}
    api = ApiVersion.parse(bp.api) if bp.api else ApiVersion(0, 10)
    layers, malformed = [], []
    for name in sorted(names, key=os.fsencode):
        toml = bp_dir / f"{name}.toml"
        if not toml.is_file():
            continue  # a directory without a toml is not a layer
        try:
            raw = read_toml(toml, what="layer metadata file", error=ExportError)
            meta = parse_layer_toml(raw, toml, api)
        except CnbsimError as exc:
            malformed.append((name, toml, exc))
            continue
        if meta.types.launch:
            layers.append(_LaunchLayer(bp, name, bp_dir / name, meta.types, raw.get("metadata")))
    if malformed:
        ids = " ".join(f"{bp.id}:{name}" for name, _, _ in malformed)
        raise ExportError(f"failed to parse metadata for layers '[{ids}]'", file=malformed[0][1],
                          hint=malformed[0][2].message)
    store = read_store_toml(bp_dir / "store.toml")
    return tuple(layers), (store.metadata if store is not None else None)


class _Layout:
    """The read side of an OCI image layout directory."""

    def __init__(self, root: Path, what: str) -> None:
        self.root = root
        self.what = what
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise ExportError(f"{what} is not an OCI image layout (it needs oci-layout and index.json)", file=root,
                              hint="give a directory written by `cnbsim export` or `skopeo copy ... oci:DIR:TAG`")
        self.index = self._json(root / "index.json", "index.json")

    def blob(self, digest: Any) -> Path:
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ExportError(f"{self.what} refers to an unsupported digest '{digest}'", file=self.root,
                              hint="only sha256 digests are supported")
        return self.root / "blobs" / "sha256" / digest[7:]

    def read_json(self, desc: Any, what: str) -> dict[str, Any]:
        if not isinstance(desc, dict):
            raise ExportError(f"{self.what}: {what} descriptor is not an object", file=self.root)
        path = self.blob(desc.get("digest"))
        try:
            data = path.read_bytes()
        except OSError:
            raise ExportError(f"{self.what}: {what} blob {desc.get('digest')} is missing", file=path) from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
            raise ExportError(f"{self.what}: {what} blob does not match its digest", file=path)
        return self._parse(data, path, what)

    def _json(self, path: Path, what: str) -> dict[str, Any]:
        try:
            return self._parse(path.read_bytes(), path, what)
        except OSError as exc:
            raise ExportError(f"cannot read {what}: {exc.strerror}", file=path) from None

    def _parse(self, data: bytes, path: Path, what: str) -> dict[str, Any]:
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExportError(f"{self.what}: {what} is not valid JSON: {exc}", file=path) from None
        if not isinstance(value, dict):
            raise ExportError(f"{self.what}: {what} is not a JSON object", file=path)
        return value

    def entries(self) -> list[dict[str, Any]]:
        entries = self.index.get("manifests")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ExportError(f"{self.what}: index.json has no list of manifests", file=self.root / "index.json")
        return entries

    def tagged(self, tag: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if (e.get("annotations") or {}).get(REF_NAME) == tag]

    def image(self, desc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(manifest descriptor, manifest, config) of the image `desc` names; an index picks the host platform."""
        if desc.get("mediaType") in INDEX_TYPES:
            nested = self.read_json(desc, "image index").get("manifests") or []
            arch = RunTarget.host().arch
            matching = [d for d in nested if isinstance(d, dict)
                        and (d.get("platform") or {}).get("os") == "linux"
                        and (d.get("platform") or {}).get("architecture") == arch]
            if not matching:
                raise ExportError(f"{self.what} has no image for linux/{arch}", file=self.root,
                                  hint="give an image for this machine's platform")
            desc = matching[0]
        if desc.get("mediaType") not in MANIFEST_TYPES:
            raise ExportError(f"{self.what}: unsupported manifest media type '{desc.get('mediaType')}'",
                              file=self.root, hint=f"expected {OCI_MANIFEST}")
        manifest = self.read_json(desc, "manifest")
        config = self.read_json(manifest.get("config"), "config")
        return desc, manifest, config


@dataclass(frozen=True)
class _RunImage:
    layout: _Layout
    manifest_digest: str
    layers: tuple[dict[str, Any], ...]   # manifest layer descriptors
    diff_ids: tuple[str, ...]
    config: dict[str, Any]


def _run_image(arg: Path) -> _RunImage:
    """`DIR` (an OCI layout holding one image) or `DIR:TAG`, like skopeo's `oci:DIR:TAG`."""
    root, tag = arg, None
    if not arg.exists() and ":" in arg.name:
        name, _, tag = arg.name.rpartition(":")
        root = arg.with_name(name)
    layout = _Layout(root.absolute(), "the run image")
    entries = layout.tagged(tag) if tag else layout.entries()
    if len(entries) != 1:
        tags = sorted({(e.get("annotations") or {}).get(REF_NAME, "") for e in layout.entries()} - {""})
        found = f"no image tagged '{tag}'" if tag else f"{len(entries)} images"
        raise ExportError(f"the run image layout has {found}", file=root,
                          hint=f"name one as DIR:TAG (tags: {', '.join(tags) or 'none'})")
    desc, manifest, config = layout.image(entries[0])
    layers = manifest.get("layers") or []
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(layers) != len(diff_ids) or not all(isinstance(d, dict) for d in layers):
        raise ExportError(f"the run image has {len(layers)} layers but {len(diff_ids)} diff_ids in its config",
                          file=root, hint="the layout is damaged; copy the run image again")
    for d in layers:
        if not layout.blob(d.get("digest")).is_file():
            raise ExportError(f"the run image's layer blob {d.get('digest')} is missing", file=root)
    return _RunImage(layout, desc["digest"], tuple(layers), tuple(diff_ids), config)


@dataclass(frozen=True)
class _PreviousImage:
    """The image this tag named in `oci_dir` before: the lifecycle's "previous image" for layer reuse."""

    layout: _Layout
    metadata: dict[str, Any]                 # its io.buildpacks.lifecycle.metadata label
    blobs: dict[str, dict[str, Any]]         # diffID -> layer descriptor

    @classmethod
    def find(cls, layout: _Layout, tag: str, say: "_Say") -> "_PreviousImage | None":
        tagged = layout.tagged(tag)
        if not tagged:
            return None
        try:
            _, manifest, config = layout.image(tagged[0])
            label = ((config.get("config") or {}).get("Labels") or {}).get(LIFECYCLE_METADATA_LABEL, "{}")
            metadata = json.loads(label)
            diff_ids = config["rootfs"]["diff_ids"]
            blobs = {diff_id: desc for diff_id, desc in zip(diff_ids, manifest["layers"])
                     if layout.blob(desc.get("digest")).is_file()}
        except (CnbsimError, ValueError, KeyError, TypeError, AttributeError) as exc:
            say.debug(f"not reusing layers of the previous image '{tag}': {exc}")
            return None
        return cls(layout, metadata if isinstance(metadata, dict) else {}, blobs)

    def sha(self, key: str) -> str:
        """The diffID the label records for "launcher", "config" or "process-types"."""
        return _sha_of(self.metadata.get(key))

    def layer_sha(self, bp_id: str, name: str) -> str:
        bp = next((b for b in self.metadata.get("buildpacks") or [] if isinstance(b, dict) and b.get("key") == bp_id),
                  {})
        return _sha_of((bp.get("layers") or {}).get(name))

    def app_shas(self) -> set[str]:
        return {a.get("sha", "") for a in self.metadata.get("app") or [] if isinstance(a, dict)}


def _sha_of(value: Any) -> str:
    return str(value.get("sha", "")) if isinstance(value, dict) else ""


# ---------------------------------------------------------------------------------------------
# Layer tars (cnb-spec.md 5.5, lc:archive/writer.go, lc:layers/*.go)


class _TarWriter:
    """One uncompressed layer tar, hashed as it is written (the diffID); headers normalized as lc does.

    Entry names are absolute (`/layers/<bp>/<layer>/...`), as lc:archive writes them: OCI tools
    take them relative to the rootfs (umoci unpack and skopeo accept them; the tests check both).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "wb")
        self._sha = hashlib.sha256()

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)

    def add(self, info: tarfile.TarInfo, content: Path | bytes | None = None) -> None:
        info.mtime = int(NORMALIZED_TIME.timestamp())
        info.uname = info.gname = ""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if not info.isreg():
            return
        written = 0
        if isinstance(content, bytes):
            self._write(content)
            written = len(content)
        elif content is not None:
            try:
                with open(content, "rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        self._write(chunk)
                        written += len(chunk)
            except OSError as exc:
                raise ExportError(f"cannot read a file of the image: {exc.strerror}", file=content) from None
        if written != info.size:
            raise ExportError("file changed while it was exported", file=str(content), hint="export again")
        self._write(b"\0" * (-written % tarfile.BLOCKSIZE))

    def close(self) -> str:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))   # end of archive, without tarfile's record padding
        self._fh.close()
        return "sha256:" + self._sha.hexdigest()

    def abort(self) -> None:
        self._fh.close()


def _dir_header(name: str, uid: int, gid: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
    return info


def _host_header(host: Path, name: str) -> tarfile.TarInfo | None:
    """lc:archive AddFileToArchive: the file's type and mode bits, owned by the CNB user; sockets skipped."""
    try:
        st = os.lstat(host)
        target = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
    except OSError as exc:
        raise ExportError(f"cannot read a file of the image: {exc.strerror}", file=host) from None
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), CNB_USER_ID, CNB_GROUP_ID
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, target
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None
    return info


def _walk(host: Path, name: str) -> Iterator[tuple[Path, str]]:
    """filepath.Walk order: a directory, then its entries by name (bytes), depth first; symlinks not followed."""
    yield host, name
    if host.is_dir() and not host.is_symlink():
        try:
            children = sorted(os.listdir(host), key=os.fsencode)
        except OSError as exc:
            raise ExportError(f"cannot list a directory of the image: {exc.strerror}", file=host) from None
        for child in children:
            yield from _walk(host / child, f"{name}/{child}")


def _parent_dirs(name: str) -> list[str]:
    """`/layers/bp/layer` -> [`/layers`, `/layers/bp`] (lc:layers/factory.go parents)."""
    parts = name.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _write_files(tw: _TarWriter, files: list[tuple[Path, str]], root: str) -> None:
    """Parents of `root` (0755, CNB user: what a builder's /layers and /workspace are), then the files."""
    if not files:
        return   # lc: an empty slice is an empty tar, without parents
    for parent in _parent_dirs(root):
        tw.add(_dir_header(parent, CNB_USER_ID, CNB_GROUP_ID))
    for host, name in files:
        info = _host_header(host, name)
        if info is not None:
            tw.add(info, host if info.isreg() else None)


def _files_layer(files: list[tuple[Path, str]], root: str) -> Callable[[_TarWriter], None]:
    return lambda tw: _write_files(tw, files, root)


def _dir_layer(host: Path, name: str) -> Callable[[_TarWriter], None]:
    """lc:layers/dir.go DirLayer: parents, then the directory in walk order."""
    return lambda tw: _write_files(tw, list(_walk(host, name)), name)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match: `*`/`?` never match '/', `[^...]` classes with ranges, `\\` escapes."""
    def bad() -> ExportError:
        return ExportError(f"bad pattern for glob path '{pattern}'", field="slices",
                           hint="use filepath.Match syntax: *, ?, [a-z], [^a-z], \\ to escape")

    def class_char(i: int) -> tuple[str, int]:
        if i >= len(pattern) or pattern[i] in "-]":
            raise bad()
        if pattern[i] == "\\":
            i += 1
            if i >= len(pattern):
                raise bad()
        return pattern[i], i + 1

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise bad()
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = i < len(pattern) and pattern[i] == "^"
            i += negate
            ranges: list[tuple[str, str]] = []
            while not (i < len(pattern) and pattern[i] == "]" and ranges):
                lo, i = class_char(i)
                hi = lo
                if i < len(pattern) and pattern[i] == "-":
                    hi, i = class_char(i + 1)
                ranges.append((lo, hi))
            body = "".join(f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi)
            out.append(("[^" if negate else "[") + body + "]" if body else ("(?s:.)" if negate else "(?!)"))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _app_slices(app: Path, slices: tuple[Slice, ...]) -> list[list[tuple[Path, str]]]:
    """lc:layers/slices.go: the files of each slice (matches, their contents, missing parents), then the rest."""
    walked = list(_walk(app, APP_DIR))
    host_of = {name: host for host, name in walked}
    children: dict[str, list[str]] = {}
    for _, name in walked[1:]:
        children.setdefault(posixpath.dirname(name), []).append(name)
    sliced = dict.fromkeys(host_of, False)

    def take(name: str, matched: dict[str, None]) -> None:
        if sliced.get(name, True):
            return   # outside the app dir, or in an earlier slice
        for child in children.get(name, []):
            take(child, matched)
        matched[name] = None
        sliced[name] = True

    layers: list[list[str]] = []
    for s in slices:
        matched: dict[str, None] = {}
        for pattern in s.paths:
            regex = _glob_regex(posixpath.normpath(pattern))
            for _, name in walked[1:]:
                if regex.fullmatch(name[len(APP_DIR) + 1:]):
                    take(name, matched)
        parents: dict[str, None] = {}
        for name in matched:
            for parent in [APP_DIR] + [p for p in _parent_dirs(name) if p.startswith(APP_DIR + "/")]:
                if parent not in matched:
                    parents[parent] = None
        files = [*matched, *parents]
        for parent in sorted(parents, key=lambda p: p.count("/"), reverse=True):
            sliced[parent] = all(sliced[c] for c in children.get(parent, []))
        layers.append(files)
    rest = [name for name, done in sliced.items() if not done]
    layers.append(rest)
    return [[(host_of[n], n) for n in sorted(files, key=os.fsencode)] for files in layers]


def _launcher_layer(tw: _TarWriter) -> None:
    """lc:layers/launcher.go LauncherLayer: root-owned /cnb, /cnb/lifecycle and the launcher (0755)."""
    tw.add(_dir_header("/cnb", 0, 0))
    tw.add(_dir_header("/cnb/lifecycle", 0, 0))
    script = LAUNCHER_SCRIPT.encode()
    info = tarfile.TarInfo(LAUNCHER_PATH)
    info.mode, info.size = 0o755, len(script)
    tw.add(info, script)


def _process_types_layer(processes: tuple[Process, ...]) -> Callable[[_TarWriter], None]:
    """lc:layers/launcher.go ProcessTypesLayer: /cnb/process/<type> -> the launcher, root-owned."""
    for p in processes:
        if set(p.type) & FORBIDDEN_TYPE_CHARS:
            raise ExportError(f"invalid process type '{p.type}': type may not contain characters '/><:|&\\'",
                              field="processes.type", hint="use letters, digits, '.', '_' and '-'")

    def write(tw: _TarWriter) -> None:
        tw.add(_dir_header("/cnb", 0, 0))
        tw.add(_dir_header(PROCESS_DIR, 0, 0))
        for p in processes:
            info = tarfile.TarInfo(f"{PROCESS_DIR}/{p.type}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, LAUNCHER_PATH, 0o755
            tw.add(info)
    return write


# ---------------------------------------------------------------------------------------------
# Writing the image


class _Say:
    """Log lines to a Logger or a callable, and keep the info lines for the ExportResult."""

    def __init__(self, log: Logger | Callable[[str], None] | None) -> None:
        self.log = log
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)
        if isinstance(self.log, Logger):
            self.log.info(line)
        elif self.log is not None:
            self.log(line)

    def warn(self, line: str) -> None:
        self.lines.append(f"Warning: {line}")
        if isinstance(self.log, Logger):
            self.log.warn(line)
        elif self.log is not None:
            self.log(f"Warning: {line}")

    def debug(self, line: str) -> None:
        if isinstance(self.log, Logger):
            self.log.debug(line)


def _link_blob(src: Path, blob_dir: Path) -> None:
    """A blob of another layout into this one, once: a hard link when possible, else a copy."""
    dest = blob_dir / src.name
    if dest.exists():
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


class _ImageWriter:
    """Blobs (each written once, by digest), layers in order, their diffIDs and history."""

    def __init__(self, root: Path, previous: _PreviousImage | None, compress: bool, created: str) -> None:
        self.blob_dir = root / "blobs" / "sha256"
        self.blob_dir.mkdir(parents=True)
        self.tmp = root / "tmp"   # layer tars before they become blobs
        self.tmp.mkdir()
        self.previous = previous
        self.media_type = OCI_LAYER_GZIP if compress else OCI_LAYER
        self.created = created
        self.layers: list[ExportedLayer] = []
        self.history: list[dict[str, Any]] = []
        self.produced: dict[str, tuple[str, int]] = {}   # diffID -> (digest, size) of a blob of this export

    def _store_file(self, path: Path) -> tuple[str, int]:
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
        digest = "sha256:" + sha.hexdigest()
        size = path.stat().st_size
        dest = self.blob_dir / digest[7:]
        if dest.exists():
            path.unlink()
        else:
            os.replace(path, dest)
        return digest, size

    def store_json(self, value: dict[str, Any]) -> tuple[str, int]:
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        dest = self.blob_dir / digest[7:]
        if not dest.exists():
            dest.write_bytes(data)
        return digest, len(data)

    def _append(self, layer: ExportedLayer) -> ExportedLayer:
        self.layers.append(layer)
        self.history.append({"created": self.created, "created_by": layer.created_by})
        return layer

    def add_run_image(self, run: _RunImage) -> None:
        for n, (desc, diff_id) in enumerate(zip(run.layers, run.diff_ids), start=1):
            _link_blob(run.layout.blob(desc["digest"]), self.blob_dir)
            media_type = OCI_LAYER_GZIP if desc.get("mediaType") == DOCKER_LAYER_GZIP else desc.get("mediaType")
            self.layers.append(ExportedLayer(f"run-image:{n}", "", diff_id, desc["digest"], desc.get("size", 0),
                                             media_type or OCI_LAYER_GZIP, "run-image"))
        history = run.config.get("history")
        self.history.extend(h for h in history or [] if isinstance(h, dict))

    def add(self, layer_id: str, created_by: str, write: Callable[[_TarWriter], None],
            previous_shas: set[str]) -> ExportedLayer:
        """Write the layer's tar; reuse the previous export's blob when its diffID is unchanged."""
        tw = _TarWriter(self.tmp / f"{escape_id(layer_id)}.tar")
        try:
            write(tw)
        except BaseException:
            tw.abort()
            raise
        diff_id = tw.close()
        old = self.previous.blobs.get(diff_id) if self.previous else None
        if diff_id in previous_shas and old is not None and old.get("mediaType") == self.media_type:
            tw.path.unlink()
            return self.reuse(layer_id, created_by, diff_id)
        desc = self.produced.get(diff_id)
        if desc is None:
            desc = self._compress(tw.path) if self.media_type == OCI_LAYER_GZIP else self._store_file(tw.path)
            self.produced[diff_id] = desc
        else:
            tw.path.unlink()
        return self._append(ExportedLayer(layer_id, created_by, diff_id, desc[0], desc[1], self.media_type, "added"))

    def reuse(self, layer_id: str, created_by: str, diff_id: str) -> ExportedLayer:
        """Take the layer with this diffID from the previous export."""
        assert self.previous is not None
        old = self.previous.blobs[diff_id]
        _link_blob(self.previous.layout.blob(old["digest"]), self.blob_dir)
        return self._append(ExportedLayer(layer_id, created_by, diff_id, old["digest"], old.get("size", 0),
                                          old.get("mediaType", self.media_type), "reused"))

    def _compress(self, tar: Path) -> tuple[str, int]:
        """gzip with no name and mtime 0, so that equal tars give equal blobs."""
        out = tar.with_suffix(".tar.gz")
        with open(tar, "rb") as src, open(out, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            shutil.copyfileobj(src, gz, _CHUNK)
        tar.unlink()
        return self._store_file(out)

    def write_image(self, config: dict[str, Any], tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Write config and manifest; return the manifest's descriptor (the index entry) and the config's."""
        config_digest, config_size = self.store_json(config)
        config_desc = {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size}
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc,
                    "layers": [{"mediaType": lay.media_type, "digest": lay.digest, "size": lay.size}
                               for lay in self.layers]}
        digest, size = self.store_json(manifest)
        shutil.rmtree(self.tmp)
        platform = {"architecture": config["architecture"], "os": config["os"]}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        return ({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform,
                 "annotations": {REF_NAME: tag}}, config_desc)


def _add_layers(image: _ImageWriter, source: _BuildOutput, previous: _PreviousImage | None,
                say: _Say) -> dict[str, Any]:
    """Buildpack, app, launcher, config and process-types layers (lc:phase/exporter.go); returns the
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
                exported = image.add(layer.id, created_by, _dir_layer(layer.path, name),
                                     {previous.layer_sha(bp.id, layer.name)} if previous else set())
            else:
                exported = _reuse_without_contents(image, layer, created_by)
            layers_md[layer.name] = {"sha": announce(exported), "data": layer.data, "build": layer.types.build,
                                     "launch": True, "cache": layer.types.cache}
        entry: dict[str, Any] = {"key": bp.id, "version": bp.version, "layers": layers_md}
        if store is not None:
            entry["store"] = {"metadata": store}
        buildpacks.append(entry)

    app_shas = previous.app_shas() if previous else set()
    slices = source.metadata.slices
    app = []
    for n, files in enumerate(_app_slices(source.workspace, slices), start=1):
        created_by = SLICE_LAYER_HISTORY.format(n=n) if slices else APP_LAYER_HISTORY
        app.append(image.add(f"slice-{n}", created_by, _files_layer(files, APP_DIR), app_shas))
    reused = sum(lay.reused for lay in app)
    if reused:
        say.info(f"Reused {reused}/{len(app)} app layer(s)")
    if reused != len(app):
        say.info(f"Added {len(app) - reused}/{len(app)} app layer(s)")

    launcher = announce(image.add("buildpacksio/lifecycle:launcher", LAUNCHER_HISTORY, _launcher_layer,
                                  prev("launcher")))
    config = announce(image.add("buildpacksio/lifecycle:config", CONFIG_HISTORY,
                                _dir_layer(source.layers_dir / "config", f"{LAYERS_DIR}/config"), prev("config")))
    types = ""
    if source.metadata.processes:
        types = announce(image.add("buildpacksio/lifecycle:process-types", PROCESS_TYPES_HISTORY,
                                   _process_types_layer(source.metadata.processes), prev("process-types")))
    # lc:platform/files LayersMetadata field order (runImage and stack follow).
    return {"app": [{"sha": lay.diff_id} for lay in app], "buildpacks": buildpacks, "config": {"sha": config},
            "launcher": {"sha": launcher}, "process-types": {"sha": types}}


def _reuse_without_contents(image: _ImageWriter, layer: _LaunchLayer, created_by: str) -> ExportedLayer:
    """lc: a launch layer with a toml but no directory keeps the previous image's layer, or fails."""
    toml = layer.path.with_name(layer.name + ".toml")
    if layer.types.cache:
        raise ExportError(f"layer '{layer.id}' is cache=true but has no contents", file=toml,
                          hint="create the layer directory, or set cache = false")
    sha = image.previous.layer_sha(layer.buildpack.id, layer.name) if image.previous else ""
    if not sha or sha not in image.previous.blobs:
        raise ExportError(f"cannot reuse '{layer.id}', previous image has no metadata for layer '{layer.id}'",
                          file=toml, hint="the buildpack must create the layer directory (or export to the "
                                          "OCI layout and tag that holds the previous image)")
    return image.reuse(layer.id, created_by, sha)


def _image_config(source: _BuildOutput, run: _RunImage | None, image: _ImageWriter, lc_meta: dict[str, Any],
                  api: ApiVersion, exec_env: str, created: str, say: _Say) -> dict[str, Any]:
    """The image config: the run image's, with the lifecycle's env, labels and workdir (4.1, 5.4)."""
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
    """io.buildpacks.build.metadata (lc:platform/files BuildMetadata): no api, labels or slices [GAP]."""
    from cnbsim import __version__
    out: dict[str, Any] = {
        "buildpacks": [{"id": b.id, "version": b.version, **({"homepage": b.homepage} if b.homepage else {})}
                       for b in metadata.buildpacks],
        "launcher": {"version": __version__, "source": {"git": {"repository": "cnbsim", "commit": ""}}},
        "processes": [_process_json(p, api) for p in metadata.processes],
    }
    if metadata.default_process:
        out["buildpack-default-process-type"] = metadata.default_process
    return out


def _process_json(p: Process, api: ApiVersion) -> dict[str, Any]:
    """lc:launch Process JSON: command is an array from Platform 0.10, a string before."""
    toml = p.to_metadata_toml(api)
    out: dict[str, Any] = {"type": p.type, "command": toml["command"], "args": toml.get("args"),
                           "direct": p.direct, "buildpackID": p.buildpack_id}
    if p.working_dir:
        out["working-dir"] = p.working_dir
    if p.exec_env:
        out["exec-env"] = list(p.exec_env)
    return out


def _project_metadata(workspace: Path) -> dict[str, Any]:
    """What pack puts in io.buildpacks.project.metadata from project.toml: `[_]` (or 0.1's `[project]`)
    version and source-url; `{}` without them."""
    path = workspace / "project.toml"
    if not path.is_file():
        return {}
    top = Fields(read_toml(path, what="project descriptor (project.toml)", error=ExportError), path,
                 error=ExportError)
    table = top.sub("_") if top.has("_") else top.sub("project")
    version, url = table.str("version"), table.str("source-url")
    if not version and not url:
        return {}
    return {"source": {"type": "project", "version": {"declared": version}, "metadata": {"url": url}}}


def _image_env(env: list[str], api: ApiVersion) -> list[str]:
    """lc:phase/exporter.go setEnv: CNB_* dirs and API, then /cnb/process:/cnb/lifecycle: before PATH."""
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
    """cnb-spec.md 4.1.1: the platform's -process-type, else the buildpacks' default, else the launcher."""
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


def _created(api: ApiVersion, say: _Say) -> str:
    """cnb-spec.md 5.5.5: SOURCE_DATE_EPOCH (Platform >= 0.9), else 1980-01-01T00:00:01Z."""
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


class _Staging:
    """Build the new layout next to `target`, then swap it in: a failure leaves `target` as it was."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.aside = target.with_name(f".{target.name}.cnbsim-previous")
        self.path = target.with_name(f".{target.name}.cnbsim-staging-{os.getpid()}-{secrets.token_hex(4)}")
        self.old: _Layout | None = None   # the layout being replaced

    def __enter__(self) -> "_Staging":
        if self.aside.exists() and not self.target.exists():
            self.aside.rename(self.target)   # a crash left the last good layout aside
        shutil.rmtree(self.aside, ignore_errors=True)
        if self.target.exists() and not (self.target / "oci-layout").is_file() and (
                not self.target.is_dir() or any(self.target.iterdir())):
            raise ExportError("exists and is not an OCI image layout; refusing to replace it", file=self.target,
                              hint="choose another --oci directory (an empty one, or a layout to update)")
        if (self.target / "oci-layout").is_file():
            self.old = _Layout(self.target, "the OCI layout to update")
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()
        except OSError as exc:
            raise ExportError(f"cannot create the OCI layout: {exc.strerror}", file=self.target) from None
        return self

    def write_index(self, entry: dict[str, Any], tag: str, say: _Say) -> None:
        """index.json: the old entries (their blobs kept) but this tag's, which `entry` replaces in place."""
        entries, placed = [], False
        for e in self.old.entries() if self.old else []:
            if (e.get("annotations") or {}).get(REF_NAME) != tag:
                self._copy_blobs(self.old, e, say)
                entries.append(e)
            elif not placed:
                entries.append(entry)
                placed = True
        if not placed:
            entries.append(entry)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        (self.path / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n", encoding="utf-8")

    def _copy_blobs(self, old: _Layout, desc: dict[str, Any], say: _Say) -> None:
        """Everything `desc` reaches: an index's manifests, a manifest's config and layers."""
        try:
            _link_blob(old.blob(desc.get("digest")), self.path / "blobs" / "sha256")
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

    def commit(self) -> None:
        if self.target.exists():
            self.target.rename(self.aside)
        self.path.rename(self.target)
        shutil.rmtree(self.aside, ignore_errors=True)

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
