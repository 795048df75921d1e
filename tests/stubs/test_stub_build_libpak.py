"""bin/build of the libpak-based stubs: procfile, ca-certificates, watchexec,
environment-variables, image-labels (paketo-buildpacks/libpak and each buildpack's build.go)."""

from __future__ import annotations

import os
import subprocess

from stubrun import Lifecycle, entry


def test_procfile_processes_run_through_the_shell_sorted_with_web_default(lc: Lifecycle) -> None:
    run = lc.build("procfile", [entry("procfile", worker="celery -A 'x y'", web="gunicorn server:app")])
    assert run.stdout == ("\nPaketo Buildpack for Procfile 5.6.8\n  https://github.com/paketo-buildpacks/procfile\n"
                          "  Process types:\n    web:    gunicorn server:app\n    worker: celery -A 'x y'\n")
    assert run.launch() == {"processes": [
        {"type": "web", "command": "gunicorn server:app", "default": True},
        {"type": "worker", "command": "celery -A 'x y'"}]}


def test_procfile_without_web_makes_worker_default_and_run_is_never_default(lc: Lifecycle) -> None:
    assert lc.build("procfile", [entry("procfile", worker="w", run="r")]).launch()["processes"] == [
        {"type": "run", "command": "r"}, {"type": "worker", "command": "w", "default": True}]
    assert lc.build("procfile", [entry("procfile", run="python -c 'x'")]).launch()["processes"] == [
        {"type": "run", "command": "python -c 'x'"}]


def test_procfile_on_a_tiny_stack_splits_shell_words_into_direct_processes(lc: Lifecycle) -> None:
    run = lc.build("procfile", [entry("procfile", web='python -c "print(1); print(2)" a\\ b $HOME')],
                   {"CNB_STACK_ID": "io.paketo.stacks.tiny"})
    assert run.launch()["processes"] == [{"type": "web", "command": "python", "direct": True, "default": True,
                                          "args": ["-c", "print(1); print(2)", "a b", "$HOME"]}]


def test_ca_certificates_contributes_a_launch_helper_and_reuses_it(lc: Lifecycle) -> None:
    run = lc.build("ca-certificates", [entry("ca-certificates-helper")])
    helper = run.layers / "helper" / "exec.d" / "ca-certificates-helper"
    assert run.stdout == ("\nPaketo Buildpack for CA Certificates 3.6.7\n"
                          "  https://github.com/paketo-buildpacks/ca-certificates\n"
                          "  Launch Helper: Contributing to layer\n"
                          f"    Creating {helper}\n")
    assert run.types("helper") == {"build": False, "cache": False, "launch": True}
    assert run.metadata("helper")["helperNames"] == ["ca-certificates-helper"]
    assert os.access(helper, os.X_OK)
    # an exec.d program: it must exit 0 and write valid (here: no) TOML to fd 3
    out = subprocess.run(["bash", "-c", '"$0" 3>&1 1>/dev/null', str(helper)], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "")
    again = lc.build("ca-certificates", [entry("ca-certificates-helper")])
    assert again.stdout.endswith("  Launch Helper: Reusing cached layer\n")


def test_ca_certificates_adds_bound_certs_to_a_build_layer(lc: Lifecycle) -> None:
    cert = lc.root / "bindings" / "certs" / "corp.pem"
    cert.parent.mkdir(parents=True)
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    run = lc.build("ca-certificates", [entry("ca-certificates", paths=[str(cert)])])
    layer = run.layers / "ca-certificates"
    assert "  CA Certificates: Contributing to layer\n    Added 1 additional CA certificate(s)" in run.stdout
    assert run.types("ca-certificates") == {"build": True, "cache": False, "launch": False}
    assert (layer / "ca-certificates" / "corp.pem").read_text() == cert.read_text()
    assert run.env_files("ca-certificates") == {
        "env.build/SSL_CERT_DIR.append": f"{layer}/ca-certificates", "env.build/SSL_CERT_DIR.delim": ":",
        "env.build/SSL_CERT_FILE.default": "/etc/ssl/certs/ca-certificates.crt"}


