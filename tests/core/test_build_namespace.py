"""What a buildpack sees in `cnbsim build`: the lifecycle's paths, a non-root user without
capabilities, none of the host's private files, no process outliving its phase, the network asked for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import cnbsim
from cnbsim.errors import BuildError

pytestmark = pytest.mark.bwrap

PROBE = r'''
probe() {  # $1: where to write the JSON account of what this process sees; the rest: its argv
  local dest=$1
  shift
  caps=$(grep -E '^Cap(Eff|Bnd):' /proc/self/status | awk '{print $2}' | paste -sd, -)
  ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | paste -sd, -)
  shadow=$(cat /etc/shadow 2>&1 >/dev/null | sed 's/.*: //' || true)
  root_ls=$(ls -A /root 2>/dev/null | paste -sd, - || true)
  home_ls=$(ls -A /home 2>/dev/null | paste -sd, - || true)
  if mount -o remount,bind,rw /workspace 2>/dev/null; then remount=allowed; else remount=refused; fi
  if touch "$CNB_BUILDPACK_DIR/written" 2>/dev/null; then bpwrite=allowed; else bpwrite=refused; fi
  if [ -e "$HOST_DIR" ]; then host=visible; else host=invisible; fi
  printf '{"argv": "%s", "cwd": "%s", "uid": "%s", "gid": "%s", "caps": "%s", "ifaces": "%s", "shadow": "%s",
    "root": "%s", "home": "%s", "remount": "%s", "bp_write": "%s", "host_dir": "%s", "env": {"CNB_LAYERS_DIR": "%s",
    "CNB_PLATFORM_DIR": "%s", "CNB_BUILDPACK_DIR": "%s", "CNB_BP_PLAN_PATH": "%s", "CNB_BUILD_PLAN_PATH": "%s",
    "HOME": "%s", "PATH": "%s"}}\n' \
    "$*" "$PWD" "$(id -u)" "$(id -g)" "$caps" "$ifaces" "$shadow" "$root_ls" "$home_ls" "$remount" "$bpwrite" "$host" \
    "${CNB_LAYERS_DIR:-}" "${CNB_PLATFORM_DIR:-}" "${CNB_BUILDPACK_DIR:-}" "${CNB_BP_PLAN_PATH:-}" \
    "${CNB_BUILD_PLAN_PATH:-}" "$HOME" "$PATH" > "$dest"
}
'''


@pytest.fixture
def probe_bp(bps, tmp_path):
    """A buildpack whose bin/detect and bin/build record what they see (into /workspace and its layer)."""
    return bps("test/probe", detect=PROBE + 'probe "$PWD/detect.json" "$@"',
               build=PROBE + '''
probe "$CNB_LAYERS_DIR/seen.json" "$@"
mkdir -p "$CNB_LAYERS_DIR/tools/bin" "$CNB_LAYERS_DIR/tools/env"
printf '[types]\\nlaunch = true\\nbuild = true\\n' > "$CNB_LAYERS_DIR/tools.toml"
printf %s "$CNB_LAYERS_DIR/tools/lib" > "$CNB_LAYERS_DIR/tools/env/TOOLS_HOME.default"
printf '[[processes]]\\ntype = "web"\\ncommand = ["%s/tools/bin/run"]\\ndefault = true\\n' "$CNB_LAYERS_DIR" \\
  > "$CNB_LAYERS_DIR/launch.toml"
''')


def build(app, bp, tmp_path, **kw):
    return cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", env={"HOST_DIR": str(tmp_path)}, **kw)


def test_bin_build_and_bin_detect_see_the_lifecycle_paths_and_env(app, probe_bp, tmp_path):
    result = build(app, probe_bp, tmp_path)
    seen = json.loads((result.layers_dir / "test_probe" / "seen.json").read_text())
    assert seen["cwd"] == "/workspace"
    assert seen["env"]["CNB_LAYERS_DIR"] == "/layers/test_probe"
    assert seen["env"]["CNB_PLATFORM_DIR"] == "/platform"
    assert seen["env"]["CNB_BUILDPACK_DIR"] == "/cnb/buildpacks/test_probe/1.0"
    assert seen["env"]["CNB_BP_PLAN_PATH"].startswith("/tmp/") and seen["env"]["CNB_BP_PLAN_PATH"].endswith("/plan.toml")
    assert seen["argv"] == f"/layers/test_probe /platform {seen['env']['CNB_BP_PLAN_PATH']}"
    assert seen["env"]["HOME"] == "/home/cnb"
    assert seen["env"]["PATH"].startswith("/cnb/process:/cnb/lifecycle:")
    detected = json.loads((result.workspace / "detect.json").read_text())
    assert detected["cwd"] == "/workspace" and detected["argv"].startswith("/platform /tmp/")
    assert detected["env"]["CNB_BUILD_PLAN_PATH"] == detected["argv"].split()[1]
    # what the buildpack wrote carries image paths, as a pack build's does
    assert (result.layers_dir / "test_probe" / "tools" / "env" / "TOOLS_HOME.default").read_text() \
        == "/layers/test_probe/tools/lib"
    assert result.process("web").command == ("/layers/test_probe/tools/bin/run",)
    assert result.launch_env("web")["PATH"].split(":")[0] == "/layers/test_probe/tools/bin"
    assert result.report["isolation"] == {"mode": "namespace", "paths": "image", "network": "host",
                                          "user": "1000:1000"}


def test_buildpacks_run_as_the_cnb_user_without_capabilities_or_host_secrets(app, probe_bp, tmp_path):
    result = build(app, probe_bp, tmp_path)
    for seen in (json.loads((result.layers_dir / "test_probe" / "seen.json").read_text()),
                 json.loads((result.workspace / "detect.json").read_text())):
        assert (seen["uid"], seen["gid"]) == ("1000", "1000")
        assert seen["caps"] == "0000000000000000,0000000000000000"     # CapEff, CapBnd: none at all
        assert seen["shadow"] == "Permission denied"
        assert seen["root"] in ("", ".pyenv")       # at most the interpreters the stubs expose, read-only
        assert seen["home"] == "cnb"
        assert seen["host_dir"] == "invisible"      # the build's own tmp dirs, other outputs, the app source
        assert seen["remount"] == "refused"
        assert seen["bp_write"] == "refused"
    assert not (probe_bp / "written").exists()


def test_cnb_user_id_and_group_id_choose_the_build_user(app, probe_bp, tmp_path):
    result = cnbsim.build(app, buildpacks=[probe_bp], output=tmp_path / "out",
                          env={"HOST_DIR": str(tmp_path), "CNB_USER_ID": "2000", "CNB_GROUP_ID": "3000"})
    seen = json.loads((result.layers_dir / "test_probe" / "seen.json").read_text())
    assert (seen["uid"], seen["gid"]) == ("2000", "3000")


def _processes_with(token: str) -> list[str]:
    """Command lines of live processes (any PID namespace) that contain `token`."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if token in cmdline:
                found.append(cmdline)
    return found


