"""Buildpackages: writing them as `pack buildpack package` does, and reading them as buildpack sources.

A buildpackage is an OCI image whose layers each hold one buildpack at `/cnb/buildpacks/<escaped id>/<version>/`,
with the labels `io.buildpacks.buildpackage.metadata` (the entry buildpack) and `io.buildpacks.buildpack.layers`
(every buildpack's api, stacks/targets, order and layer diffID): buildpacks/spec distribution.md#buildpackage.
It comes as a `.cnb` file (an OCI layout in an uncompressed tar) or as an OCI layout directory
(`skopeo copy docker://... oci:DIR:TAG`). Layer contents follow pack pkg/buildpack/buildpack.go toDistTar:
owner 0:0, the normalized time, directories and executables 0755, other files 0644.

Read buildpackages are unpacked once into a content-addressed store (one directory per layer diffID) and then
used like any other buildpacks directory in the Platform API layout.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import platform as host_platform
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cnbsim.errors import CnbsimError, ConfigError
from cnbsim.fs import AtomicDir, DirKind, cache_home, mark, remove_tree
from cnbsim.model.buildpack import BuildpackDescriptor, escape_id, read_buildpack_toml
from cnbsim.oci.layout import DIGEST, INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, REF_NAME, ImageWriter
from cnbsim.oci.tar import NORMALIZED_TIME, TarWriter, dir_header

METADATA_LABEL = "io.buildpacks.buildpackage.metadata"     # pack pkg/buildpack/buildpackage.go
LAYERS_LABEL = "io.buildpacks.buildpack.layers"            # pack pkg/dist/layers.go
BUILDPACKS_DIR = "/cnb/buildpacks"
FORMATS = ("file", "oci")
# Bounds on what is read from a buildpackage: JSON documents and the unpacked size of one layer.
MAX_JSON = 16 << 20
MAX_LAYER_BYTES = 4 << 30
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


class BuildpackageError(CnbsimError):
    """A buildpackage that cannot be written or read: the file, and what is wrong with it."""

    exit_code = 1


# ---------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Packaged:
    """What `package()` wrote: where, the entry buildpack, the image's manifest digest and its layers."""

    path: Path
    format: str
    id: str
    version: str
    manifest_digest: str
    layers: tuple[tuple[str, str], ...]      # (buildpack key, layer diffID), in image order


def _pack_mode(name: str, mode: int, is_dir: bool) -> int:
    """pack calcFileMode: directories, bin/build, bin/detect, bin/generate and anything executable 0755, else 0644."""
    if is_dir or name in ("bin/build", "bin/detect", "bin/generate") or mode & 0o111:
        return 0o755
    return 0o644


def _buildpack_entries(root: Path) -> Iterator[tuple[Path, str]]:
    """The buildpack directory's entries, relative, in byte order of names, depth first; links not followed."""
    def walk(directory: Path, rel: str) -> Iterator[tuple[Path, str]]:
        try:
            names = sorted(os.listdir(directory), key=os.fsencode)
        except OSError as exc:
            raise BuildpackageError(f"cannot list the buildpack directory: {exc.strerror}", file=directory) from None
        for name in names:
            host = directory / name
            child = f"{rel}/{name}" if rel else name
            yield host, child
            if host.is_dir() and not host.is_symlink():
                yield from walk(host, child)
    yield from walk(root, "")


def _write_buildpack_layer(tw: TarWriter, desc: BuildpackDescriptor) -> None:
    """One buildpack as pack lays it out: `/cnb/buildpacks/<escaped id>`, `.../<version>`, then its files."""
    top = f"{BUILDPACKS_DIR}/{escape_id(desc.id)}"
    base = f"{top}/{desc.version}"
    tw.add(dir_header(top, 0, 0))
    tw.add(dir_header(base, 0, 0))
    for host, rel in _buildpack_entries(desc.root):
        st = os.lstat(host)
        info = tarfile.TarInfo(f"{base}/{rel}")
        info.uid = info.gid = 0
        if stat.S_ISDIR(st.st_mode):
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tw.add(info)
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(host), 0o755
            tw.add(info)
        elif stat.S_ISREG(st.st_mode):
            info.size, info.mode = st.st_size, _pack_mode(rel, st.st_mode, False)
            tw.add(info, host)
        else:
            raise BuildpackageError("a buildpack may hold only files, directories and symlinks",
                                    file=host, hint="remove the socket, FIFO or device file from the buildpack")


