"""Where buildpacks come from: a builder.toml's buildpacks, `--buildpack` references, package.toml.

A builder's buildpack URIs are resolved offline: a local path is used as is (a buildpack directory, a
`.cnb` buildpackage or an OCI layout, `oci:DIR[:TAG]`); a registry or `docker://` reference resolves to
a buildpackage saved in a buildpack store (`--buildpack-store DIR`, `CNBSIM_BUILDPACK_STORE`) when one
matches, else, for a known Paketo buildpack, to its stub under `cnbsim/stubs/paketo/`; the PlanQK
job-template's references resolve to this repository's buildpack. Anything else is an error that says
how to provide the buildpack locally.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from cnbsim.buildpacks import BuildpackStore
from cnbsim.errors import ConfigError
from cnbsim.log import Logger
from cnbsim.model.builder import Builder, read_builder_toml
from cnbsim.model.buildpack import BuildpackDescriptor, CompositeBuildpack, read_buildpack_toml
from cnbsim.model.order import GroupElement, OrderGroup
from cnbsim.model.package import read_package_toml

PACKAGE_DIR = Path(__file__).parent
STUBS_DIR = PACKAGE_DIR / "stubs" / "paketo"
BUILDERS_DIR = PACKAGE_DIR / "builders"
DEFAULT_BUILDER = BUILDERS_DIR / "planqk" / "builder.toml"
JOB_TEMPLATE_ID = "planqk-buildpacks/job-template"
JOB_TEMPLATE_URIS = ("planqk-buildpack-job-template", "planqk-buildpacks/job-template")


def job_template_dir() -> Path:
    """The job-template buildpack: inside the package when installed from a wheel, else the repo's."""
    for candidate in (PACKAGE_DIR / "_buildpack", PACKAGE_DIR.parent / "buildpack"):
        if (candidate / "buildpack.toml").is_file():
            return candidate
    raise ConfigError("the job-template buildpack is missing from this installation",
                      file=PACKAGE_DIR / "_buildpack", hint="reinstall cnbsim")


@lru_cache(maxsize=1)
def _stubs() -> dict[str, Path]:
    """Stub buildpack id -> directory."""
    out = {}
    for toml in sorted(STUBS_DIR.glob("*/buildpack.toml")):
        out[read_buildpack_toml(toml).id] = toml.parent
    return out


_REF = re.compile(r"^(?:docker://|urn:cnb:registry:|urn:cnb:builder:)?(?P<name>[^:@]+?)(?::[\w.-]+)?"
                  r"(?:@(?:sha256:[0-9a-f]+|[\w.-]+))?$")


def stub_for_uri(uri: str) -> Path | None:
    """A registry/docker reference of a known buildpack -> its local stand-in, else None.

    `gcr.io/paketo-buildpacks/pip:0.20.0`, `docker://docker.io/paketobuildpacks/pip`,
    `urn:cnb:registry:paketo-buildpacks/pip@0.20.0`, `paketo-buildpacks/pip` -> the pip stub.
    """
    match = _REF.match(uri.strip())
    if not match:
        return None
    name = match.group("name").split("@")[0].rstrip("/")
    parts = name.split("/")
    if parts[-1] in JOB_TEMPLATE_URIS or name in JOB_TEMPLATE_URIS:
        return job_template_dir()
    if len(parts) >= 2 and parts[-2] in ("paketo-buildpacks", "paketobuildpacks"):
        return _stubs().get(f"paketo-buildpacks/{parts[-1]}")
    return None


def _is_local(uri: str) -> bool:
    return uri.startswith(("file://", "/", "./", "../")) or uri in (".", "..")


def _local_path(uri: str, base: Path) -> Path:
    raw = uri[len("file://"):] if uri.startswith("file://") else uri
    return (base / raw).resolve()


@dataclass
class Sources:
    """The buildpacks and the order a build uses, with the notices resolution produced."""

    store: BuildpackStore
    order: tuple[OrderGroup, ...]
    notices: list[str]
    builder: Builder | None = None


STORE_ENV = "CNBSIM_BUILDPACK_STORE"


