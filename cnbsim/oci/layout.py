"""OCI image layouts: reading one (index, manifests, configs, blobs by digest) and writing an image's blobs.

Follows the OCI image-spec (image-layout.md, manifest.md, config.md) as skopeo and umoci read it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbsim.errors import CnbsimError, ExportError
from cnbsim.model.buildpack import escape_id
from cnbsim.oci.tar import CHUNK, TarWriter
from cnbsim.platform import RunTarget
from cnbsim.tomlio import parse_json

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
REF_NAME = "org.opencontainers.image.ref.name"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


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


class Layout:
    """The read side of an OCI image layout directory."""

    def __init__(self, root: Path, what: str) -> None:
        self.root = root
        self.what = what
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise ExportError(f"{what} is not an OCI image layout (it needs oci-layout and index.json)", file=root,
                              hint="give a directory written by `cnbsim export` or `skopeo copy ... oci:DIR:TAG`")
        self.index = self._json(root / "index.json", "index.json")

    def blob(self, digest: Any) -> Path:
        if not isinstance(digest, str) or not DIGEST.match(digest):
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
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ExportError(f"{self.what}: {what} is not valid JSON (not UTF-8)", file=path) from None
        value = parse_json(text, path=path, what=f"{self.what}: {what}", error=ExportError)
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
class RunImage:
    layout: Layout
    manifest_digest: str
    layers: tuple[dict[str, Any], ...]   # manifest layer descriptors
    diff_ids: tuple[str, ...]
    config: dict[str, Any]


def read_run_image(arg: Path) -> RunImage:
    """`DIR` (an OCI layout holding one image) or `DIR:TAG`, like skopeo's `oci:DIR:TAG`."""
    root, tag = arg, None
    if not arg.exists() and ":" in arg.name:
        name, _, tag = arg.name.rpartition(":")
        root = arg.with_name(name)
    layout = Layout(root.absolute(), "the run image")
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
    return RunImage(layout, desc["digest"], tuple(layers), tuple(diff_ids), config)


@dataclass(frozen=True)
class PreviousImage:
    """The image this tag named in `oci_dir` before: the lifecycle's "previous image" for layer reuse."""

    layout: Layout
    metadata: dict[str, Any]                 # its io.buildpacks.lifecycle.metadata label (`label_name`)
    blobs: dict[str, dict[str, Any]]         # diffID -> layer descriptor

    @classmethod
    def find(cls, layout: Layout, tag: str, label_name: str, debug: Callable[[str], None]
             ) -> PreviousImage | None:
        tagged = layout.tagged(tag)
        if not tagged:
            return None
        try:
            _, manifest, config = layout.image(tagged[0])
            label = ((config.get("config") or {}).get("Labels") or {}).get(label_name, "{}")
            metadata = json.loads(label)
            diff_ids = config["rootfs"]["diff_ids"]
            blobs = {diff_id: desc for diff_id, desc in zip(diff_ids, manifest["layers"])
                     if layout.blob(desc.get("digest")).is_file()}
        except (CnbsimError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            debug(f"not reusing layers of the previous image '{tag}': {exc}")
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


def link_blob(src: Path, blob_dir: Path) -> None:
    """A blob of another layout into this one, once: a hard link when possible, else a copy."""
    dest = blob_dir / src.name
    if dest.exists():
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


class ImageWriter:
    """Blobs (each written once, by digest), layers in order, their diffIDs and history."""

    def __init__(self, root: Path, previous: PreviousImage | None, compress: bool, created: str) -> None:
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
            while chunk := fh.read(CHUNK):
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

    def add_run_image(self, run: RunImage) -> None:
        for n, (desc, diff_id) in enumerate(zip(run.layers, run.diff_ids), start=1):
            link_blob(run.layout.blob(desc["digest"]), self.blob_dir)
            media_type = OCI_LAYER_GZIP if desc.get("mediaType") == DOCKER_LAYER_GZIP else desc.get("mediaType")
            self.layers.append(ExportedLayer(f"run-image:{n}", "", diff_id, desc["digest"], desc.get("size", 0),
                                             media_type or OCI_LAYER_GZIP, "run-image"))
        history = run.config.get("history")
        self.history.extend(h for h in history or [] if isinstance(h, dict))

    def add(self, layer_id: str, created_by: str, write: Callable[[TarWriter], None],
            previous_shas: set[str]) -> ExportedLayer:
        """Write the layer's tar; reuse the previous export's blob when its diffID is unchanged."""
        tw = TarWriter(self.tmp / f"{escape_id(layer_id)}.tar")
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
        link_blob(self.previous.layout.blob(old["digest"]), self.blob_dir)
        return self._append(ExportedLayer(layer_id, created_by, diff_id, old["digest"], old.get("size", 0),
                                          old.get("mediaType", self.media_type), "reused"))

    def _compress(self, tar: Path) -> tuple[str, int]:
        """gzip with no name and mtime 0, so that equal tars give equal blobs."""
        out = tar.with_suffix(".tar.gz")
        with open(tar, "rb") as src, open(out, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            shutil.copyfileobj(src, gz, CHUNK)
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