def _module_json(desc: BuildpackDescriptor, diff_id: str) -> dict[str, Any]:
    """pack dist.ModuleLayerInfo, with its JSON names and omitempty fields."""
    out: dict[str, Any] = {"api": desc.declared_api}
    if desc.stacks:
        out["stacks"] = [{"id": s} for s in desc.stacks]
    if desc.targets:
        out["targets"] = [_target_json(t) for t in desc.targets]
    if desc.order:
        out["order"] = [{"group": [_ref_json(el) for el in g.group]} for g in desc.order]
    out["layerDiffID"] = diff_id
    if desc.info.homepage:
        out["homepage"] = desc.info.homepage
    if desc.info.name:
        out["name"] = desc.info.name
    return out


def _ref_json(el: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": el.id}
    if el.version:
        ref["version"] = el.version
    if el.optional:
        ref["optional"] = True
    return ref


def _target_json(t: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"os": t.os, "arch": t.arch}
    if t.arch_variant:
        out["variant"] = t.arch_variant
    if t.distros:
        out["distros"] = [{"name": d.name, "version": d.version} for d in t.distros]
    return out


def _stacks(modules: list[BuildpackDescriptor]) -> list[dict[str, Any]]:
    """pack PackageBuilder.resolvedStacks: the stacks every component supports; one without stacks supports any."""
    result: list[str] | None = None
    for desc in modules:
        if desc.order:
            continue      # composites take their components' stacks
        own = list(desc.stacks) or ["*"]
        if result is None:
            result = own
        elif "*" in result:
            result = own if own != ["*"] else result
        elif "*" not in own:
            result = [s for s in result if s in own]
    return [{"id": s} for s in (result or [])]


def _check_complete(modules: list[BuildpackDescriptor], config: Path) -> None:
    """pack validateBuildpacks: every buildpack a composite's order names must be in the package."""
    have = {(m.id, m.version) for m in modules}
    ids = {m.id for m in modules}
    for desc in modules:
        for g in desc.order:
            for el in g.group:
                if (el.id, el.version) not in have and not (not el.version and el.id in ids):
                    raise BuildpackageError(
                        f"buildpack {desc.key} references buildpack {el.id}@{el.version or '(any)'}, "
                        "which is not present", file=config, field="dependencies",
                        hint="add it under [[dependencies]] (a directory, a .cnb file or oci:DIR)")


def package(config: Path | str | None, output: Path | str, *, fmt: str = "file", path: Path | str | None = None,
            target_os: str = "", tag: str = "") -> Packaged:
    """`pack buildpack package OUTPUT --config package.toml --format file|oci` (or `--path DIR`), offline."""
    from cnbsim.builder import package_modules

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format '{fmt}'", field="--format", hint="use --format file or --format oci")
    output = Path(output).absolute()
    main, modules, os_name = package_modules(Path(config) if config else None, Path(path) if path else None)
    _check_complete(modules, Path(config or path or "."))
    os_name = target_os or os_name or "linux"
    arch = _arch(main)
    ordered = sorted(modules, key=lambda d: (d.id, d.version))
    work = Path(tempfile.mkdtemp(prefix=".cnbsim-package-", dir=_writable_parent(output)))
    try:
        layout = work / "layout"
        layout.mkdir()
        image = ImageWriter(layout, None, True, _created())
        layers: dict[str, dict[str, Any]] = {}
        order: list[tuple[str, str]] = []
        for desc in ordered:
            added = image.add(desc.key, "", functools.partial(_write_buildpack_layer, desc=desc), set())
            layers.setdefault(desc.id, {})[desc.version] = _module_json(desc, added.diff_id)
            order.append((desc.key, added.diff_id))
        metadata: dict[str, Any] = {"id": main.id, "version": main.version}
        if main.info.name:
            metadata["name"] = main.info.name
        if main.info.homepage:
            metadata["homepage"] = main.info.homepage
        metadata["stacks"] = _stacks(ordered)
        config_json = {
            "architecture": arch, "os": os_name, "created": _created(),
            "config": {"Labels": {METADATA_LABEL: _json(metadata), LAYERS_LABEL: _json(layers)}},
            "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in image.layers]},
            "history": [{"created": _created()} for _ in image.layers],
        }
        entry, _ = image.write_image(config_json, tag)
        if not tag:
            entry.pop("annotations", None)
        (layout / "index.json").write_text(_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}))
        (layout / "oci-layout").write_text(_json({"imageLayoutVersion": "1.0.0"}))
        if fmt == "file":
            tmp = work / "package.cnb"
            _tar_layout(layout, tmp)
            _replace_file(tmp, output)
        else:
            _replace_layout(layout, output)
        return Packaged(output, fmt, main.id, main.version, entry["digest"], tuple(order))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _arch(main: BuildpackDescriptor) -> str:
    arches = {t.arch for t in main.targets if t.arch}
    if len(arches) == 1:
        return arches.pop()
    machine = host_platform.machine()
    return _GOARCH.get(machine, machine)