def _add_buildpackage(store: BuildpackStore, path: Path, tag: str) -> list[BuildpackDescriptor]:
    """Every buildpack of a `.cnb` file or an OCI layout, its own first (unpacked once, then reused)."""
    # imported here: cnbsim.buildpackage (tar, gzip, OCI) costs every build ~6 ms of start-up, and
    # only builds from buildpackages need it
    from cnbsim.buildpackage import descriptors, read_buildpackage
    return [store.add(d) for d in descriptors(read_buildpackage(path, tag))]


def parse_source(text: str, base: Path | None = None) -> tuple[Path, str] | None:
    """`FILE.cnb`, `oci:DIR`, `oci:DIR:TAG` or a directory holding an OCI layout -> (path, tag); else None."""
    tag = ""
    if text.startswith("oci:"):
        raw = text[4:]
        head, sep, last = raw.rpartition(":")
        if sep and "/" not in last and head:
            raw, tag = head, last
        path = Path(raw)
    else:
        path = Path(text[len("file://"):] if text.startswith("file://") else text)
        if not (text.endswith(".cnb") or ((path.is_dir() if not base else (base / path).is_dir())
                and ((base / path if base else path) / "oci-layout").is_file())):
            return None
    if base is not None and not path.is_absolute():
        path = base / path
    return path.absolute(), tag




def _add_dir(store: BuildpackStore, path: Path, origin: str) -> list[BuildpackDescriptor]:
    if (path.is_file() and path.name != "package.toml") or (path / "oci-layout").is_file():
        return _add_buildpackage(store, path, "")
    if (path / "buildpack.toml").is_file():
        return store.add_path(path)
    if path.name == "package.toml" and path.is_file():
        return add_package(store, path)
    if (path / "package.toml").is_file():
        return add_package(store, path / "package.toml")
    if path.is_dir():
        return store.add_path(path)
    raise ConfigError(f"buildpack not found: {origin}", file=path,
                      hint="give a directory with buildpack.toml (or package.toml), a .cnb file or oci:DIR")


def _add_uri(store: BuildpackStore, uri: str, base: Path, origin: str) -> list[BuildpackDescriptor] | None:
    """A local reference (path, `.cnb`, `oci:DIR[:TAG]`), relative to `base`; None for a registry reference."""
    package = parse_source(uri, base)
    if package is not None:
        return _add_buildpackage(store, *package)
    if _is_local(uri):
        return _add_dir(store, _local_path(uri, base), origin)
    return None


def add_package(store: BuildpackStore, package_toml: Path) -> list[BuildpackDescriptor]:
    """package.toml (`pack buildpack package --config`): `[buildpack] uri` and `[[dependencies]] uri`."""
    package = read_package_toml(package_toml)
    base = package_toml.parent
    added = _add_dir(store, _local_path(package.buildpack_uri, base), f"{package_toml} [buildpack] uri")
    for i, dep_uri in enumerate(package.dependencies):
        local = _add_uri(store, dep_uri, base, f"{package_toml} dependencies[{i}].uri")
        if local is None:
            stub = stub_for_uri(dep_uri)
            local = _add_dir(store, stub or _local_path(dep_uri, base), f"{package_toml} dependencies[{i}].uri")
        added += local
    return added


def package_modules(config: Path | None, path: Path | None
                    ) -> tuple[BuildpackDescriptor, list[BuildpackDescriptor], str]:
    """What `cnbsim package` puts in a buildpackage: the entry buildpack, every buildpack, and `[platform] os`."""
    store = BuildpackStore()
    if config is None:
        if path is None:
            raise ConfigError("nothing to package", field="--config",
                              hint="give --config package.toml, or --path DIR for a buildpack directory")
        root = path.absolute()
        if not (root / "buildpack.toml").is_file():
            raise ConfigError("is not a buildpack directory (no buildpack.toml)", file=root, field="--path",
                              hint="give the directory that holds buildpack.toml")
        main = store.add_path(root)[0]
        return main, [main], ""
    package = read_package_toml(config.absolute())
    root = _local_path(package.buildpack_uri, config.absolute().parent)
    if not (root / "buildpack.toml").is_file():
        raise ConfigError("names no buildpack directory (no buildpack.toml there)", file=config,
                          field="buildpack.uri", hint=f"point uri at the buildpack's directory (now: {root})")
    main = add_package(store, config.absolute())[0]
    return main, store.all(), package.platform_os


