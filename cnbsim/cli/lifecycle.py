"""Lifecycle-compatible phase commands: `cnbsim lifecycle detector|builder|launcher`.

They take the real lifecycle's flags (single-dash, double-dash accepted), fall back to the
`CNB_*` variables and defaults of platform.md, read and write the same files, and exit with
the Platform API's codes — so a platform or a test can drive them like /cnb/lifecycle/*.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cnbsim import log as logmod
from cnbsim.buildpacks import BuildpackStore
from cnbsim.errors import CnbsimError, ExitCode, PlatformApiError
from cnbsim.model.api import DEFAULT_PLATFORM_API, SUPPORTED_PLATFORM_APIS, ApiVersion, supported_range
from cnbsim.model.order import group_to_toml, read_group_toml, read_order_toml
from cnbsim.model.plan import read_plan_toml
from cnbsim.phase.build import build
from cnbsim.phase.detect import DetectFailed, detect
from cnbsim.phase.launch import exec_plan, plan_launch
from cnbsim.platform import DEFAULT_BUILD_TIMEOUT, DEFAULT_DETECT_TIMEOUT, Platform, RunTarget
from cnbsim.tomlio import write_toml

# flag -> (env var, default); "<layers>" in a default is the layers dir (buildpacks/spec platform.md).
FLAGS = {
    "analyzed": ("CNB_ANALYZED_PATH", "<layers>/analyzed.toml"),
    "app": ("CNB_APP_DIR", "/workspace"),
    "buildpacks": ("CNB_BUILDPACKS_DIR", "/cnb/buildpacks"),
    "build-config": ("CNB_BUILD_CONFIG_DIR", "/cnb/build-config"),
    "group": ("CNB_GROUP_PATH", "<layers>/group.toml"),
    "layers": ("CNB_LAYERS_DIR", "/layers"),
    "log-level": ("CNB_LOG_LEVEL", "info"),
    "order": ("CNB_ORDER_PATH", None),
    "plan": ("CNB_PLAN_PATH", "<layers>/plan.toml"),
    "platform": ("CNB_PLATFORM_DIR", "/platform"),
}
PHASE_FLAGS = {
    "detector": ("analyzed", "app", "buildpacks", "build-config", "group", "layers", "log-level", "order", "plan", "platform"),
    "builder": ("analyzed", "app", "buildpacks", "build-config", "group", "layers", "log-level", "plan", "platform"),
}


def normalize_flags(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """The lifecycle's Go flags use one dash (`-app DIR`, `-app=DIR`); argparse wants two."""
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and arg.lstrip("-").split("=")[0] in names:
            arg = "-" + arg
        out.append(arg)
    return out


def _parser(phase: str) -> argparse.ArgumentParser:
    descriptions = {
        "detector": "Run the detect phase: find the first order group that passes and write group.toml and plan.toml.",
        "builder": "Run the build phase: run each bin/build of group.toml, write the layers and config/metadata.toml.",
    }
    p = argparse.ArgumentParser(
        prog=f"cnbsim lifecycle {phase}", description=descriptions[phase],
        epilog="Flags take the lifecycle's single-dash form (-app DIR) or double-dash; each falls back to "
               "its CNB_* variable, then to the default of platform.md. CNB_PLATFORM_API must be set.")
    for name in PHASE_FLAGS[phase]:
        env, default = FLAGS[name]
        shown = default or "<layers>/order.toml if present, else /cnb/order.toml"
        p.add_argument(f"--{name}", metavar="VALUE", help=f"(env {env}; default {shown})")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="kill a bin/detect or bin/build that runs longer (cnbsim extension; "
                        f"defaults {DEFAULT_DETECT_TIMEOUT:g}s / {DEFAULT_BUILD_TIMEOUT:g}s)")
    return p


def _value(args: argparse.Namespace, name: str, layers: str = "") -> str:
    given = getattr(args, name.replace("-", "_"))
    if given:
        return given
    env, default = FLAGS[name]
    value = os.environ.get(env) or default or ""
    return value.replace("<layers>", layers)


def platform_api_from_env() -> ApiVersion:
    text = os.environ.get("CNB_PLATFORM_API", "")
    if not text:
        raise PlatformApiError("get platform API version; please set 'CNB_PLATFORM_API' to a supported platform API",
                               hint=f"e.g. export CNB_PLATFORM_API=0.15 (supported: "
                                    f"{supported_range(SUPPORTED_PLATFORM_APIS)})")
    try:
        api = ApiVersion.parse(text)
    except ValueError as exc:
        raise PlatformApiError(f"parse platform API: {exc}")
    if api not in SUPPORTED_PLATFORM_APIS:
        raise PlatformApiError(f"platform API version '{text}' is incompatible with the lifecycle",
                               hint=f"supported: {supported_range(SUPPORTED_PLATFORM_APIS)}")
    return api


