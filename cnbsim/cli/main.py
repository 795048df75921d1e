"""The `cnbsim` command: pack-like verbs (build, detect, run, inspect, serve, export) and the
lifecycle-compatible phases (`cnbsim lifecycle detector|builder|launcher`).

Every error is one line on stderr (`ERROR: ...`, secrets redacted) and an exit code from
`EXIT_CODES`: the Platform API's where it names one, cnbsim's own otherwise; never a traceback.
SIGTERM and SIGHUP are handled as SIGINT is: the build stops, its work dirs are removed, the
previous output stays, and the exit code is 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from cnbsim import __version__
from cnbsim.errors import CnbsimError, ConfigError, ExitCode
from cnbsim.leaks import MIN_LENGTH, SECRET_NAME_PATTERNS, redact
from cnbsim.model.states import Installer, SandboxMode

EPILOG = ("Docs: README.md of the cnbsim repository. Exit codes follow the CNB Platform API "
          "(README: Exit codes); 128+N when stopped by signal N.")

# Every exit code `cnbsim` gives (README "Exit codes" lists the same table).
EXIT_CODES = {
    0: "success",
    1: "bad input: a file, directory or option is missing or invalid, or cnbsim refuses to replace a directory",
    2: "usage: unknown verb or option (argparse)",
    11: "platform API incompatible", 12: "buildpack API incompatible",
    20: "detect: no group passed", 21: "detect: a buildpack errored", 22: "detect: other error",
    51: "build: a bin/build failed", 52: "build: other error", 53: "build: a secret leaked into the output",
    62: "export error", 82: "launch: failed to launch",
    70: "internal error (a bug in cnbsim: please report it)", 74: "I/O error (disk full, permission denied)",
    129: "interrupted by SIGHUP", 130: "interrupted by SIGINT (Ctrl-C)", 143: "interrupted by SIGTERM",
}
INTERNAL_ERROR, IO_ERROR = 70, 74


class Interrupted(KeyboardInterrupt):
    """A SIGINT, SIGTERM or SIGHUP: unwinds like Ctrl-C, so every `finally` and `with` cleans up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, _frame: Any) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):   # once: later signals must not cut the cleanup
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def _timeout(value: str) -> float:
    """`--timeout`: a finite number of seconds above zero."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 10 ** 7:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number of seconds above 0 (at most 10000000)")
    return seconds


def _color(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


def _bold(text: str, on: bool) -> str:
    return f"\033[1m{text}\033[0m" if on else text


def parse_env(pairs: Sequence[str], env_file: str | None) -> dict[str, str]:
    """`--env K=V` (or `--env K`, taken from this shell, like pack) and `--env-file FILE` lines."""
    out: dict[str, str] = {}
    if env_file:
        from cnbsim.tomlio import MAX_TOML_BYTES, read_bounded
        path = Path(env_file)
        lines = (read_bounded(path, what="env file", limit=MAX_TOML_BYTES) or "").splitlines()
        for n, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"line {n} is not KEY=VALUE", file=path, hint="write one KEY=VALUE per line")
            out[key.strip()] = value
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise ConfigError(f"'{pair}' is not KEY=VALUE", field="--env")
        if not sep:
            if key not in os.environ:
                raise ConfigError(f"'{key}' has no value and is not set in this shell", field="--env",
                                  hint=f"write --env {key}=VALUE")
            value = os.environ[key]
        out[key] = value
    return out


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", metavar="APP", help="the app (project) directory; it is copied, never modified")
    p.add_argument("--builder", metavar="FILE", help="a builder.toml (default: the embedded PlanQK builder)")
    p.add_argument("--buildpack", "-b", dest="buildpacks", action="append", default=[], metavar="DIR|ID",
                   help="a buildpack dir, package.toml, .cnb file, oci:DIR[:TAG] or id[@version]; repeat to "
                        "form one group (like pack)")
    p.add_argument("--buildpack-store", action="append", default=[], metavar="DIR",
                   help="a dir of saved buildpackages (.cnb files, OCI layouts from `skopeo copy ... oci:DIR:TAG`) "
                        "that registry references resolve to before the offline stubs (also "
                        "$CNBSIM_BUILDPACK_STORE)")
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V",
                   help="a platform env var for the buildpacks (repeatable; K alone takes it from this shell)")
    p.add_argument("--env-file", metavar="FILE", help="KEY=VALUE lines, as platform env vars")
    p.add_argument("--installer", choices=Installer.values(), default=Installer.STUB.value,
                   help="stub: package managers record what they would install (fast, default); "
                        "real: install into the layers with virtualenv + pip")
    p.add_argument("--wheelhouse", metavar="DIR", help="real mode: install from these wheels only (offline)")
    p.add_argument("--timeout", type=_timeout, metavar="SECONDS",
                   help="kill a bin/detect or bin/build that runs longer (defaults 60s / 1800s)")
    p.add_argument("--sandbox", choices=SandboxMode.values(), default=SandboxMode.AUTO.value,
                   help="run bin/detect and bin/build in their own namespace (bubblewrap), as pack's containers: "
                        "/workspace, /layers, /platform, /cnb/buildpacks, uid 1000 without capabilities "
                        "(auto: when bwrap works here; never: on the host, with host paths)")
    p.add_argument("--network", choices=("host", "none"), default="host",
                   help="the build's network, as pack build --network (none: only lo; needs the namespace)")
    p.add_argument("--volume", action="append", default=[], metavar="HOST:TARGET[:ro|rw]",
                   help="bind a host file or dir at TARGET in the build, as pack build --volume (read-only "
                        "unless :rw; repeatable); needs the build namespace (bubblewrap)")
    p.add_argument("--run-image", metavar="OCI-DIR",
                   help="an OCI image layout (DIR or DIR:TAG): its os/arch/distro are the build's target "
                        "(buildpacks whose targets do not match are skipped), and export and run use it")
    p.add_argument("--descriptor", metavar="FILE",
                   help="the project descriptor (default: APP/project.toml): build env, buildpack group, "
                        "include/exclude, as pack reads it")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 22) when a bin/detect writes to the app dir, instead of warning")
    p.add_argument("--json", action="store_true", help="print the JSON result on stdout, logs on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="show debug lines (detect output, plan tries)")


def _byte_size(text: str) -> int:
    """`--max-body`: bytes, or a number with k, M or G (powers of 1024)."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    number, unit = text.strip().rstrip("bB"), ""
    if number[-1:].lower() in units:
        number, unit = number[:-1], number[-1:].lower()
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: give bytes, or a number with k, M or G (e.g. 10M)")
    return int(number) * units[unit]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cnbsim",
        description="Build, run, inspect and serve Cloud Native Buildpacks apps offline, without Docker: "
                    "the CNB lifecycle in Python, with the PlanQK job-template buildpack and offline "
                    "stand-ins for the Paketo Python buildpacks.",
        epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"cnbsim {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")

    b = sub.add_parser("build", help="detect and build an app into an output dir (like pack build)",
                       description="Copy APP into a workspace, run detect and build as the CNB lifecycle does, "
                                   "and write OUTPUT with workspace/, layers/ and report.json.", epilog=EPILOG)
    _add_source_args(b)
    b.add_argument("--output", "-o", metavar="DIR", help="where to write the build (default ./cnbsim-out/<app name>)")
    b.add_argument("--cache-dir", metavar="DIR", help="the layer cache (default: per app under ~/.cache/cnbsim)")
    b.add_argument("--clear-cache", action="store_true", help="empty the cache first (a cold build)")
    b.add_argument("--report", metavar="FILE", help="also write the report JSON to FILE")
    b.add_argument("--oci", metavar="DIR", help="also export an OCI image layout to DIR")
    b.add_argument("--sbom-output-dir", metavar="DIR",
                   help="copy the build's SBOMs (launch/, build/, cache/ as the lifecycle lays them out) to DIR, "
                        "like pack build --sbom-output-dir")
    b.add_argument("--tag", metavar="NAME", help="with --oci: the image's tag")
    b.add_argument("--default-process", metavar="TYPE", default="",
                   help="the image's default process, as pack build --default-process (the exporter's "
                        "-process-type); the build fails when no buildpack defines TYPE")
    b.add_argument("--secret-env", action="append", default=[], metavar="NAME",
                   help="treat this env var as a secret for the leak check (besides names matching "
                        f"{', '.join(SECRET_NAME_PATTERNS)})")

    d = sub.add_parser("detect", help="run detection alone and say which group passes, or why none does",
                       epilog=EPILOG)
    _add_source_args(d)

    r = sub.add_parser("run", usage="cnbsim run OUTPUT [options] [-- ARGS...]",
                       help="run a built service like docker run (PlanQK inputs, result block)",
                       description="Start a process of a build output through the launcher. With --data/--params "
                                   "(plain JSON files) it does what `docker run -e BASE64_ENCODED=false -v "
                                   "data.json:/var/input/data/data.json -v params.json:/var/input/params/"
                                   "params.json IMAGE` does, then prints the PlanQK result (from "
                                   "/var/runtime/output/output.json, else the result block). Only the inputs "
                                   "given are mounted, never the project's input/ dir. ARGS after -- go to the "
                                   "process as `docker run IMAGE ARGS` gives them (after the default process's "
                                   "own args; they are the command when the build has no default process); "
                                   "--shell runs a command of your own with the launch env instead. "
                                   "--publish makes a web process reachable from the host.", epilog=EPILOG)
    r.add_argument("output", metavar="OUTPUT", help="a `cnbsim build` output dir")
    r.add_argument("--process", "-p", metavar="TYPE", help="the process type (default: the default process)")
    r.add_argument("--data", metavar="FILE", help="JSON input data (mounted at /var/input/data/data.json)")
    r.add_argument("--params", metavar="FILE", help="JSON params (mounted at /var/input/params/params.json)")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE",
                   help="a JSON input for the run() parameter NAME, in PlanQK's v2 layout (repeatable; then "
                        "every input is mounted at /var/runtime/input/NAME.json)")
    r.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="a container env var")
    r.add_argument("--sandbox", choices=SandboxMode.values(), default=SandboxMode.AUTO.value,
                   help="run as a container of the image (bubblewrap): a run image's root, /workspace (a "
                        "throwaway copy), the launch layers at /layers, /var/input, uid 1000 without capabilities "
                        "(auto: when bwrap works here; never: on the host, only for outputs built with "
                        "--sandbox never)")
    r.add_argument("--network", choices=("bridge", "none", "host"), default="bridge",
                   help="as docker run: bridge (its own network via pasta: outbound works, the host's loopback "
                        "does not), none (only lo) or host")
    r.add_argument("--publish", action="append", default=[], metavar="[HOSTPORT:]PORT",
                   help="publish the process's PORT on 127.0.0.1 (repeatable), as docker run -p: at HOSTPORT, or "
                        "at a free port when only PORT is given; the address is printed once the process listens")
    r.add_argument("--shell", metavar="COMMAND",
                   help="run COMMAND instead of a process, in bash with the launch env (as docker run "
                        "--entrypoint launcher IMAGE COMMAND)")
    r.add_argument("--writable-workspace", action="store_true", help=argparse.SUPPRESS)
    r.add_argument("--json", action="store_true", help="stdout holds only the result JSON; the rest goes to stderr")
    r.set_defaults(args=[])

    i = sub.add_parser("inspect", help="show buildpacks, processes, layers and launch env of a build (like pack inspect)",
                       epilog=EPILOG)
    i.add_argument("output", metavar="OUTPUT", help="a `cnbsim build` output dir")
    i.add_argument("--json", action="store_true", help="print the report JSON")

    s = sub.add_parser("serve", help="serve a built PlanQK service over HTTP like `planqk serve`",
                       description="Answer planqk serve's HTTP API (and what the PlanQK service SDK calls): "
                                   "POST / queues a job and answers 201 PENDING at once; each job is its own "
                                   "process started like `cnbsim run`, at most --jobs at a time. Files the job "
                                   "writes to /var/runtime/output are linked from its result.", epilog=EPILOG)
    s.add_argument("output", metavar="OUTPUT", help="a `cnbsim build` output dir")
    s.add_argument("--port", type=int, default=8081, help="the port (default 8081)")
    s.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1)")
    s.add_argument("--sandbox", choices=SandboxMode.values(), default=SandboxMode.AUTO.value, help="as for `run`")
    s.add_argument("--network", choices=("bridge", "none", "host"), default="bridge", help="as for `run`")
    s.add_argument("--api", choices=("serve", "platform"), default="serve",
                   help="what GET / answers: serve = planqk serve's health check (default); platform = the list "
                        "of executions, as the platform's Service API (the SDK's get_service_executions())")
    s.add_argument("--jobs", type=int, default=4, metavar="N",
                   help="job processes at once (default 4); later submissions wait as PENDING")
    s.add_argument("--max-body", type=_byte_size, default="10M", metavar="SIZE",
                   help="the largest POST body, in bytes or with a k/M/G suffix (default 10M = 10 MiB); "
                        "larger ones get 413")

    x = sub.add_parser("export", help="write a build output as an OCI image layout", epilog=EPILOG)
    x.add_argument("output", metavar="OUTPUT", help="a `cnbsim build` output dir")
    x.add_argument("--oci", required=True, metavar="DIR", help="the OCI image layout dir to write")
    x.add_argument("--tag", metavar="NAME", help="the image's tag (index.json ref name)")
    x.add_argument("--run-image", metavar="OCI-DIR",
                   help="an OCI layout to put the layers on top of (default: the build's --run-image, if any)")
    x.add_argument("--default-process", metavar="TYPE",
                   help="the image's default process (default: the build's --default-process, else the "
                        "buildpacks')")
    x.add_argument("--uncompressed", action="store_true", help="write uncompressed tar layers")

    k = sub.add_parser("package", help="package a buildpack as a .cnb file or OCI layout (like pack buildpack package)",
                       description="Write a buildpackage as `pack buildpack package` does: one layer per buildpack "
                                   "(/cnb/buildpacks/<id>/<version>), the io.buildpacks.buildpackage.metadata and "
                                   "io.buildpacks.buildpack.layers labels; reproducible.", epilog=EPILOG)
    k.add_argument("output", metavar="OUTPUT", help="the .cnb file (--format file) or OCI layout dir (--format oci)")
    k.add_argument("--config", "-c", metavar="FILE",
                   help="package.toml: [buildpack] uri and [[dependencies]] (dirs, .cnb files, oci:DIR)")
    k.add_argument("--path", "-p", metavar="DIR", help="package this buildpack dir alone (instead of --config)")
    k.add_argument("--format", "-f", choices=("file", "oci"), default="file",
                   help="file: an OCI layout in a tar (.cnb, default); oci: an OCI layout directory")
    k.add_argument("--os", dest="target_os", default="", metavar="OS",
                   help="the image's os (default: package.toml [platform] os, else linux)")
    k.add_argument("--tag", default="", metavar="NAME", help="with --format oci: the image's tag in index.json")

    sub.add_parser("lifecycle", help="lifecycle-compatible phases: detector, builder, launcher",
                   add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "lifecycle":
        from cnbsim.cli.lifecycle import main as phases_main
        return phases_main(argv[1:])
    parser = _parser()
    process_args: list[str] = []
    if argv and argv[0] == "run" and "--" in argv:   # `cnbsim run OUT [opts] -- ARGS`: ARGS go to the process
        cut = argv.index("--")
        argv, process_args = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if args.verb == "run":
        args.args = process_args
    if not args.verb:
        parser.print_help()
        return ExitCode.SUCCESS
    handler = {"build": cmd_build, "detect": cmd_detect, "run": cmd_run, "inspect": cmd_inspect,
               "serve": cmd_serve, "export": cmd_export, "package": cmd_package}[args.verb]
    args.secrets = ()            # set by _options: values every error message hides
    handlers = _on_signals()
    try:
        return handler(args)
    except Interrupted as exc:
        print(f"ERROR: interrupted by {signal.Signals(exc.signum).name}; the previous output is kept, "
              "nothing was left half-written", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("ERROR: interrupted; the previous output is kept, nothing was left half-written", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except CnbsimError as exc:
        from cnbsim.phase.detect import DetectFailed
        if isinstance(exc, DetectFailed):
            print(exc.explain(), file=sys.stderr)
            _error(f"failed to detect: {exc.message}", args)
        else:
            _error(str(exc), args)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}", args)
        return IO_ERROR
    except Exception as exc:      # a bug: one line, the traceback only on request
        if os.environ.get("CNBSIM_DEBUG"):
            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {exc} (a bug in cnbsim; set CNBSIM_DEBUG=1 "
               "for the traceback and report it)", args)
        return INTERNAL_ERROR
    finally:
        _restore_signals(handlers)


def _error(message: str, args: argparse.Namespace) -> None:
    print(f"ERROR: {redact(message, args.secrets)}", file=sys.stderr)


def _on_signals() -> dict[int, Any]:
    """Handle SIGTERM and SIGHUP as SIGINT (main thread only: Python runs handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def _restore_signals(handlers: dict[int, Any]) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _options(args: argparse.Namespace, **extra: Any):
    from cnbsim.api import BuildOptions
    kwargs: dict[str, Any] = dict(env=parse_env(args.env, args.env_file), installer=args.installer,
                                  wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None,
                                  sandbox=args.sandbox, network=args.network,
                                  buildpack_store=tuple(Path(d) for d in args.buildpack_store),
                                  volumes=tuple(args.volume), run_image=args.run_image,
                                  descriptor=args.descriptor, strict=args.strict, **extra)
    if args.timeout:
        kwargs.update(detect_timeout=args.timeout, build_timeout=args.timeout)
    options = BuildOptions(**kwargs)
    args.secrets = tuple(v for v in options.secrets().values() if len(v) >= MIN_LENGTH)
    return options


def _logger(args: argparse.Namespace):
    from cnbsim.log import Logger
    stream = sys.stderr if args.json else sys.stdout
    return Logger(level="debug" if args.verbose else "info", stream=stream, banners=True, color=_color(stream))


def cmd_build(args: argparse.Namespace) -> int:
    from cnbsim.api import build
    from cnbsim.report import dumps
    started = time.perf_counter()
    log = _logger(args)
    options = _options(args, secret_env=tuple(args.secret_env), default_process=args.default_process)
    from cnbsim.cache import default_cache_dir
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir(Path(args.app))
    result = build(args.app, builder=args.builder, buildpacks=args.buildpacks or None, output=args.output,
                   options=options, log=log, cache_dir=cache_dir, clear_cache=args.clear_cache)
    if args.report:
        Path(args.report).write_text(dumps(result.report), encoding="utf-8")
    if args.oci:
        _export(result.output, Path(args.oci), args.tag, None, False, log)
    if args.sbom_output_dir:
        from cnbsim.sbom import copy_sbom_output
        copied = copy_sbom_output(result.output / "layers", Path(args.sbom_output_dir))
        log.info(f"Copied {len(copied)} SBOM file(s) to {args.sbom_output_dir}")
    if args.json:
        sys.stdout.write(dumps(result.report))
        return ExitCode.SUCCESS
    color = _color(sys.stdout)
    print(_bold("===> SUMMARY", color) if log.banners else "")
    print("Processes:")
    for p in result.processes:
        mark = " (default)" if p.type == result.default_process else ""
        print(f"  {p.type}{mark}: {' '.join([*p.command, *p.args])}")
    if not result.processes:
        print("  (none)")
    print("Layers:")
    for layer in result.layers:
        types = [t for t in ("launch", "build", "cache") if getattr(layer, t)]
        status = result.layer_status.get((layer.buildpack_id, layer.name))
        print(f"  {layer.buildpack_id}:{layer.name} [{', '.join(types)}]" + (f" ({status})" if status else ""))
    print(f"Output: {_shown(result.output)}")
    print(f"Built in {time.perf_counter() - started:.2f}s")
    return ExitCode.SUCCESS


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_detect(args: argparse.Namespace) -> int:
    from cnbsim.api import detect
    log = _logger(args)
    result = detect(args.app, builder=args.builder, buildpacks=args.buildpacks or None,
                    options=_options(args), log=log)
    if args.json:
        json.dump({"group": [e.to_toml() for e in result.group],
                   "plan": [{"providers": [p.id for p in e.providers], "requires": [r.name for r in e.requires]}
                            for e in result.plan.entries]}, sys.stdout, indent=2)
        print()
        return ExitCode.SUCCESS
    print(f"Detection passed: {len(result.group)} buildpacks in the group.")
    return ExitCode.SUCCESS


def cmd_run(args: argparse.Namespace) -> int:
    from cnbsim.output import BuiltOutput
    from cnbsim.runner import RunRequest, parse_publish, read_json_input, run_attached, unmounted_inputs
    output = BuiltOutput.open(args.output)
    named = {}
    for item in args.input:
        name, eq, path = item.partition("=")
        if not eq or not name.isidentifier() or not path:
            raise ConfigError(f"--input {item!r} is not NAME=FILE", field="--input",
                              hint="e.g. --input data=input/data.json (NAME is the run() parameter)")
        named[name] = read_json_input(path, f"input {name}")
    if args.shell is not None and (args.process or args.args):
        raise ConfigError("--shell runs a command instead of a process: it takes neither --process nor -- ARGS",
                          field="--shell", hint="put the whole command in COMMAND, e.g. --shell 'ls -l /layers'")
    req = RunRequest(
        output=output, process_type=args.process, env=parse_env(args.env, None),
        args=(args.shell,) if args.shell is not None else tuple(args.args), user_command=args.shell is not None,
        publish=tuple(parse_publish(p) for p in args.publish),
        data=read_json_input(args.data, "data") if args.data else None,
        params=read_json_input(args.params, "params") if args.params else None,
        sandbox=args.sandbox, writable_workspace=args.writable_workspace, inputs=named,
        network=args.network)
    note = None if req.user_command else unmounted_inputs(req)
    if note:
        print(note, file=sys.stderr)
    outcome = run_attached(req, sys.stderr if args.json else sys.stdout, sys.stderr)
    if args.json:
        if outcome.found:
            json.dump(outcome.result, sys.stdout, indent=2, sort_keys=True)
            print()
    elif outcome.found:
        print(_bold("===> RESULT", _color(sys.stdout)))
        print(json.dumps(outcome.result, indent=2, sort_keys=True))
    if outcome.hint:
        print(outcome.hint, file=sys.stderr)
    if outcome.code != 0:
        print(f"cnbsim: the process exited with code {outcome.code}", file=sys.stderr)
    return outcome.code


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


class _MapOf:
    """A shape: a JSON object with any keys, each value of `shape`."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape


# What `inspect` reads of report.json (the report module writes more).
_REPORT_SHAPE = {
    "buildpacks": [{"id": str, "version": str, "api": str,
                    "layers": [{"name": str, "types": _MapOf(bool), "files": int}]}],
    "processes": [{"type": str, "command": [str], "args": [str], "default": bool, "direct": bool,
                   "buildpack_id": str}],
    "launch_env": _MapOf(_MapOf(str)),
}


def _check_shape(value: Any, shape: Any, path: Path, where: str) -> None:
    """Raise a ConfigError naming the first field of `value` that does not have `shape`."""
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"expected {expected}, found {type(value).__name__}", file=path, field=where or "(top)",
                           hint="the report is damaged or not cnbsim's: rebuild with cnbsim build")
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise wrong("an object")
        for key, sub in shape.items():
            if key not in value:
                raise ConfigError("missing", file=path, field=f"{where}.{key}".lstrip("."),
                                  hint="the report is damaged or not cnbsim's: rebuild with cnbsim build")
            _check_shape(value[key], sub, path, f"{where}.{key}".lstrip("."))
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise wrong("an array")
        for i, item in enumerate(value):
            _check_shape(item, shape[0], path, f"{where}[{i}]")
    elif isinstance(shape, _MapOf):
        if not isinstance(value, dict):
            raise wrong("an object")
        for key, item in value.items():
            _check_shape(item, shape.shape, path, f"{where}.{key}".lstrip("."))
    elif not isinstance(value, shape) or (shape is int and isinstance(value, bool)):
        raise wrong({str: "a string", bool: "true or false", int: "an integer"}[shape])


def cmd_inspect(args: argparse.Namespace) -> int:
    from cnbsim.output import BuiltOutput
    output = BuiltOutput.open(args.output)
    from cnbsim.model.buildpack import escape_id
    from cnbsim.tomlio import read_json
    report_path = output.path / "report.json"
    report = read_json(report_path, what="build report")
    _check_shape(report, _REPORT_SHAPE, report_path, "")
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return ExitCode.SUCCESS
    color = _color(sys.stdout)
    print(_bold("Buildpacks:", color))
    width = max((len(b["id"]) for b in report["buildpacks"]), default=0)
    for b in report["buildpacks"]:
        print(f"  {b['id']:<{width}}  {b['version']}  (API {b['api']})")
    print(_bold("Processes:", color))
    for p in report["processes"]:
        mark = " (default)" if p["default"] else ""
        print(f"  {p['type']}{mark}: {' '.join(p['command'] + p['args'])}  [{p['buildpack_id']}]"
              + ("" if p["direct"] else " (shell)"))
    if report.get("run_image"):
        target = report["run_image"].get("target") or {}
        distro = target.get("distro") or {}
        print(_bold("Run image:", color))
        print(f"  {report['run_image']['reference']}  ({target.get('os', '')}/{target.get('arch', '')}"
              + (f", {distro.get('name', '')} {distro.get('version', '')}".rstrip() if distro else "") + ")")
    print(_bold("Layers:", color))
    for b in report["buildpacks"]:
        for layer in b["layers"]:
            types = [t for t, on in layer["types"].items() if on]
            size = _dir_size(output.layers_dir / escape_id(b["id"]) / escape_id(layer["name"]))
            print(f"  {b['id']}:{layer['name']}  [{', '.join(types)}]  {_human(size)}, {layer['files']} files")
    print(_bold("Launch env:", color))
    for ptype, env in report["launch_env"].items():
        print(f"  {ptype}:")
        for k, v in env.items():
            print(f"    {k}={v}")
    return ExitCode.SUCCESS


def cmd_serve(args: argparse.Namespace) -> int:
    from cnbsim.output import BuiltOutput
    from cnbsim.serve import Api, Limits, serve
    return serve(BuiltOutput.open(args.output), host=args.host, port=args.port, sandbox_mode=args.sandbox,
                 network=args.network, api=Api(args.api), jobs=args.jobs, limits=Limits(max_body=args.max_body))


def _export(output: Path, oci: Path, tag: str | None, run_image: str | None, uncompressed: bool, log,
            default_process: str | None = None) -> None:
    from cnbsim.phase.export import export_oci
    result = export_oci(output, oci, tag=tag, run_image=Path(run_image) if run_image else None,
                        compress=not uncompressed, log=log, default_process=default_process or None)
    log.info(f"Exported {oci} ({result.manifest_digest})")


def cmd_export(args: argparse.Namespace) -> int:
    from cnbsim.log import Logger
    _export(Path(args.output), Path(args.oci), args.tag, args.run_image, args.uncompressed,
            Logger(stream=sys.stdout), args.default_process)
    return ExitCode.SUCCESS


if __name__ == "__main__":
    sys.exit(main())


def cmd_package(args: argparse.Namespace) -> int:
    from cnbsim.buildpackage import package
    config = args.config
    if config is None and args.path is None and Path("package.toml").is_file():
        config = "package.toml"
    done = package(config, args.output, fmt=args.format, path=args.path, target_os=args.target_os, tag=args.tag)
    print(f"Successfully created package {_shown(done.path)} ({done.id}@{done.version}, "
          f"{len(done.layers)} buildpack layer{'s' if len(done.layers) != 1 else ''}, {done.manifest_digest})")
    return 0