def _known_store() -> BuildpackStore:
    store = BuildpackStore()
    for path in _stubs().values():
        store.add_path(path)
    store.add_path(job_template_dir())
    return store


def store_dirs(given: Sequence[Path | str] = ()) -> tuple[Path, ...]:
    """The buildpack stores: those given (`--buildpack-store`), else `$CNBSIM_BUILDPACK_STORE` (':'-separated)."""
    if given:
        return tuple(Path(d).absolute() for d in given)
    return tuple(Path(d).absolute() for d in os.environ.get(STORE_ENV, "").split(os.pathsep) if d)


def _saved_images(directory: Path) -> list[tuple[Path, str, str, str]]:
    """(layout or .cnb, tag, buildpack id, version) of every buildpackage saved in a store directory."""
    if not directory.is_dir():
        raise ConfigError("buildpack store not found", file=directory, field="--buildpack-store",
                          hint=f"give a directory of saved buildpackages (or unset {STORE_ENV})")
    from cnbsim.buildpackage import saved_images  # as in _add_buildpackage
    return saved_images(directory)


def _saved_buildpackage(ref: str, dirs: Sequence[Path]) -> tuple[Path, str] | None:
    """A registry reference -> the buildpackage saved for it: same buildpack (org/name) and, when the
    reference has a tag other than `latest`, that version (or layout tag); the highest version otherwise."""
    if not dirs:
        return None
    match = _REF.match(ref.strip())
    if not match:
        return None
    name = match.group("name").split("@")[0].rstrip("/")
    tag_match = re.search(r":([\w.-]+)$", ref.split("@")[0]) if not ref.startswith("urn:") else None
    tag = tag_match.group(1) if tag_match and "/" not in tag_match.group(1) else ""
    if ref.startswith("urn:cnb:registry:") and "@" in ref:
        tag = ref.rpartition("@")[2]
    parts = name.split("/")
    org = "paketo-buildpacks" if len(parts) >= 2 and parts[-2] == "paketobuildpacks" else (
        parts[-2] if len(parts) >= 2 else "")
    wanted_id = f"{org}/{parts[-1]}" if org else parts[-1]
    found = []
    for directory in dirs:
        for path, image_tag, bp_id, version in _saved_images(directory):
            if bp_id != wanted_id and not (not org and bp_id.rsplit("/", 1)[-1] == parts[-1]):
                continue
            if tag and tag != "latest" and tag not in (version, image_tag):
                continue
            found.append((_version_key(version), path, image_tag))
    if not found:
        return None
    _, path, image_tag = max(found, key=lambda f: f[0])
    return path, image_tag


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.+-]", version))


def resolve_builder(builder: Builder, log: Logger | None = None, saved_in: Sequence[Path] = ()) -> Sources:
    store = BuildpackStore()
    notices: list[str] = []
    base = builder.path.parent
    for i, bp in enumerate(builder.buildpacks):
        field_name = f"buildpacks[{i}].uri"
        if bp.uri and _add_uri(store, bp.uri, base, f"{builder.path} {field_name}") is not None:
            continue
        ref = bp.uri or bp.id
        saved = _saved_buildpackage(ref, saved_in)
        if saved is not None:
            added = _add_buildpackage(store, *saved)
            notices.append(f"{ref}: using the saved buildpackage {saved[0]}{':' + saved[1] if saved[1] else ''}"
                           f" ({added[0].key})")
        else:
            target = stub_for_uri(ref)
            if target is None:
                raise ConfigError(f"cannot resolve buildpack '{ref}' offline", file=builder.path,
                                  field=field_name,
                                  hint="point uri at a local directory with buildpack.toml "
                                       "(uri = \"./my-buildpack\"), a .cnb file or oci:DIR, pass it with "
                                       "--buildpack DIR, or save its image into a --buildpack-store DIR")
            added = store.add_path(target)
            for desc in added:   # a stand-in composite brings the stand-ins its order names
                if isinstance(desc, CompositeBuildpack):
                    for inner in _composite_parts(_known_store(), desc):
                        store.add(inner)
            what = "the job-template buildpack of this repository" if target == job_template_dir() \
                else f"the offline stub {added[0].key}"
            notices.append(f"{ref}: using {what}")
        # A `version` under [[buildpacks]] pins nothing (pack pulls the image as it is); only an
        # order entry's version must be found, and a stand-in plays it when it differs.
    _alias_order_versions(store, builder.order, notices)
    order = tuple(OrderGroup(tuple(_pin(store, el) for el in g.group)) for g in builder.order)
    for n in notices:
        (log or Logger(stream=None)).info(f"Notice: {n}")
    return Sources(store, order, notices, builder)


