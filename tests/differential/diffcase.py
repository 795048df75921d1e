"""A seeded generator of lifecycle cases: real buildpack directories, an order, an app, launches.

One case is a dict of files (path -> text, executable) plus the Platform API and the launches
to try; `generate(seed, index)` is deterministic, so a failing case is replayed from its seed
and index alone. Buildpacks record the env and args they saw under `<root>/record/`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import tomli_w

PLATFORM_APIS = ("0.7", "0.8", "0.9", "0.10", "0.11", "0.12", "0.13", "0.14", "0.15")
GOOD_APIS = ("0.7", "0.8", "0.9", "0.10", "0.11", "0.12")
BAD_APIS = ("0.6", "0.13", "1.0", "0.x")
MEDIA_TYPES = {"cdx": "application/vnd.cyclonedx+json", "spdx": "application/spdx+json",
               "syft": "application/vnd.syft+json"}
DEP_NAMES = ("dep-a", "dep-b", "dep-c")
LAYER_NAMES = ("a", "a-b", "deps", "l1", "tools")
PROCESS_TYPES = ("web", "worker", "task")
ENV_VARS = ("V1", "V2", "V3", "PATH", "LD_LIBRARY_PATH")
ENV_SUFFIXES = ("", ".append", ".prepend", ".override", ".default", ".delim", ".foo")

# A shell process prints what a user would check: its args, its working dir, its env.
SHOW = 'echo "ARGS:$*"; echo "PWD:$(pwd)"; env | LC_ALL=C sort | grep -v "^_=\\|^SHLVL=\\|^OLDPWD="'


@dataclass(frozen=True)
class Launch:
    """One launcher run: `--process TYPE` (or none: /cnb/lifecycle/launcher), args, extra env.

    TYPE `@k` is the k-th of the process types the build declared."""

    process: str | None
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass
class Case:
    seed: str
    index: int
    platform_api: str
    files: dict[str, tuple[str, bool]] = field(default_factory=dict)
    launches: list[Launch] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)        # features present, for known-difference rules

    def add(self, path: str, text: str, exe: bool = False) -> None:
        self.files[path] = (text, exe)

    def describe(self) -> str:
        """Every file of the case, for a failure message a person can act on."""
        out = [f"# case {self.seed}:{self.index}  CNB_PLATFORM_API={self.platform_api}"]
        for path in sorted(self.files):
            text, exe = self.files[path]
            out.append(f"--- {path}{' (x)' if exe else ''}\n{text.rstrip()}")
        for launch in self.launches:
            out.append(f"--- launch: process={launch.process} args={list(launch.args)} env={launch.env}")
        return "\n".join(out)


def _toml(data: dict[str, Any]) -> str:
    return tomli_w.dumps(data)


def _sh(text: str) -> str:
    """Single-quote `text` for bash."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