def test_ca_certificates_rejects_an_unexpected_plan_entry(lc: Lifecycle) -> None:
    run = lc.build("ca-certificates", [entry("pip")])
    assert run.code == 1 and 'received unexpected buildpack plan entry "pip"' in run.stderr


def test_watchexec_contributes_only_when_required(lc: Lifecycle) -> None:
    assert lc.build("watchexec").layer_names() == set()
    run = lc.build("watchexec", [entry("watchexec", launch=True)])
    assert "  Watchexec 1.20.5: Contributing to layer\n" in run.stdout
    assert run.types("watchexec") == {"build": False, "cache": False, "launch": True}
    assert run.metadata("watchexec")["version"] == "1.20.5"
    shim = run.layers / "watchexec" / "bin" / "watchexec"
    out = subprocess.run([str(shim), "--restart", "--watch", ".", "--", "echo", "ran"], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout == "ran\n"
    assert lc.build("watchexec", [entry("watchexec", launch=True)]).stdout.endswith(
        "  Watchexec 1.20.5: Reusing cached layer\n")


def test_environment_variables_writes_launch_env_files_for_bpe_variables(lc: Lifecycle) -> None:
    env = {"BPE_GREETING": "hi", "BPE_APPEND_PATH": "/opt/bin", "BPE_DELIM_PATH": ":",
           "BPE_DEFAULT_LANG": "C.UTF-8", "BPE_OVERRIDE_X": "1", "BPE_PREPEND_Y": "2"}
    run = lc.build("environment-variables", [entry("environment-variables")], env)
    assert run.env_files("environment-variables") == {
        "env.launch/GREETING": "hi", "env.launch/PATH.append": "/opt/bin", "env.launch/PATH.delim": ":",
        "env.launch/LANG.default": "C.UTF-8", "env.launch/X.override": "1", "env.launch/Y.prepend": "2"}
    assert run.types("environment-variables") == {"build": False, "cache": False, "launch": True}
    assert run.metadata("environment-variables") == {"variables": {
        "GREETING": "hi", "LANG.default": "C.UTF-8", "PATH.append": "/opt/bin", "PATH.delim": ":",
        "X.override": "1", "Y.prepend": "2"}}
    assert "  Launch Configuration:\n    $BPE_<NAME>" in run.stdout
    assert "  Environment Variables: Contributing to layer\n    Writing env.launch/GREETING\n" in run.stdout
    again = lc.build("environment-variables", [entry("environment-variables")], env)
    assert again.stdout.endswith("  Environment Variables: Reusing cached layer\n")
    changed = lc.build("environment-variables", [entry("environment-variables")], {**env, "BPE_GREETING": "yo"})
    assert "Contributing to layer" in changed.stdout


def test_image_labels_writes_oci_and_parsed_labels(lc: Lifecycle) -> None:
    run = lc.build("image-labels", [entry("image-labels")],
                   {"BP_OCI_SOURCE": "https://example.org/src", "BP_IMAGE_LABELS": "a=b c=\"d e\" 'f g'=h"})
    assert run.launch() == {"labels": [
        {"key": "a", "value": "b"}, {"key": "c", "value": "d e"}, {"key": "f g", "value": "h"},
        {"key": "org.opencontainers.image.source", "value": "https://example.org/src"}]}
    assert ("  Image labels:\n    a\n    c\n    f g\n    org.opencontainers.image.source\n") in run.stdout


def test_image_labels_rejects_an_unclosed_quote(lc: Lifecycle) -> None:
    run = lc.build("image-labels", [entry("image-labels")], {"BP_IMAGE_LABELS": "a=\"b"})
    assert run.code == 1 and "unable to find a closing quote" in run.stderr