def _created() -> str:
    return NORMALIZED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _writable_parent(output: Path) -> Path:
    parent = output.parent
    if not parent.is_dir():
        raise ConfigError("the output's directory does not exist", file=parent, hint="create it first")
    return parent


def _tar_layout(layout: Path, dest: Path) -> None:
    """The layout as pack's `--format file` writes it: an uncompressed tar, entries `/blobs/...`, 0:0, 0755."""
    with open(dest, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in ("blobs", "blobs/sha256"):
            tar.addfile(_layout_header(f"/{rel}", tarfile.DIRTYPE, 0))
        for blob in sorted((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.name):
            with open(blob, "rb") as fh:
                tar.addfile(_layout_header(f"/blobs/sha256/{blob.name}", tarfile.REGTYPE, blob.stat().st_size), fh)
        for name in ("index.json", "oci-layout"):
            data = (layout / name).read_bytes()
            tar.addfile(_layout_header(f"/{name}", tarfile.REGTYPE, len(data)), io.BytesIO(data))


def _layout_header(name: str, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = kind, size, 0o755
    info.mtime = int(NORMALIZED_TIME.timestamp())
    return info


def _replace_file(tmp: Path, output: Path) -> None:
    """Replace OUTPUT only when it is absent or a buildpackage file (never someone else's file)."""
    if output.is_dir() or output.is_symlink():
        raise BuildpackageError("is a directory or a link, not a buildpackage file", file=output,
                                hint="give a file name such as my-buildpack.cnb")
    if output.exists() and not _is_buildpackage_file(output):
        raise BuildpackageError("exists and is not a buildpackage: refusing to overwrite it", file=output,
                                hint="remove it yourself or pick another name")
    os.replace(tmp, output)


def _replace_layout(layout: Path, output: Path) -> None:
    """Put the new layout at OUTPUT with the one atomic-directory helper: an existing directory is
    replaced only when cnbsim made it (its ownership marker), and OUTPUT always names a whole layout."""
    with AtomicDir(output, DirKind.OCI_LAYOUT, "package layout") as target:
        remove_tree(target.path)
        os.rename(layout, target.path)        # built beside OUTPUT: the same file system
        mark(target.path, DirKind.OCI_LAYOUT)
        target.commit()


def _is_buildpackage_file(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:") as tar:
            return any(m.name.lstrip("/") == "oci-layout" for m in tar.getmembers())
    except (OSError, tarfile.TarError):
        return False


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Buildpackage:
    """A read buildpackage: its entry buildpack and the Platform API buildpacks dirs its layers unpack to."""

    source: str
    id: str
    version: str
    dirs: tuple[Path, ...]       # each `<store>/<diffID>/cnb/buildpacks`

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


class _Blobs:
    """Blobs of a layout, in a directory or a `.cnb` tar, by digest, each checked against its digest."""

    def __init__(self, source: Path, tag: str) -> None:
        self.source = source
        self.tag = tag
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if source.is_dir():
            if not (source / "oci-layout").is_file() or not (source / "index.json").is_file():
                raise BuildpackageError("is not an OCI image layout (it needs oci-layout and index.json)",
                                        file=source, hint="give a directory written by `cnbsim package --format oci`"
                                        " or `skopeo copy ... oci:DIR:TAG`")
        else:
            try:
                self._tar = tarfile.open(source, "r:")
            except (OSError, tarfile.TarError) as exc:
                raise BuildpackageError(f"is not a buildpackage (not an uncompressed tar: {exc})", file=source,
                                        hint="give a .cnb file written by `cnbsim package` or `pack buildpack "
                                             "package --format file`") from None
            for member in self._tar.getmembers():
                self._members[posixpath.normpath(member.name.lstrip("/"))] = member
            if "oci-layout" not in self._members or "index.json" not in self._members:
                raise BuildpackageError("is not a buildpackage (the tar holds no OCI layout: oci-layout and "
                                        "index.json are missing)", file=source,
                                        hint="give a .cnb file written by `cnbsim package` or `pack buildpack "
                                             "package --format file`")

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def _open(self, rel: str) -> IO[bytes]:
        if self._tar is None:
            try:
                return open(self.source / rel, "rb")
            except OSError:
                raise BuildpackageError(f"{rel} is missing", file=self.source,
                                        hint="the layout is incomplete; package or copy it again") from None
        member = self._members.get(rel)
        fh = self._tar.extractfile(member) if member is not None and member.isreg() else None
        if fh is None:
            raise BuildpackageError(f"{rel} is missing", file=self.source,
                                    hint="the file is incomplete; package or copy it again")
        return fh

    def json_file(self, rel: str) -> Any:
        with self._open(rel) as fh:
            data = fh.read(MAX_JSON + 1)
        return self._parse(data, rel)

    def _parse(self, data: bytes, what: str) -> Any:
        if len(data) > MAX_JSON:
            raise BuildpackageError(f"{what} is larger than {MAX_JSON >> 20} MiB", file=self.source)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BuildpackageError(f"{what} is not valid JSON", file=self.source,
                                    hint="the buildpackage is damaged; package or copy it again") from None

    def blob_path(self, digest: Any, what: str) -> str:
        if not isinstance(digest, str) or not DIGEST.match(digest):
            raise BuildpackageError(f"{what} has an unsupported digest '{digest}'", file=self.source,
                                    hint="only sha256 digests are supported")
        return f"blobs/sha256/{digest[7:]}"

    def json_blob(self, desc: Any, what: str) -> dict[str, Any]:
        if not isinstance(desc, dict):
            raise BuildpackageError(f"the {what} descriptor is not an object", file=self.source)
        rel = self.blob_path(desc.get("digest"), what)
        with self._open(rel) as fh:
            data = fh.read(MAX_JSON + 1)
        if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
            raise BuildpackageError(f"the {what} blob {desc['digest']} does not match its digest (tampered or "
                                    "damaged)", file=self.source, hint="package or copy the buildpackage again")
        value = self._parse(data, f"the {what}")
        if not isinstance(value, dict):
            raise BuildpackageError(f"the {what} is not a JSON object", file=self.source)
        return value

    def open_blob(self, digest: Any, what: str) -> IO[bytes]:   # blob_path checks it
        return self._open(self.blob_path(digest, what))


def default_store() -> Path:
    """Where unpacked buildpackages live: `$XDG_CACHE_HOME/cnbsim/buildpackages` (content-addressed)."""
    return cache_home() / "buildpackages"


def read_buildpackage(source: Path, tag: str = "", store: Path | None = None) -> Buildpackage:
    """Check a buildpackage (labels, digests, layer paths) and unpack each layer once into the store."""
    if not source.exists():
        raise BuildpackageError("buildpackage not found", file=source,
                                hint="give a .cnb file or an OCI layout directory (oci:DIR[:TAG])")
    store = (store or default_store()).absolute()
    blobs = _Blobs(source, tag)
    try:
        manifest, config = _image(blobs, tag)
        labels = ((config.get("config") or {}).get("Labels") or {})
        meta = _label(blobs, labels, METADATA_LABEL)
        layers_md = _label(blobs, labels, LAYERS_LABEL)
        main_id, main_version = meta.get("id"), meta.get("version")
        if not isinstance(main_id, str) or not isinstance(main_version, str) or not main_id:
            raise BuildpackageError(f"label {METADATA_LABEL} has no buildpack id and version", file=source)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layer_descs = manifest.get("layers") or []
        if not isinstance(diff_ids, list) or not isinstance(layer_descs, list) or len(diff_ids) != len(layer_descs):
            raise BuildpackageError("the image has a different number of layers and diff_ids", file=source,
                                    hint="the buildpackage is damaged; package or copy it again")
        wanted = _declared(blobs, layers_md)
        if not isinstance(layers_md.get(main_id), dict) or main_version not in layers_md[main_id]:
            raise BuildpackageError(f"label {LAYERS_LABEL} does not list the package's buildpack "
                                    f"{main_id}@{main_version}", file=source)
        dirs = []
        for desc, diff_id in zip(layer_descs, diff_ids):
            if diff_id not in wanted:
                continue
            dirs.append(_unpacked(blobs, desc, diff_id, store))
        for diff_id, key in wanted.items():
            if diff_id not in diff_ids:
                raise BuildpackageError(f"label {LAYERS_LABEL} names layer {diff_id} of {key[0]}@{key[1]}, which "
                                        "the image does not have", file=source)
        return Buildpackage(str(source) + (f":{tag}" if tag else ""), main_id, main_version, tuple(dirs))
    finally:
        blobs.close()


def _label(blobs: _Blobs, labels: Any, name: str) -> Any:
    if not isinstance(labels, dict) or not isinstance(labels.get(name), str):
        raise BuildpackageError(f"is not a buildpackage: the image has no {name} label", file=blobs.source,
                                hint="package the buildpack with `cnbsim package` or `pack buildpack package`")
    value = blobs._parse(labels[name].encode(), f"label {name}")
    if not isinstance(value, dict):
        raise BuildpackageError(f"label {name} is not a JSON object", file=blobs.source)
    return value


def _declared(blobs: _Blobs, layers_md: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """diffID -> (id, version) from the layers label (a flattened layer may hold several: the first is kept)."""
    out: dict[str, tuple[str, str]] = {}
    for bp_id, versions in layers_md.items():
        if not isinstance(versions, dict):
            raise BuildpackageError(f"label {LAYERS_LABEL}: entry '{bp_id}' is not an object", file=blobs.source)
        for version, info in versions.items():
            diff_id = info.get("layerDiffID") if isinstance(info, dict) else None
            if not isinstance(diff_id, str) or not DIGEST.match(diff_id):
                raise BuildpackageError(f"label {LAYERS_LABEL}: {bp_id}@{version} has no valid layerDiffID",
                                        file=blobs.source)
            out.setdefault(diff_id, (bp_id, version))
    return out


def _image(blobs: _Blobs, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    index = blobs.json_file("index.json")
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise BuildpackageError("index.json lists no image", file=blobs.source,
                                hint="the buildpackage is damaged; package or copy it again")
    if tag:
        entries = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == tag]
        if not entries:
            raise BuildpackageError(f"the layout has no image tagged '{tag}'", file=blobs.source,
                                    hint="name one of its tags as oci:DIR:TAG, or leave the tag out")
    if len(entries) > 1:
        raise BuildpackageError(f"the layout holds {len(entries)} images", file=blobs.source,
                                hint="name one as oci:DIR:TAG")
    desc = entries[0]
    if desc.get("mediaType") in INDEX_TYPES:
        nested = blobs.json_blob(desc, "image index").get("manifests") or []
        machine = host_platform.machine()
        arch = _GOARCH.get(machine, machine)
        matching = [d for d in nested if isinstance(d, dict) and (d.get("platform") or {}).get("architecture") == arch]
        if not matching:
            raise BuildpackageError(f"the image index has no image for linux/{arch}", file=blobs.source)
        desc = matching[0]
    if desc.get("mediaType", OCI_MANIFEST) not in MANIFEST_TYPES:
        raise BuildpackageError(f"unsupported manifest media type '{desc.get('mediaType')}'", file=blobs.source)
    manifest = blobs.json_blob(desc, "manifest")
    config = blobs.json_blob(manifest.get("config"), "config")
    return manifest, config


def _unpacked(blobs: _Blobs, desc: Any, diff_id: str, store: Path) -> Path:
    """`<store>/<diffID hex>/cnb/buildpacks`, unpacked once (aside, then renamed in) and reused afterwards."""
    if not isinstance(desc, dict):
        raise BuildpackageError("a layer descriptor is not an object", file=blobs.source)
    final = store / diff_id.replace(":", "-")
    if (final / ".complete").is_file():
        return final / "cnb" / "buildpacks"
    store.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=store))
    try:
        _extract_layer(blobs, desc, diff_id, work)
        (work / ".complete").write_text(diff_id + "\n")
        try:
            os.rename(work, final)
        except OSError:
            if not (final / ".complete").is_file():    # another build unpacked it meanwhile: keep theirs
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return final / "cnb" / "buildpacks"


class _Hashing(io.RawIOBase):
    """Reads through, hashing every byte (the blob's digest, or the uncompressed diffID)."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw, self.sha, self.count, self.limit = raw, hashlib.sha256(), 0, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.raw.read(len(buf))
        self.count += len(data)
        if self.count > self.limit:
            raise BuildpackageError(f"a layer is larger than {self.limit >> 30} GiB")
        self.sha.update(data)
        buf[:len(data)] = data
        return len(data)


def _extract_layer(blobs: _Blobs, desc: dict[str, Any], diff_id: str, dest: Path) -> None:
    digest = desc.get("digest")
    with blobs.open_blob(digest, "layer") as raw:
        blob = _Hashing(raw, MAX_LAYER_BYTES)
        head = io.BufferedReader(blob)
        gz = head.peek(2)[:2] == b"\x1f\x8b"
        plain = _Hashing(gzip.GzipFile(fileobj=head, mode="rb") if gz else head, MAX_LAYER_BYTES)  # type: ignore[arg-type]
        try:
            with tarfile.open(fileobj=io.BufferedReader(plain), mode="r|") as tar:
                for member in tar:
                    _extract_member(tar, member, dest, blobs.source)
            while plain.read(1 << 20):     # the tar's trailing padding counts for the diffID
                pass
            while blob.read(1 << 20):
                pass
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BuildpackageError(f"layer {digest} is not a readable tar ({exc})", file=blobs.source,
                                    hint="the buildpackage is damaged; package or copy it again") from None
    if "sha256:" + blob.sha.hexdigest() != digest:
        raise BuildpackageError(f"layer blob {digest} does not match its digest (tampered or damaged)",
                                file=blobs.source, hint="package or copy the buildpackage again")
    if "sha256:" + plain.sha.hexdigest() != diff_id:
        raise BuildpackageError(f"layer {digest} does not match its diffID {diff_id} (tampered or damaged)",
                                file=blobs.source, hint="package or copy the buildpackage again")


def _inside(name: str) -> str:
    """The entry's path relative to the layer root; refused unless it stays under /cnb/buildpacks."""
    clean = posixpath.normpath("/" + name.lstrip("/"))
    if ".." in name.split("/") or not (clean in ("/cnb", BUILDPACKS_DIR) or clean.startswith(BUILDPACKS_DIR + "/")):
        raise ValueError(name)
    return clean.lstrip("/")


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, source: Path) -> None:
    try:
        rel = _inside(member.name)
    except ValueError:
        raise BuildpackageError(f"a layer entry '{member.name}' lies outside {BUILDPACKS_DIR}: refused",
                                file=source, hint="a buildpackage layer may only hold /cnb/buildpacks/...") from None
    target = dest / rel
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if member.issym():
        link = posixpath.normpath(posixpath.join(posixpath.dirname("/" + rel), member.linkname))
        if member.linkname.startswith("/") or not link.startswith(BUILDPACKS_DIR + "/"):
            raise BuildpackageError(f"layer entry '{member.name}' links to '{member.linkname}', outside "
                                    f"{BUILDPACKS_DIR}: refused", file=source,
                                    hint="a buildpack's links must point inside the buildpack")
        os.symlink(member.linkname, target)
    elif member.islnk():
        try:
            other = dest / _inside(member.linkname)
        except ValueError:
            raise BuildpackageError(f"layer entry '{member.name}' hard-links outside {BUILDPACKS_DIR}: refused",
                                    file=source) from None
        if not other.is_file() or other.is_symlink():
            raise BuildpackageError(f"layer entry '{member.name}' hard-links to a file not in the layer",
                                    file=source)
        shutil.copyfile(other, target)
        os.chmod(target, member.mode & 0o755)
    elif member.isreg():
        fh = tar.extractfile(member)
        assert fh is not None
        with open(target, "wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)
        os.chmod(target, member.mode & 0o755 | 0o600)
    else:
        raise BuildpackageError(f"layer entry '{member.name}' is a device, FIFO or other special file: refused",
                                file=source)


def descriptors(package: Buildpackage) -> list[BuildpackDescriptor]:
    """The unpacked buildpacks, the package's own first."""
    found = [read_buildpack_toml(toml) for d in package.dirs for toml in sorted(d.glob("*/*/buildpack.toml"))]
    main = [d for d in found if (d.id, d.version) == (package.id, package.version)]
    if not main:
        raise BuildpackageError(f"holds no buildpack.toml for its buildpack {package.key}", file=package.source,
                                hint=f"expected {BUILDPACKS_DIR}/{escape_id(package.id)}/{package.version}/"
                                     "buildpack.toml in a layer")
    return main + [d for d in found if d is not main[0]]


def saved_images(directory: Path) -> list[tuple[Path, str, str, str]]:
    """(layout dir or .cnb file, tag, buildpack id, version) of each buildpackage directly in `directory`."""
    out = []
    for entry in sorted(directory.iterdir()):
        if not ((entry.suffix == ".cnb" and entry.is_file()) or (entry / "oci-layout").is_file()):
            continue
        blobs = _Blobs(entry, "")
        try:
            index = blobs.json_file("index.json")
            for desc in (index.get("manifests") or []) if isinstance(index, dict) else []:
                if not isinstance(desc, dict):
                    continue
                tag = (desc.get("annotations") or {}).get(REF_NAME, "")
                try:
                    manifest = blobs.json_blob(desc, "manifest")
                    config = blobs.json_blob(manifest.get("config"), "config")
                    meta = _label(blobs, (config.get("config") or {}).get("Labels"), METADATA_LABEL)
                except BuildpackageError:
                    continue    # not a buildpackage (an app image, a run image): not a candidate
                out.append((entry, tag, str(meta.get("id", "")), str(meta.get("version", ""))))
        finally:
            blobs.close()
    return out