def test_a_setsid_daemon_from_detect_or_build_does_not_outlive_its_phase(app, bps, tmp_path):
    token = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"      # a `sleep` argument no other process has
    bp = bps("test/daemon", detect=f"setsid sleep 1{token} </dev/null >/dev/null 2>&1 &\nexit 0",
             build=f"setsid sleep 2{token} </dev/null >/dev/null 2>&1 &\nnohup sleep 3{token} >/dev/null 2>&1 &\n"
                   "echo daemons started")
    result = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")
    assert "daemons started" in result.output_of("test/daemon")
    assert _processes_with(token) == []


def test_a_bin_build_in_the_sandbox_that_closes_its_output_is_waited_for(app, bps, tmp_path):
    bp = bps("test/late", build='exec >/dev/null 2>&1; sleep 0.3; echo done > "$CNB_LAYERS_DIR/late"')
    result = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")
    assert (result.layers_dir / "test_late" / "late").read_text() == "done\n"


def test_a_timed_out_build_leaves_no_process_behind(app, bps, tmp_path):
    token = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"
    bp = bps("test/hang", build=f"setsid sleep 4{token} </dev/null >/dev/null 2>&1 &\nsleep 5{token}")
    with pytest.raises(BuildError, match="timed out"):
        cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", build_timeout=1)
    assert _processes_with(token) == []


def _interfaces_build(app, bps, tmp_path, **kw) -> list[str]:
    bp = bps("test/net", build='tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort > "$CNB_LAYERS_DIR/ifaces"')
    result = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", **kw)
    return (result.layers_dir / "test_net" / "ifaces").read_text().split()


def test_network_none_leaves_the_build_only_loopback(app, bps, tmp_path):
    assert _interfaces_build(app, bps, tmp_path, network="none") == ["lo"]


def test_the_default_build_network_is_the_hosts_as_in_pack(app, bps, tmp_path):
    host = sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])
    assert _interfaces_build(app, bps, tmp_path) == host


VOLUME_PROBE = '''
{ cat /mnt/conf/setting; ls /mnt; } > "$CNB_LAYERS_DIR/seen" 2>&1
if touch /mnt/conf/written 2>/dev/null; then echo conf-writable; else echo conf-read-only; fi >> "$CNB_LAYERS_DIR/seen"
if [ -d /mnt/cache ]; then echo from-build > /mnt/cache/note; fi
'''


def test_volumes_are_bound_at_their_targets_read_only_unless_rw(app, bps, tmp_path):
    conf, shared = tmp_path / "conf", tmp_path / "shared"
    conf.mkdir()
    shared.mkdir()
    (conf / "setting").write_text("from-the-host\n")
    bp = bps("test/volumes", detect='cat /mnt/conf/setting > "$CNB_BUILD_PLAN_PATH.seen" || exit 1',
             build=VOLUME_PROBE)
    result = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out",
                          volumes=(f"{conf}:/mnt/conf", f"{shared}:/mnt/cache:rw"))
    seen = (result.layers_dir / "test_volumes" / "seen").read_text().split()
    assert seen == ["from-the-host", "cache", "conf", "conf-read-only"]
    assert not (conf / "written").exists()
    assert (shared / "note").read_text() == "from-build\n"      # rw: the build wrote through to the host
    assert result.report["isolation"]["volumes"] == ["/mnt/conf:ro", "/mnt/cache:rw"]
    assert str(tmp_path) not in json.dumps(result.report["isolation"])