def _alias(store: BuildpackStore, desc: BuildpackDescriptor, version: str, notices: list[str]) -> None:
    if version in store.versions(desc.id):
        return
    store.add(replace(desc, info=replace(desc.info, version=version)))
    notices.append(f"{desc.id}@{version} requested; the stand-in {desc.key} plays that version")


def _alias_order_versions(store: BuildpackStore, order: tuple[OrderGroup, ...], notices: list[str]) -> None:
    for g in order:
        for el in g.group:
            have = store.versions(el.id)
            if el.version and have and el.version not in have and len(have) == 1:
                _alias(store, store.lookup(el.id, have[0]), el.version, notices)


def _pin(store: BuildpackStore, el: GroupElement) -> GroupElement:
    """pack resolves an order entry without a version to the only version on the builder."""
    if el.version:
        return el
    return replace(el, version=store.lookup(el.id).version)


def resolve_sources(builder: Path | str | None = None, buildpacks: Sequence[Path | str] | None = None,
                    log: Logger | None = None, buildpack_store: Sequence[Path | str] = ()) -> Sources:
    """What `cnbsim build` uses: `--buildpack` refs (one group), a builder.toml, or the default builder."""
    saved_in = store_dirs(buildpack_store)
    if not buildpacks:
        return resolve_builder(read_builder_toml(Path(builder) if builder else DEFAULT_BUILDER), log, saved_in)
    known: BuildpackStore | None = None
    store = BuildpackStore()
    group = []
    for ref in buildpacks:
        text = str(ref)
        path = Path(text)
        package = parse_source(text) if text.startswith("oci:") else None
        if package is not None:
            main = _add_buildpackage(store, *package)[0]
            group.append(GroupElement(main.id, main.version))
            continue
        if path.exists() or _is_local(text):
            added = _add_dir(store, path.absolute(), f"--buildpack {text}")
            # A package contributes its main buildpack to the group; a buildpacks dir all of its own.
            is_package = path.is_file() or (path / "oci-layout").is_file() or (
                (path / "package.toml").is_file() and not (path / "buildpack.toml").is_file())
            group.extend(GroupElement(d.id, d.version) for d in (added[:1] if is_package else added))
            continue
        bp_id, _, version = text.partition("@")
        is_ref = "/" in text and ("://" in text or ":" in text)
        saved = _saved_buildpackage(text, saved_in) if is_ref else None
        if saved is not None:
            main = _add_buildpackage(store, *saved)[0]
            (log or Logger(stream=None)).info(f"Notice: {text}: using the saved buildpackage {saved[0]} ({main.key})")
            group.append(GroupElement(main.id, main.version))
            continue
        stub = stub_for_uri(text) if is_ref else None
        desc = store.add(read_buildpack_toml(stub / "buildpack.toml")) if stub else None
        if desc is None:
            if known is None:
                known = (resolve_builder(read_builder_toml(Path(builder)), log, saved_in).store if builder
                         else _known_store())
            try:
                desc = store.add(known.lookup(bp_id, version))
            except ConfigError:
                raise ConfigError(f"unknown buildpack '{text}'",
                                  hint="give a buildpack directory, or one of: "
                                       + ", ".join(sorted({d.id for d in known.all()})))
        for inner in _composite_parts(known, desc) if known is not None else ():
            store.add(inner)
        group.append(GroupElement(desc.id, desc.version))
    return Sources(store, (OrderGroup(tuple(group)),), [])


def _composite_parts(known: BuildpackStore, desc: BuildpackDescriptor) -> list[BuildpackDescriptor]:
    out = []
    for g in desc.order:
        for el in g.group:
            inner = known.lookup(el.id, el.version)
            out.append(inner)
            out.extend(_composite_parts(known, inner))
    return out