def _platform(args: argparse.Namespace, api: ApiVersion, layers: str) -> Platform:
    build_config = Path(_value(args, "build-config"))
    kwargs = {}
    if args.timeout:
        kwargs = {"detect_timeout": args.timeout, "build_timeout": args.timeout}
    return Platform(app_dir=Path(_value(args, "app")).absolute(),
                    platform_dir=Path(_value(args, "platform")).absolute(),
                    layers_dir=Path(layers).absolute(),
                    build_config_dir=build_config.absolute() if build_config.is_dir() else None,
                    # lifecycle phase/detector.go, builder.go: the run image's target from analyzed.toml
                    target=RunTarget.from_analyzed(Path(_value(args, "analyzed", layers))),
                    api=api, **kwargs)


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in ("detector", "builder", "launcher"):
        print("usage: cnbsim lifecycle {detector,builder,launcher} [flags]\n\n"
              "Lifecycle-compatible phases: run them like /cnb/lifecycle/<phase>.", file=sys.stderr)
        return ExitCode.SUCCESS if argv and argv[0] in ("-h", "--help") else ExitCode.INVALID_ARGS
    phase, rest = argv[0], argv[1:]
    if phase == "launcher":
        return lifecycle_launcher(rest)
    args = _parser(phase).parse_args(normalize_flags(rest, PHASE_FLAGS[phase] + ("timeout",)))
    log = logmod.Logger(level=_value(args, "log-level"), stream=sys.stdout)
    try:
        api = platform_api_from_env()
        layers = _value(args, "layers")
        platform = _platform(args, api, layers)
        if phase == "detector":
            return _detector(args, platform, log)
        return _builder(args, platform, log)
    except DetectFailed as failed:
        log.error(f"failed to detect: {failed.message}")
        return failed.exit_code
    except CnbsimError as exc:
        log.error(str(exc))
        return exc.exit_code


def _detector(args: argparse.Namespace, platform: Platform, log: logmod.Logger) -> int:
    layers = str(platform.layers_dir)
    order_path = _value(args, "order")
    if not order_path:
        local = Path(layers) / "order.toml"
        order_path = str(local) if local.exists() else "/cnb/order.toml"
    store = BuildpackStore()
    store.add_layout_dir(Path(_value(args, "buildpacks")))
    order = read_order_toml(Path(order_path))
    result = detect(order, store, platform, log)
    write_toml(Path(_value(args, "group", layers)), group_to_toml(result.group))
    write_toml(Path(_value(args, "plan", layers)), result.plan.to_toml())
    return ExitCode.SUCCESS


def _builder(args: argparse.Namespace, platform: Platform, log: logmod.Logger) -> int:
    layers = str(platform.layers_dir)
    store = BuildpackStore()
    store.add_layout_dir(Path(_value(args, "buildpacks")))
    group = read_group_toml(Path(_value(args, "group", layers)))
    plan = read_plan_toml(Path(_value(args, "plan", layers)))
    build(group, plan, store, platform, log)
    return ExitCode.SUCCESS


def lifecycle_launcher(argv: Sequence[str]) -> int:
    """`cnbsim lifecycle launcher [--process TYPE] [ARGS...]`, as /cnb/lifecycle/launcher or /cnb/process/TYPE."""
    args = list(argv)
    if args[:1] in (["-h"], ["--help"]):
        print("usage: cnbsim lifecycle launcher [--process TYPE] [--] [ARGS...]\n\n"
              "Behaves as /cnb/lifecycle/launcher: ARGS are a command (`-- CMD ARGS` runs it directly,\n"
              "otherwise through bash with the launch env), even when the build has a default process;\n"
              "with --process TYPE as /cnb/process/TYPE: ARGS go to that process. Reads CNB_LAYERS_DIR (default /layers),\n"
              "CNB_APP_DIR (default /workspace) and CNB_PLATFORM_API; exits with the process's code,\n"
              "or 80-89 when it cannot launch.")
        return ExitCode.SUCCESS
    process_type = None
    if args[:1] == ["--process"] and len(args) >= 2:
        process_type, args = args[1], args[2:]
    elif args and args[0].startswith("--process="):
        process_type, args = args[0].split("=", 1)[1], args[1:]
    try:
        api_text = os.environ.get("CNB_PLATFORM_API", "")
        platform_api = ApiVersion.parse(api_text) if api_text else DEFAULT_PLATFORM_API
        if os.environ.get("CNB_PROCESS_TYPE"):
            # [IMPL] the lifecycle no longer honours CNB_PROCESS_TYPE: it only warns
            # (lifecycle cmd/launcher/cli/launcher.go).
            t = os.environ["CNB_PROCESS_TYPE"]
            print(f"Warning: CNB_PROCESS_TYPE is not supported in Platform API {api_text or platform_api}")
            print(f"Warning: Run with ENTRYPOINT '{t}' to invoke the '{t}' process type")
        layers = Path(os.environ.get("CNB_LAYERS_DIR") or "/layers")
        app = Path(os.environ.get("CNB_APP_DIR") or "/workspace")
        # lifecycle cmd/launcher/cli/launcher.go: the process type comes from argv[0] only, so
        # /cnb/lifecycle/launcher never runs the default process: its args are a user-provided command.
        # the launcher's argv[0] is bash's $0 for shell processes: the image's path of the launcher
        argv0 = f"/cnb/process/{process_type}" if process_type else "/cnb/lifecycle/launcher"
        plan = plan_launch(layers, app, process_type=process_type, user_args=args, platform_api=platform_api,
                           use_default=False, argv0=argv0)
        sys.stdout.flush()
        exec_plan(plan)
    except ValueError as exc:
        # lifecycle cmd/exit.go: the lifecycle's logger, errors included, writes to stdout
        print(f"ERROR: failed to launch: {exc}", flush=True)
        return ExitCode.LAUNCH_ERROR
    except CnbsimError as exc:
        print(f"ERROR: failed to launch: {exc}", flush=True)
        return exc.exit_code if ExitCode.is_launch(exc.exit_code) else ExitCode.LAUNCH_ERROR
    return ExitCode.SUCCESS  # not reached: exec replaced this process
