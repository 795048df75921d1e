"""A buildpack's layers dir, `<layers>/<escaped id>/`: its layers, their `<layer>.toml`, store.toml, SBOM files.

The one reader of that directory (lifecycle buildpack/layers.go ReadLayersDir), used by the build,
restore, export and launch phases. As the lifecycle reads it:
- a layer is every directory (not followed through a symlink) and every `<name>.toml` but
  `launch.toml`, `build.toml` and `store.toml`; a layer without a `<layer>.toml` has no types;
- layers are sorted by identifier `<bp id>:<name>`, compared as bytes (Go string order);
- a `<layer>.toml` that does not decode makes the layer malformed: it is neither launch nor cache
  (lifecycle MadeLaunch, MadeCached); each phase then does what the lifecycle's does with it (the
  builder and the exporter fail, the restorer skips it);
- `<layer>.toml` decoding does not depend on the Buildpack API (lifecycle buildpack/layermetadata.go
  has one decoder for all supported APIs): flags belong in `[types]`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cnbsim.errors import BuildError, CnbsimError
from cnbsim.model.buildpack import escape_id
from cnbsim.model.launch import StoreToml, read_store_toml
from cnbsim.model.layer import LayerMetadata, LayerTypes, read_layer_toml

# `<name>.toml` files of a buildpack's layers dir that are not layers (lifecycle ReadLayersDir).
NON_LAYER_TOMLS = frozenset({"launch", "build", "store"})
# buildpacks/spec buildpack.md#software-bill-of-materials: `<layer>.sbom.<ext>`, `launch.sbom.<ext>`, `build.sbom.<ext>`.
SBOM_EXTENSIONS = ("cdx.json", "spdx.json", "syft.json")


@dataclass(frozen=True)
class Layer:
    """One layer of a buildpack: `<layers>/<escaped id>/<name>` (which may not exist) and its metadata."""

    buildpack_id: str
    name: str
    path: Path
    metadata: LayerMetadata

    @property
    def identifier(self) -> str:
        return f"{self.buildpack_id}:{self.name}"

    @property
    def toml(self) -> Path:
        return self.path.with_name(self.name + ".toml")

    @property
    def types(self) -> LayerTypes:
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

    @property
    def has_contents(self) -> bool:
        """lifecycle Layer.HasLocalContents: the layer directory exists."""
        return self.path.is_dir()


@dataclass(frozen=True)
class MalformedLayer:
    """A layer whose `<layer>.toml` does not decode; `error` names the file, the field and the fix."""

    buildpack_id: str
    name: str
    path: Path
    error: CnbsimError

    @property
    def identifier(self) -> str:
        return f"{self.buildpack_id}:{self.name}"


@dataclass(frozen=True)
class LayersDir:
    """What one buildpack left in (or what is restored to) its layers dir."""

    path: Path
    buildpack_id: str
    layers: tuple[Layer, ...]              # identifier order
    malformed: tuple[MalformedLayer, ...]  # identifier order
    store: StoreToml | None
    has_tomls: bool                        # any `*.toml` at all: false in an unpacked image, which has none
    sbom: tuple[Path, ...] = ()            # the buildpack's SBOM files, by name

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    @property
    def launch_toml(self) -> Path:
        return self.path / "launch.toml"

    @property
    def build_toml(self) -> Path:
        return self.path / "build.toml"

    def launch_layers(self) -> tuple[Layer, ...]:
        """lifecycle MadeLaunch: well-formed layers with `launch = true`."""
        return tuple(layer for layer in self.layers if layer.launch)

    def cached_layers(self) -> tuple[Layer, ...]:
        """lifecycle MadeCached: well-formed layers with `cache = true`."""
        return tuple(layer for layer in self.layers if layer.cache)

    def layer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)


def read_layers_dir(layers_dir: Path, buildpack_id: str, *, error: type[CnbsimError] = BuildError) -> LayersDir:
    """Read `<layers_dir>/<escaped id>/`; a missing dir has no layers. `error` is raised for a bad store.toml."""
    path = layers_dir / escape_id(buildpack_id)
    names: set[str] = set()
    has_tomls = False
    sbom: list[Path] = []
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        entries = []
    except NotADirectoryError:
        entries = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            names.add(entry.name)
        elif entry.name.endswith(".toml"):
            has_tomls = True
            name = entry.name[: -len(".toml")]
            if name not in NON_LAYER_TOMLS:
                names.add(name)
        elif any(entry.name.endswith(".sbom." + ext) for ext in SBOM_EXTENSIONS):
            sbom.append(Path(entry.path))
    layers: list[Layer] = []
    malformed: list[MalformedLayer] = []
    for name in sorted(names, key=os.fsencode):
        toml = path / f"{name}.toml"
        if not toml.is_file():
            layers.append(Layer(buildpack_id, name, path / name, LayerMetadata()))
            continue
        try:
            layers.append(Layer(buildpack_id, name, path / name, read_layer_toml(toml)))
        except CnbsimError as exc:
            malformed.append(MalformedLayer(buildpack_id, name, path / name, exc))
    try:
        store = read_store_toml(path / "store.toml")
    except CnbsimError as exc:
        if isinstance(exc, error):
            raise
        raise error(exc.message, file=exc.file, field=exc.field, hint=exc.hint) from None
    return LayersDir(path, buildpack_id, tuple(layers), tuple(malformed), store, has_tomls,
                     tuple(sorted(sbom, key=lambda p: os.fsencode(p.name))))