class _Gen:
    def __init__(self, seed: str, index: int) -> None:
        self.r = random.Random(f"{seed}:{index}")
        self.declared: list[str] = []      # the SBOM formats the buildpack being generated declares
        self.case = Case(seed, index, self.r.choices(PLATFORM_APIS, weights=(1, 1, 1, 1, 1, 2, 1, 1, 6))[0])

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    # -- buildpacks --------------------------------------------------------------------------

    def api(self, tag: str) -> str:
        if self.chance(0.03):
            api = self.r.choice(BAD_APIS)
            self.case.tags.add(f"bad-api:{tag}:{api}")
            return api
        return self.r.choice(GOOD_APIS)

    def descriptor(self, bp_id: str, version: str, api: str) -> dict[str, Any]:
        info: dict[str, Any] = {"id": bp_id, "version": version}
        if self.chance(0.3):
            info["homepage"] = f"https://example.com/{bp_id}"
        if self.chance(0.15):
            info["clear-env"] = True
        if self.chance(0.7):
            kinds = self.r.sample(sorted(MEDIA_TYPES), self.r.choice((1, 2, 3, 3)))
            info["sbom-formats"] = [MEDIA_TYPES[k] + (";version=1" if self.chance(0.1) else "") for k in kinds]
            self.declared = kinds
        else:
            self.declared = []
        if api == "0.12" and self.chance(0.2):
            info["exec-env"] = [self.r.choice(("production", "test", "*"))]
            self.case.tags.add("exec-env")
        return {"api": api, "buildpack": info}

    def targets(self, desc: dict[str, Any]) -> None:
        roll = self.r.random()
        if roll < 0.12:
            targets = []
            for _ in range(self.r.randint(1, 2)):
                t: dict[str, Any] = {"os": self.r.choice(("linux", "linux", "windows"))}
                if self.chance(0.7):
                    t["arch"] = self.r.choice(("amd64", "amd64", "arm64"))
                if self.chance(0.4):
                    t["distros"] = [self.r.choice(({"name": "debian", "version": "12"}, {"name": "debian"},
                                                   {"name": "ubuntu", "version": "18.04"}))]
                targets.append(t)
            desc["targets"] = targets
            self.case.tags.add("targets")
        elif roll < 0.22:
            desc["stacks"] = [{"id": s} for s in self.r.sample(
                ("io.buildpacks.stacks.bionic", "*", "io.buildpacks.stacks.jammy"), self.r.randint(1, 2))]
            self.case.tags.add("stacks")

    def detect_script(self, key: str) -> str:
        code = self.r.choices((0, 100, 1, 3), weights=(86, 9, 3, 2))[0]
        plan = ""
        if code == 0:
            roll = self.r.random()
            if roll < 0.02:
                plan = "[[provides]\nname = \n"               # bad TOML
            elif roll < 0.04:
                plan = _toml({"requires": [{"name": self.r.choice(DEP_NAMES), "version": "1.0"}]})
            else:
                data = self.plan_option()
                if self.chance(0.2):
                    data["or"] = [self.plan_option() for _ in range(self.r.randint(1, 2))]
                plan = _toml(data)
        body = f"echo detect {key}\necho {_sh(plan)} >> \"$2\"\n" if plan else f"echo detect {key}\n"
        return self.script(key, "detect", body + f"exit {code}\n")

    def plan_option(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        roll = self.r.random()
        names = self.r.sample(DEP_NAMES, self.r.choice((1, 1, 2)))
        provides = names if roll < 0.65 else []
        requires = names if roll < 0.55 or 0.65 <= roll < 0.75 else []
        if provides:
            out["provides"] = [{"name": n} for n in provides]
        if requires:
            out["requires"] = [{"name": n, **({"metadata": {"version": "1.2", "launch": self.chance(0.5)}}
                                               if self.chance(0.5) else {})} for n in requires]
        return out

    def script(self, key: str, phase: str, body: str) -> str:
        """A bin/detect or bin/build that records its env, args and run count, then does `body`."""
        rec = '"$CNB_BUILDPACK_DIR/../../../record"'
        return ("#!/bin/bash\nset -e\n"
                f"mkdir -p {rec}\n"
                f"env -0 > {rec}/{key}.{phase}.env\n"
                f"printf '%s\\0' \"$@\" > {rec}/{key}.{phase}.args\n"
                f"echo run >> {rec}/{key}.{phase}.runs\n"
                + (f"cp \"$3\" {rec}/{key}.build.plan\n" if phase == "build" else "")
                + body)

    def build_script(self, key: str, bp_dir: str, api: str) -> str:
        """bin/build copies a generated payload into its layers dir (the layers, tomls, SBOMs)."""
        payload = f"{bp_dir}/payload"
        self.payload(payload, api)
        code = 0 if self.chance(0.98) else self.r.choice((1, 7))
        return self.script(key, "build", f"echo build {key}\nif [ -d \"$CNB_BUILDPACK_DIR/payload\" ]; then "
                                          f"cp -a \"$CNB_BUILDPACK_DIR/payload/.\" \"$1/\"; fi\n"
                                          f"exit {code}\n")

    def env_dir(self, where: str, dir_name: str, owner: str) -> None:
        for _ in range(self.r.randint(0, 3)):
            var = self.r.choice(ENV_VARS)
            suffix = self.r.choice(ENV_SUFFIXES)
            value = self.r.choice(("|", ":", ",")) if suffix == ".delim" else f"{owner}-{dir_name}-{var}"
            if var in ("PATH", "LD_LIBRARY_PATH") and suffix != ".delim":
                value = f"/opt/{owner}/{dir_name}"
            if self.chance(0.1):
                value += "\n"
            self.case.add(f"{where}/{dir_name}/{var}{suffix}", value)
            self.case.tags.add("env")

    def payload(self, payload: str, api: str) -> None:
        owner = payload.split("/")[1]
        layers = self.r.sample(LAYER_NAMES, self.r.choice((0, 1, 1, 2, 3)))
        layer_types: dict[str, dict[str, bool]] = {}
        tools: list[str] = []                                 # layers with a bin/tool-<layer>
        for name in layers:
            roll = self.r.random()
            types = {k: self.chance(0.55) for k in ("launch", "build", "cache")}
            if roll < 0.005:
                text = "[types\nlaunch = true\n"
                self.case.tags.add("bad-layer-toml")
            elif roll < 0.01:
                text = _toml({"launch": True})
            elif roll < 0.12:
                text = ""
                types = {}
            else:
                data: dict[str, Any] = {"types": types}
                if self.chance(0.4):
                    data["metadata"] = {"version": "1.0", "nested": {"k": [1, 2]}}
                text = _toml(data)
            layer_types[name] = types
            self.case.add(f"{payload}/{name}.toml", text)
            if self.chance(0.1):
                continue                                      # a <layer>.toml without its directory
            d = f"{payload}/{name}"
            self.case.add(f"{d}/content.txt", f"{owner} {name}\n")
            for env_name in ("env", "env.build", "env.launch", f"env.launch/{self.r.choice(PROCESS_TYPES)}"):
                if self.chance(0.4):
                    self.env_dir(d, env_name, f"{owner}-{name}")
            if self.chance(0.5):
                tools.append(name)
                self.case.add(f"{d}/bin/tool-{name}", f"#!/bin/bash\necho tool-{name} \"$@\"\n{SHOW}\n", exe=True)
            if self.chance(0.2):
                self.case.add(f"{d}/lib/lib{name}.so", "")
            if self.chance(0.15):
                self.case.add(f"{d}/profile.d/{name}.sh", f"export PROF_{name.replace('-', '_')}=from-profile\n")
                self.case.tags.add("profile")
            if self.chance(0.1):
                sub = f"/{self.r.choice(PROCESS_TYPES)}" if self.chance(0.3) else ""
                self.case.add(f"{d}/exec.d{sub}/set-v3",
                              f"#!/bin/bash\necho 'V3 = \"execd-{owner}-{name}\"' >&3\n", exe=True)
                self.case.tags.add("exec.d")
        if self.chance(0.25):
            self.sbom_files(payload, list(layer_types))
        if self.chance(0.65):
            self.case.add(f"{payload}/launch.toml", self.launch_toml(api, owner, layers, tools))
        if self.chance(0.15):
            self.case.add(f"{payload}/build.toml", self.build_toml())
        if self.chance(0.1):
            self.case.add(f"{payload}/store.toml", _toml({"metadata": {"k": "v", "n": 1}}))
        if self.chance(0.05):
            self.case.add(f"{payload}/stray/file.txt", "not a layer\n")

    def sbom_files(self, payload: str, layers: list[str]) -> None:
        self.case.tags.add("sbom")
        for _ in range(self.r.randint(1, 3)):
            owner = self.r.choice(["launch", "build", *layers, *layers, "nolayer"])
            if self.declared and self.chance(0.85):
                fmt = self.r.choice(self.declared)
            else:
                fmt = self.r.choices(("cdx", "spdx", "syft", "xml"), weights=(8, 4, 4, 1))[0]
            self.case.add(f"{payload}/{owner}.sbom.{fmt}.json",
                          json.dumps({"bomFormat": fmt, "owner": owner, "n": self.r.randint(1, 9)}))

    def launch_toml(self, api: str, owner: str, layers: list[str], tools: list[str]) -> str:
        if self.chance(0.02):
            self.case.tags.add("bad-launch-toml")
            return "[[processes]\n"
        old = api in ("0.7", "0.8")
        data: dict[str, Any] = {}
        procs = []
        for ptype in self.r.sample(PROCESS_TYPES, self.r.choice((0, 1, 1, 2, 3))):
            p: dict[str, Any] = {"type": ptype}
            tool = [f"tool-{n}" for n in (tools if tools and self.chance(0.8) else layers)]
            shell_cmd = f"echo {ptype}-{owner} $V1; {SHOW}"
            if old:
                direct = self.chance(0.4)
                if direct:
                    p["command"] = self.r.choice(["bash", *tool])
                    p["args"] = ["-c", SHOW, "argv0"] if p["command"] == "bash" else ["x"]
                    p["direct"] = True
                else:
                    p["command"] = shell_cmd
                    if self.chance(0.3):
                        p["args"] = ["a1", "$V2"]
                    if self.chance(0.2):
                        p["direct"] = False
            else:
                if self.chance(0.5) or not tool:
                    p["command"] = ["bash", "-c", SHOW, "argv0"] if self.chance(0.5) else ["bash", "-c"]
                    if p["command"] == ["bash", "-c"]:
                        p["args"] = [SHOW, "argv0", "given"]
                else:
                    p["command"] = [self.r.choice(tool)]
                    if self.chance(0.5):
                        p["args"] = ["x", "y"]
                if self.chance(0.02):
                    p["direct"] = True
                    self.case.tags.add("direct-on-new-api")
            if self.chance(0.02):
                p["command"] = ["bash"] if old else "bash"          # the wrong type for this API
                self.case.tags.add("bad-command-type")
            if self.chance(0.4 if not procs else 0.03):        # now and then two defaults (an error)
                p["default"] = True
            if self.chance(0.12):
                p["working-dir"] = self.r.choice(("sub", "sub", "missing-dir"))
                self.case.tags.add("working-dir")
            if self.case.platform_api == "0.15" and self.chance(0.1):
                p["exec-env"] = [self.r.choice(("production", "test", "*"))]
            procs.append(p)
        if procs:
            data["processes"] = procs
        if self.chance(0.3):
            data["labels"] = [{"key": f"label.{owner}.{i}", "value": f"v{i}"} for i in range(self.r.randint(1, 2))]
        if self.chance(0.2):
            data["slices"] = [{"paths": [self.r.choice(("*.txt", "sub/*", "main.py"))]}]
        if self.chance(0.1):
            entry: dict[str, Any] = {"name": f"bom-{owner}", "metadata": {"version": "9"}}
            if self.chance(0.2):
                entry["version"] = "1"
            data["bom"] = [entry]
            self.case.tags.add("bom")
        return _toml(data)

    def build_toml(self) -> str:
        data: dict[str, Any] = {}
        if self.chance(0.4):
            data["unmet"] = [{"name": self.r.choice(DEP_NAMES)}]
        if self.chance(0.3):
            data["bom"] = [{"name": "build-bom", "metadata": {"sha": "x"}}]
            self.case.tags.add("bom")
        return _toml(data)

    # -- the whole case --------------------------------------------------------------------

    def generate(self) -> Case:
        case = self.case
        components: list[tuple[str, str]] = []
        for i in range(self.r.randint(1, 5)):
            bp_id = self.r.choice((f"t/b{i}", f"b{i}", f"org/sub/b{i}"))
            version = self.r.choice(("1", f"0.{i}.1"))
            components.append((bp_id, version))
        if self.chance(0.1):                                # a second version of the same id
            components.append((components[0][0], "9.9"))
        for bp_id, version in components:
            key = f"{bp_id.replace('/', '_')}@{version}"
            bp_dir = f"buildpacks/{bp_id.replace('/', '_')}/{version}"
            api = self.api(f"{bp_id}@{version}")
            desc = self.descriptor(bp_id, version, api)
            self.targets(desc)
            case.add(f"{bp_dir}/buildpack.toml", _toml(desc))
            if self.chance(0.01):
                case.tags.add("no-bin-detect")
            else:
                case.add(f"{bp_dir}/bin/detect", self.detect_script(key), exe=True)
            case.add(f"{bp_dir}/bin/build", self.build_script(key, bp_dir, api), exe=True)
        refs: list[tuple[str, str]] = list(components)
        for j in range(self.r.choice((0, 0, 1, 2))):
            bp_id, version = f"comp/c{j}", "1"
            groups = [{"group": [self.order_el(refs) for _ in range(self.r.randint(1, 3))]}
                      for _ in range(self.r.randint(1, 2))]
            desc = self.descriptor(bp_id, version, self.api(f"{bp_id}@{version}"))
            desc["order"] = groups
            case.add(f"buildpacks/comp_c{j}/1/buildpack.toml", _toml(desc))
            case.tags.add("composite")
            refs.append((bp_id, version))
        order = [{"group": [self.order_el(refs) for _ in range(self.r.randint(1, 4))]}
                 for _ in range(self.r.randint(1, 3))]
        case.add("order.toml", _toml({"order": order}))
        self.app_and_platform()
        return case

    def order_el(self, refs: list[tuple[str, str]]) -> dict[str, Any]:
        bp_id, version = self.r.choice(refs)
        el: dict[str, Any] = {"id": bp_id, "version": version}
        if self.chance(0.3):
            el["optional"] = True
            self.case.tags.add("optional")
        return el

    def app_and_platform(self) -> None:
        case = self.case
        case.add("app/main.py", "print('hi')\n")
        case.add("app/notes.txt", "notes\n")
        case.add("app/sub/inner.txt", "inner\n")
        if self.chance(0.2):
            case.add("app/.profile", "export PROF_APP=from-app-profile\n")
        case.add("platform/.keep", "")
        for name, value in (("V1", "platform-v1"), ("PATH", "/platform/bin"), ("V2.append", "literal"),
                            ("LANG", "C")):
            if self.chance(0.25):
                case.add(f"platform/env/{name}", value)
                case.tags.add("platform-env")
        if self.chance(0.15):
            target: dict[str, Any] = {"os": "linux", "arch": self.r.choice(("amd64", "arm64"))}
            if self.chance(0.6):
                target["distro"] = self.r.choice(({"name": "ubuntu", "version": "18.04"},
                                                  {"name": "debian", "version": "12"}))
            case.add("layers/analyzed.toml", _toml({"run-image": {"reference": "", "target": target}}))
            case.tags.add("analyzed")
        for _ in range(self.r.randint(1, 3)):
            case.launches.append(self.launch())

    def launch(self) -> Launch:
        env: dict[str, str] = {}
        if self.chance(0.5):
            env["V1"] = "user-v1"
        if self.chance(0.3):
            env["V2"] = "user-v2"
        if self.chance(0.1):
            env["CNB_EXEC_ENV"] = "test"
        roll = self.r.random()
        if roll < 0.6:
            args = self.r.choice(((), (), ("u1",), ("u1", "$V1")))
            # "@k": the k-th process type the build declared (the harness resolves it); now and
            # then a type that may not exist
            ptype = self.r.choice(PROCESS_TYPES) if self.chance(0.1) else f"@{self.r.randint(0, 2)}"
            return Launch(ptype, args, env)
        if roll < 0.75:
            return Launch(None, ("--", "bash", "-c", SHOW, "argv0", "$V1"), env)
        if roll < 0.9:
            return Launch(None, ('echo "$V1"; ' + SHOW,), env)
        return Launch(None, self.r.choice(((), ("--",), ("echo", "$V1", "plain"))), env)


def generate(seed: str, index: int) -> Case:
    """The case `index` of the run `seed`: the same pair always gives the same case."""
    return _Gen(seed, index).generate()