def test_cli_volume_flag_binds_into_the_build(app, bps, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "setting").write_text("via-the-cli\n")
    bp = bps("test/volumes", build=VOLUME_PROBE)
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "build", str(app), "-b", str(bp), "-o",
                          str(tmp_path / "out"), "--volume", f"{conf}:/mnt/conf:ro"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    seen = (tmp_path / "out" / "layers" / "test_volumes" / "seen").read_text().split()
    assert seen == ["via-the-cli", "conf", "conf-read-only"]


def test_a_volume_without_the_namespace_is_one_clear_error(app, bps, tmp_path):
    from cnbsim.errors import ConfigError
    bp = bps("test/volumes", build=VOLUME_PROBE)
    (tmp_path / "conf").mkdir()
    for call in (cnbsim.build, cnbsim.detect):
        with pytest.raises(ConfigError) as err:
            call(app, buildpacks=[bp], sandbox="never", volumes=(f"{tmp_path / 'conf'}:/mnt/conf",),
                 **({"output": tmp_path / "out"} if call is cnbsim.build else {}))
        assert err.value.field == "--volume" and "needs the build namespace" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_the_planqk_build_has_no_host_path_of_the_build_in_its_files(tmp_path):
    app = tmp_path / "planqk-pip"
    shutil.copytree(Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "planqk-pip", app)
    result = cnbsim.build(app, output=tmp_path / "out", cache_dir=tmp_path / "cache")
    for path in result.output.rglob("*"):
        if path.is_symlink():
            assert str(tmp_path) not in os.readlink(path), path
        elif path.is_file():
            assert str(tmp_path).encode() not in path.read_bytes(), path
    assert result.launch_env()["PYTHONPATH"].startswith("/layers/")


def _without_bwrap(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has every tool of this machine but bwrap."""
    bin_dir = tmp_path / "bin-without-bwrap"
    if bin_dir.is_dir():
        return {**os.environ, "PATH": str(bin_dir)}
    bin_dir.mkdir()
    for d in reversed(os.environ.get("PATH", "").split(os.pathsep)):
        if os.path.isdir(d):
            for name in os.listdir(d):
                if name != "bwrap":
                    (bin_dir / name).unlink(missing_ok=True)
                    (bin_dir / name).symlink_to(Path(d) / name)
    return {**os.environ, "PATH": str(bin_dir)}


def test_without_bubblewrap_the_build_says_so_once_and_uses_host_paths(app, probe_bp, tmp_path):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "build", str(app), "-b", str(probe_bp), "-o", str(out),
                          "--cache-dir", str(tmp_path / "cache"), "-e", f"HOST_DIR={tmp_path}"],
                         env=_without_bwrap(tmp_path), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("bwrap (bubblewrap) is not installed") == 1
    assert "background processes they start may survive the build" in res.stdout
    seen = json.loads((out / "layers" / "test_probe" / "seen.json").read_text())
    assert seen["env"]["CNB_LAYERS_DIR"] == str(out / "layers" / "test_probe")
    assert seen["cwd"] == str(out / "workspace")
    report = json.loads((out / "report.json").read_text())
    assert report["isolation"]["mode"] == "host" and "not installed" in report["isolation"]["reason"]
    net = subprocess.run([sys.executable, "-m", "cnbsim.cli", "build", str(app), "-b", str(probe_bp), "-o", str(out),
                          "--network", "none"], env=_without_bwrap(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert net.returncode == 1 and "--network none needs the build namespace" in net.stderr


def test_the_exported_image_has_no_host_path_of_the_build(tmp_path):
    import gzip

    from cnbsim.phase.export import export_oci
    app = tmp_path / "planqk-pip"
    shutil.copytree(Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "planqk-pip", app)
    result = cnbsim.build(app, output=tmp_path / "out")
    export_oci(result.output, tmp_path / "oci")
    blobs = list((tmp_path / "oci" / "blobs" / "sha256").iterdir())
    assert len(blobs) > 3
    for blob in blobs:
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        # not the output, the app source, the build's temp dirs (all under tmp_path or TMPDIR)
        assert str(tmp_path).encode() not in data, blob
        assert b"cnbsim-platform-" not in data and b"cnbsim-build-" not in data, blob
    configs = []
    for blob in blobs:
        try:
            doc = json.loads(blob.read_bytes())
        except ValueError:
            continue
        if isinstance(doc, dict) and "rootfs" in doc:
            configs.append(doc)
    assert len(configs) == 1     # its labels name the processes' image paths, as a pack build's do
    assert "/layers/planqk-buildpacks_job-template/job-template/python" in json.dumps(configs[0])
