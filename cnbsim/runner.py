"""Running a built PlanQK service like `docker run` would: inputs, env, launcher, sandbox, result.

The equivalent of PlanQK's recipe
`docker run -e BASE64_ENCODED=false -v data.json:/var/input/data/data.json
 -v params.json:/var/input/params/params.json -v out:/var/runtime/output IMAGE`: the process is
started through the launcher (`cnbsim lifecycle launcher`), inside bubblewrap when available.
Only the inputs given are mounted (the project's own `input/` is not an input). With named
inputs (`inputs`), every input is mounted in PlanQK's v2 layout instead, one
`/var/runtime/input/<name>.json` per parameter. The result is read from
`/var/runtime/output/output.json` (PlanQK's v2 runtime writes it there) or else from the
`PlanQK:Job:MultilineResult` block on stdout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from cnbsim import sandbox
from cnbsim.errors import ConfigError, LaunchError
from cnbsim.fs import TreeTooDeep, copy_tree, temp_dir
from cnbsim.model.buildpack import escape_id
from cnbsim.model.states import SandboxMode
from cnbsim.output import BuiltOutput
from cnbsim.phase.launch import launch_layers
from cnbsim.platform import IMAGE_APP_DIR, IMAGE_LAYERS_DIR
from cnbsim.tomlio import parse_json, read_json, read_toml

RESULT_MARKER = "PlanQK:Job:MultilineResult"
INPUT_ROOT_VAR = "PLANQK_INPUT_ROOT"      # the runtime's configurable input root (default /var/input)
IMAGE_INPUT_ROOT = "/var/input"
IMAGE_INPUT_DIRECTORY = "/var/runtime/input"     # PlanQK's v2 runtime: INPUT_DIRECTORY
IMAGE_OUTPUT_DIRECTORY = "/var/runtime/output"   # and OUTPUT_DIRECTORY
OUTPUT_FILES = ("output.json", "output.txt")
MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([^']+)'", re.MULTILINE)
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def read_json_input(path: Path | str, what: str) -> Any:
    """A `--data`/`--params` JSON file, bounded in size and depth (tomlio's limits)."""
    return read_json(Path(path), what=f"--{what} file")


@dataclass
class Job:
    """A started process and what it needs cleaned up."""

    process: subprocess.Popen
    tmp: tempfile.TemporaryDirectory
    sandboxed: bool
    notice: str = ""        # one line the caller shows (e.g. that the run shares the host's network)
    published: Mapping[int, int] = field(default_factory=dict)   # port inside -> port on the host's 127.0.0.1

    @property
    def output_dir(self) -> Path:
        """The host dir mounted at /var/runtime/output (gone after close())."""
        return Path(self.tmp.name) / "output"

    def result(self, stdout: str) -> tuple[bool, Any]:
        """The job's result: the v2 output file when the process wrote one, else the result block on
        stdout; (False, None) when there is neither. Call it before close()."""
        for name in OUTPUT_FILES:
            path = self.output_dir / name
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                parsed, value = _json_value(text)
                return True, value if parsed else text    # output.txt of a custom runtime: a bare string
        return parse_result(stdout)

    def wait_listening(self, port: int, timeout: float, output: Callable[[], str] = str,
                       deadline: float | None = None) -> None:
        """Return once the process listens on its `port` (a published one); LaunchError when it exits
        first or does not listen within `timeout` seconds, or by `deadline` (time.monotonic()) when
        given (`output()`: what it printed, for the message)."""
        netns = getattr(self.process, "cnbsim_child", 0)    # the sandbox's own network, or the host's
        deadline = time.monotonic() + timeout if deadline is None else deadline
        delay = 0.005
        while not sandbox.listening(port, netns):
            code = self.process.poll()
            if code is not None:
                raise LaunchError(f"the process exited with code {code} before it listened on port {port}"
                                  + _tail(output()))
            if time.monotonic() > deadline:
                raise LaunchError(f"the process did not listen on port {port} within {timeout:g} s" + _tail(output()),
                                  hint="check the port it binds (e.g. its PORT env var) and that it binds 0.0.0.0")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def stop(self, grace: float = 5.0) -> int:
        """As `docker stop`: SIGTERM to the process, SIGKILL to its whole tree after `grace` seconds."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.close()
        return self.process.returncode

    def close(self) -> None:
        """Kill what is left of the process tree and remove the run's temp dirs."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        sandbox.release(self.process)
        self.tmp.cleanup()


@dataclass(frozen=True)
class RunRequest:
    output: BuiltOutput
    process_type: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    data: Any = None            # JSON values (already parsed); None = no input
    params: Any = None
    sandbox: SandboxMode | str = SandboxMode.AUTO
    writable_workspace: bool = False   # unsandboxed runs only: the sandbox's /workspace is always a writable copy
    inputs: Mapping[str, Any] = field(default_factory=dict)   # named inputs: the v2 layout
    network: str = "bridge"     # as docker run: bridge (own network, outbound only) | none | host
    publish: tuple[tuple[int, int], ...] = ()   # (host port, port inside), as docker run -p 127.0.0.1:HOST:PORT
    user_command: bool = False  # args are a user-provided command (docker run --entrypoint launcher IMAGE ARGS)


def start(req: RunRequest, *, stdout: Any = None, stderr: Any = None) -> Job:
    """Start the process (not waiting); stdout/stderr as for subprocess.Popen."""
    if req.process_type is not None and req.output.metadata.process(req.process_type) is None:
        known = ", ".join(p.type for p in req.output.metadata.processes) or "none"
        raise LaunchError(f"process type {req.process_type} was not found", field="--process",
                          hint=f"this build has: {known}")
    network = sandbox.parse_network(req.network, tuple(sandbox.Network))
    sandboxed = sandbox.use_sandbox(req.sandbox)
    if not sandboxed and req.output.image_paths:
        raise ConfigError("this output was built in the image layout (/workspace, /layers): it runs only in the "
                          "sandbox, " + (sandbox.available() or "but --sandbox never was given"), file=req.output.path,
                          hint="run with --sandbox auto, or rebuild with cnbsim build --sandbox never")
    if not sandboxed and network is sandbox.Network.NONE:
        raise ConfigError("--network none needs the sandbox", field="--network",
                          hint="install bubblewrap, or run with --network host")
    if req.publish and network is sandbox.Network.NONE:
        raise ConfigError("a port cannot be published with --network none (the process has only lo)",
                          field="--publish", hint="use the default network (bridge) or --network host")
    tmp = temp_dir("run")
    try:
        return _start(req, tmp, sandboxed, network, stdout, stderr)
    except BaseException:
        tmp.cleanup()
        raise


def _start(req: RunRequest, tmp: tempfile.TemporaryDirectory, sandboxed: bool, network: sandbox.Network,
           stdout: Any, stderr: Any) -> Job:
    mounts = _input_files(req, Path(tmp.name))
    output_dir = Path(tmp.name) / "output"
    output_dir.mkdir()
    env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8",
           "HOME": sandbox.HOME if sandboxed else os.environ.get("HOME", "/tmp"), "CNB_PLATFORM_API": "0.15"}
    if req.data is not None or req.params is not None:
        env["BASE64_ENCODED"] = "false"   # plain JSON files, as the PlanQK docker recipes say
    env.update(req.env)
    # -I: the launcher's own imports ignore the app dir and PYTHON* variables of the launch env
    launcher = [sys.executable, "-I", "-m", "cnbsim.cli", "lifecycle", "launcher"]
    # as `docker run IMAGE`: the entrypoint is /cnb/process/<type> of the build's --default-process, else of
    # the buildpacks' default process, else /cnb/lifecycle/launcher (lifecycle phase/exporter.go entrypoint)
    # a user-provided command is what `docker run --entrypoint launcher IMAGE ARGS` runs (lifecycle
    # cmd/launcher/cli/launcher.go: no process type, so the args are the command)
    process_type = None if req.user_command else req.process_type or req.output.default_process
    if process_type:
        launcher += ["--process", process_type]
    launcher += list(req.args)
    notice = ""
    if sandboxed and network is sandbox.Network.BRIDGE and sandbox.pasta_available():
        notice = f"note: {sandbox.pasta_available()}: the run shares the host's network"
        network = sandbox.Network.HOST
    published = {inside: host for host, inside in req.publish}
    if network is not sandbox.Network.BRIDGE or not sandboxed:
        # docker run: "Published ports are discarded when using host network mode"; the process's port is the host's
        for host, inside in req.publish:
            if host != inside:
                notice = "\n".join(filter(None, [notice, f"note: the run has the host's network, so --publish "
                                                 f"{host}:{inside} is the process's own port {inside} on the host"]))
        published = {inside: inside for _, inside in req.publish}
    try:
        if sandboxed:
            env.update({"CNB_LAYERS_DIR": IMAGE_LAYERS_DIR, "CNB_APP_DIR": IMAGE_APP_DIR})
            view = run_view(req.output, Path(tmp.name), mounts, {IMAGE_OUTPUT_DIRECTORY: output_dir}, network,
                            ports=tuple(req.publish) if network is sandbox.Network.BRIDGE else ())
            proc = sandbox.spawn(view, launcher, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        else:
            # the image paths, redirected to tmp (the runtime's own variables); the v2 input dir exists
            # only when named inputs are given, as in a container
            env.update({"CNB_LAYERS_DIR": str(req.output.layers_dir), "CNB_APP_DIR": str(req.output.workspace),
                        INPUT_ROOT_VAR: str(Path(tmp.name) / "input"),
                        "INPUT_DIRECTORY": str(Path(tmp.name) / "runtime-input"),
                        "OUTPUT_DIRECTORY": str(output_dir)})
            proc = subprocess.Popen(launcher, env=env, cwd=req.output.workspace, stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
    except OSError as exc:
        raise ConfigError(f"cannot start the process: {exc.strerror or exc}")
    return Job(proc, tmp, sandboxed, notice, published)


def _tail(text: str, lines: int = 20) -> str:
    shown = text.rstrip("\n").splitlines()[-lines:]
    return (f"; its last {len(shown)} lines of output:\n" + "\n".join(shown)) if shown else "; it printed nothing"


def run_view(output: BuiltOutput, tmp: Path, inputs: Mapping[str, Path], outputs: Mapping[str, Path],
             network: sandbox.Network, ports: tuple[tuple[int, int], ...] = ()) -> sandbox.View:
    """A container of the image: a throwaway copy of the workspace at /workspace (writable), the
    launch layers only at /layers (read-only), the inputs at /var/input (read-only), the output
    dirs (writable), a run image's root."""
    workspace = tmp / "workspace"
    try:
        copy_tree(output.workspace, workspace, digest=False)
    except (OSError, TreeTooDeep) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot copy the build's workspace for the run: {problem}",
                          file=Path(exc.filename) if isinstance(exc, OSError) and exc.filename else output.workspace,
                          hint="what the build left in /workspace must be readable (a container's copy of the "
                               "image would have it)") from None
    binds = [sandbox.Bind(str(workspace), IMAGE_APP_DIR, writable=True),
             sandbox.Bind(str(output.layers_dir / "config"), f"{IMAGE_LAYERS_DIR}/config")]
    pointed_at: list[str] = []
    for bp_id, layers in launch_layers(output.layers_dir, output.metadata):
        for layer in layers:
            binds.append(sandbox.Bind(str(layer), f"{IMAGE_LAYERS_DIR}/{escape_id(bp_id)}/{layer.name}"))
            pointed_at += _outside_links(layer)
    if not output.image_paths:
        # built on the host: its layers hold host paths to the output (read-only, as /layers)
        binds.append(sandbox.Bind(str(output.path), str(output.path)))
    binds += [sandbox.Bind(p, p) for p in sandbox.interpreter_paths(pointed_at) + sandbox.launcher_paths()]
    binds += [sandbox.Bind(str(host), image_path) for image_path, host in sorted(inputs.items())]
    binds += [sandbox.Bind(str(host), image_path, writable=True) for image_path, host in sorted(outputs.items())]
    uid, gid = sandbox.user_ids()
    return sandbox.View(binds=tuple(binds), cwd=IMAGE_APP_DIR, root=sandbox.Root.RUN, network=network,
                        uid=uid, gid=gid, max_processes=sandbox.RUN_MAX_PROCESSES,
                        tmpfs=(IMAGE_LAYERS_DIR,), read_only=(IMAGE_LAYERS_DIR,), ports=ports)


def _outside_links(layer: Path) -> list[str]:
    """Absolute symlink targets in a layer that point out of the image (e.g. the cpython stub's
    link to a host interpreter): the run shows them, as the image would hold them."""
    out = []
    for dirpath, dirnames, filenames in os.walk(layer):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                target = os.readlink(path)
                if target.startswith("/") and not target.startswith((IMAGE_LAYERS_DIR + "/", IMAGE_APP_DIR + "/")):
                    out.append(target)
    return out


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the exit code, the result (found, value) and the stub-build hint, if any."""

    code: int
    found: bool
    result: Any
    hint: str | None


def run_attached(req: RunRequest, out: TextIO, err: TextIO) -> Outcome:
    """Run to the end, copying the process's stdout to `out` and its stderr to `err` as they come;
    with published ports, say on `err` where each is reached once the process listens on it."""
    job = start(req, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if job.notice:
        err.write(job.notice + "\n")
    if job.published:
        threading.Thread(target=_say_listening, args=(job, err), daemon=True).start()
    chunks: list[str] = []
    errors: list[str] = []
    assert job.process.stdout is not None and job.process.stderr is not None
    copier = threading.Thread(target=_copy, args=(job.process.stderr, err, errors), daemon=True)
    copier.start()
    try:
        _copy(job.process.stdout, out, chunks)
        code = job.process.wait()
        copier.join()
        found, value = job.result("".join(chunks))
    except KeyboardInterrupt:
        job.process.terminate()
        job.process.wait()
        raise
    finally:
        job.close()
    hint = stub_hint(req.output, "".join(errors) + "".join(chunks)) if code != 0 else None
    return Outcome(code, found, value, hint)


def _say_listening(job: Job, err: TextIO) -> None:
    for inside, host in job.published.items():
        try:
            job.wait_listening(inside, timeout=24 * 3600)
        except LaunchError:
            return          # it ended first: its exit code says the rest
        err.write(f"cnbsim: port {inside} is published at http://127.0.0.1:{host}\n")
        err.flush()


def parse_publish(value: str) -> tuple[int, int]:
    """`--publish` as docker's `-p`: `PORT` (a free host port) or `HOSTPORT:PORT`, on 127.0.0.1."""
    parts = value.split(":")
    if len(parts) == 3 and parts[0] in ("127.0.0.1", "localhost"):
        parts = parts[1:]
    try:
        numbers = [int(p) if p else 0 for p in parts]
    except ValueError:
        numbers = []
    if len(parts) not in (1, 2) or not numbers or not 0 < numbers[-1] < 65536 or not 0 <= numbers[0] < 65536:
        raise ConfigError(f"--publish {value!r} is not PORT or HOSTPORT:PORT", field="--publish",
                          hint="e.g. --publish 8080 (a free host port) or --publish 9000:8080; ports are published "
                               "on 127.0.0.1 only")
    inside = numbers[-1]
    host = numbers[0] if len(numbers) == 2 and numbers[0] else free_port()
    return host, inside


def _copy(stream: IO[bytes], to: TextIO, into: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        into.append(line)
        to.write(line)
        to.flush()


def unmounted_inputs(req: RunRequest) -> str | None:
    """A note when the project has input/data.json or input/params.json that the run does not mount
    (a container sees only the inputs given); None when there is nothing to say."""
    given = {"data": req.data is not None or "data" in req.inputs,
             "params": req.params is not None or "params" in req.inputs}
    local = [name for name, is_given in given.items()
             if not is_given and (req.output.workspace / "input" / f"{name}.json").is_file()]
    if not local:
        return None
    files = " and ".join(f"input/{name}.json" for name in local)
    options = " ".join(f"--{name} input/{name}.json" for name in local)
    return (f"cnbsim: {files} of the project {'is' if len(local) == 1 else 'are'} not mounted (a container sees only "
            f"the inputs given), so the job runs without {'it' if len(local) == 1 else 'them'}; "
            f"pass {options} to use {'it' if len(local) == 1 else 'them'}")


def _input_files(req: RunRequest, tmp: Path) -> dict[str, Path]:
    """Write the given inputs as JSON files under `tmp`: {image path: host file}. Named inputs put
    every input in the v2 layout (tmp/runtime-input/<name>.json); else data and params go to
    /var/input/<name>/<name>.json (tmp/input/<name>/<name>.json), as PlanQK's docs mount them."""
    given = {name: value for name, value in (("data", req.data), ("params", req.params)) if value is not None}
    mounts: dict[str, Path] = {}
    if req.inputs:
        for name, value in {**given, **req.inputs}.items():
            host = tmp / "runtime-input" / f"{name}.json"
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_text(json.dumps(value), encoding="utf-8")
            mounts[f"{IMAGE_INPUT_DIRECTORY}/{name}.json"] = host
        return mounts
    for name, value in given.items():
        host = tmp / "input" / name / f"{name}.json"
        host.parent.mkdir(parents=True)
        host.write_text(json.dumps(value), encoding="utf-8")
        mounts[f"{IMAGE_INPUT_ROOT}/{name}/{name}.json"] = host
    return mounts


def stub_hint(output: BuiltOutput, text: str) -> str | None:
    """One line for a failed run of a stub build whose code imports a package the build recorded but
    did not install (`ModuleNotFoundError` in `text`, the job's output); None otherwise."""
    missing = MISSING_MODULE.findall(text)
    if not missing:
        return None
    module = missing[-1].split(".")[0]
    recorded = stub_requirements(output)
    if not recorded:
        return None
    wanted = _normalized(module)
    named = [req for req in recorded if _normalized(re.split(r"[\s\[<>=!~;@(]", req, maxsplit=1)[0]) == wanted]
    if named:
        what = f"the build recorded {named[0]!r} but did not install it"
    else:
        shown = ", ".join(recorded[:5]) + (", ..." if len(recorded) > 5 else "")
        what = f"the build recorded {len(recorded)} requirement(s) ({shown}) but installed none"
    return (f"cnbsim: No module named '{module}': this is a stub build, {what}; "
            "rebuild with `cnbsim build --installer real` to install the dependencies")


def stub_requirements(output: BuiltOutput) -> list[str]:
    """The requirements the package-manager stubs recorded but did not install (stub mode), in layer order."""
    found: list[str] = []
    for layer_toml in sorted(output.layers_dir.glob("*/*.toml")):
        if layer_toml.name in ("launch.toml", "build.toml", "store.toml"):
            continue
        try:
            meta = read_toml(layer_toml, what="layer metadata").get("metadata", {}).get("cnbsim", {})
        except ConfigError:
            continue
        if isinstance(meta, dict) and meta.get("installer") == "stub":
            found += [req for req in meta.get("requirements", []) if isinstance(req, str) and req not in found]
    return found


def _normalized(name: str) -> str:
    """A distribution or import name compared the way PEP 503 compares names (`qiskit_aer` = `qiskit-aer`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_result(stdout: str) -> tuple[bool, Any]:
    """The value of the last `PlanQK:Job:MultilineResult` block (the runtime prints it last, so a
    marker the user's code printed earlier cannot take its place); (False, None) when there is none."""
    lines = stdout.splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == RESULT_MARKER]
    if len(marks) < 2:
        for line in reversed(lines):  # the single-line form of custom runtimes
            if line.startswith("PlanQK:Job:Result:"):
                return _json_value(line.split(":", 3)[3])
        return False, None
    start_, end = marks[-2], marks[-1]
    return _json_value("\n".join(lines[start_ + 1:end]))


def _json_value(text: str) -> tuple[bool, Any]:
    """(True, value) for JSON within tomlio's size and depth limits, else (False, None): a process's
    result is untrusted input, and a deeply nested one must not crash cnbsim."""
    try:
        return True, parse_json(text, path="the process's result", what="the result")
    except ConfigError:
        return False, None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (as docker picks one for `-p PORT`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running:
    """A started process with its output collected as it comes (stdout and stderr, and both in the
    order they arrived): what `cnb_start` yields and `cnbsim run --publish` waits on."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._lock = threading.Lock()
        self._both: list[str] = []
        self._streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._readers = []
        for name in ("stdout", "stderr"):
            stream = getattr(job.process, name)
            if stream is not None:
                reader = threading.Thread(target=self._read, args=(stream, name), daemon=True)
                reader.start()
                self._readers.append(reader)

    def _read(self, stream: IO[bytes], name: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with self._lock:
                self._both.append(line)
                self._streams[name].append(line)

    def address_for_port(self, port: int) -> str:
        """`127.0.0.1:HOSTPORT` where the process's published `port` is reached (libcnb-test's name)."""
        if port not in self.job.published:
            raise LaunchError(f"port {port} is not published", hint=f"published: {sorted(self.job.published) or 'none'}")
        return f"127.0.0.1:{self.job.published[port]}"

    @property
    def url(self) -> str | None:
        """`http://127.0.0.1:HOSTPORT` of the first published port (None when none is)."""
        return f"http://{self.address_for_port(next(iter(self.job.published)))}" if self.job.published else None

    def logs(self) -> str:
        """What the process printed so far, stdout and stderr in the order they came."""
        with self._lock:
            return "".join(self._both)

    @property
    def stdout(self) -> str:
        with self._lock:
            return "".join(self._streams["stdout"])

    @property
    def stderr(self) -> str:
        with self._lock:
            return "".join(self._streams["stderr"])

    @property
    def exit_code(self) -> int | None:
        """None while it runs."""
        return self.job.process.poll()

    def wait_listening(self, timeout: float) -> None:
        """Until every published port listens (LaunchError with the output's tail if it ends first)."""
        deadline = time.monotonic() + timeout
        for port in self.job.published:
            self.job.wait_listening(port, timeout, self.logs, deadline)

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM, then SIGKILL to the whole tree after `grace` seconds (docker stop); the exit code."""
        code = self.job.stop(grace)
        for reader in self._readers:
            reader.join(1)
        return code
