"""The stubs' shell library: its TOML reader and writer against Python's, Masterminds-style
version constraints, Go-style durations (lib/*.sh, run in bash as the stubs run them)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stubrun import STUBS, tomllib

LIB = STUBS / "lib"
PRELUDE = f'set -euo pipefail\n. "{LIB}/common.sh"\n. "{LIB}/toml.sh"\n. "{LIB}/deps.sh"\n'


def bash(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", PRELUDE + script, "stub-lib-test", *args],
                          capture_output=True, text=True, timeout=60)


# every key, type and value as <byte length>:<bytes>, so that any character survives
DUMP = r'''
toml_load "$1" ${2:+"$2"}
LC_ALL=C
for key in "${!TOML_T[@]}"; do
  [[ $key == "$TOML_ROOT" ]] && continue
  value=${TOML[$key]-} kind=${TOML_T[$key]}
  printf '%d:%s%d:%s%d:%s' "${#key}" "$key" "${#kind}" "$kind" "${#value}" "$value"
done
'''


def bash_toml(path: Path, reader: str = "toml_load", *args: str) -> dict[str, tuple[str, str]]:
    """path -> (type, value) as toml_load (or its fast path toml_scan) flattens the file."""
    out = subprocess.run(["bash", "-c", PRELUDE + DUMP.replace("toml_load", reader, 1), "stub-lib-test", str(path),
                          *args], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    data, fields, pos = out.stdout, [], 0
    while pos < len(data):
        colon = data.index(b":", pos)
        size = int(data[pos:colon])
        fields.append(data[colon + 1:colon + 1 + size].decode())
        pos = colon + 1 + size
    return {fields[i]: (fields[i + 1], fields[i + 2]) for i in range(0, len(fields), 3)}


def flatten(data: Any, path: str = "") -> dict[str, tuple[str, str]]:
    """The same flattening of a parsed document (a dot in a key is \\x1e in the path)."""
    out: dict[str, tuple[str, str]] = {}
    if isinstance(data, dict):
        if path:
            out[path] = ("table", "")
        for key, value in data.items():
            out.update(flatten(value, f"{path}.{key.replace('.', chr(0x1e))}" if path
                               else key.replace(".", chr(0x1e))))
    elif isinstance(data, list):
        out[path] = ("array", str(len(data)))
        for i, value in enumerate(data):
            out.update(flatten(value, f"{path}.{i}"))
    elif isinstance(data, bool):
        out[path] = ("bool", "true" if data else "false")
    elif isinstance(data, str):
        out[path] = ("string", data)
    else:
        out[path] = ("number", str(data))
    return out


# Left out: NUL (no bash string holds it), \x1e and \x1f (toml.sh's key separator and root), and
# \x01 and \x7f, which bash itself uses as internal quoting markers (CTLESC, CTLNUL) and mangles in
# associative-array subscripts. No CNB file has such characters in its keys.
KEYS = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
                 st.text(st.characters(blacklist_characters="\x00\x01\x1e\x1f\x7f", blacklist_categories=("Cs",)),
                         min_size=1, max_size=10))
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)
SCALARS = st.one_of(TEXT, st.booleans(), st.integers(-10**6, 10**6))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(KEYS, VALUES, max_size=5))
def test_toml_load_reads_what_tomli_w_writes(tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / "doc.toml"
    path.write_text(tomli_w.dumps(document))
    assert bash_toml(path) == flatten(tomllib.loads(path.read_text()))


@pytest.mark.parametrize("text", [
    # how the lifecycle (BurntSushi) writes a buildpack plan
    '[[entries]]\n  name = "cpython"\n  [entries.metadata]\n    build = true\n    version = "3.10"\n'
    '    version-source = "Pipfile.lock"\n\n[[entries]]\n  name = "cpython"\n  [entries.metadata]\n    launch = true\n',
    # dotted keys, comments, literal and multi-line strings, arrays across lines, a date
    "# comment\na.b.c = 'lit\\eral' # trailing\n[t]\nx = \"\"\"\nline1\nline2\"\"\"\narr = [\n  1, # one\n  2,\n]\n"
    "d = 1979-05-27 07:32:00Z\n\"quoted.key\" = { inner = [true, false] }\n",
    "",
])
def test_toml_load_reads_hand_written_documents(tmp_path: Path, text: str) -> None:
    path = tmp_path / "doc.toml"
    path.write_text(text)
    expected = flatten(tomllib.loads(text))
    expected = {k: (("datetime", "1979-05-27 07:32:00Z") if k == "t.d" else v) for k, v in expected.items()}
    assert bash_toml(path) == expected


@pytest.mark.parametrize("descriptor", sorted(STUBS.glob("*/buildpack.toml")), ids=lambda p: p.parent.name)
def test_toml_scan_reads_every_stubs_buildpack_toml_as_tomllib_does(descriptor: Path) -> None:
    """The fast path the stubs read their own buildpack.toml with (bin/detect and bin/build)."""
    expected = flatten(tomllib.loads(descriptor.read_text()))
    assert bash_toml(descriptor, "toml_scan") == expected
    head = {k: v for k, v in expected.items()
            if k == "buildpack" or k.startswith("buildpack.") or ("." not in k and v[0] not in ("table", "array"))}
    assert bash_toml(descriptor, "toml_scan", "buildpack") == head
    assert bash_toml(descriptor, "toml_load", "buildpack") == head


@pytest.mark.parametrize("text", [
    'api = "0.7"\n[buildpack]\nid = "a\\"b"\n',                      # an escape: toml_load reads it
    "api = '0.7'\n[metadata]\nn = 3\nlist = [\n  { a = \"x\", b = 1 },\n]\n",  # outside the fast path
    '[metadata]\ndependencies = [\n  { id = "p", stacks = ["a", "b"] },\n]\n[[stacks]]\nid = "*"\n',
])
def test_toml_scan_falls_back_to_toml_load_outside_its_subset(tmp_path: Path, text: str) -> None:
    path = tmp_path / "doc.toml"
    path.write_text(text)
    assert bash_toml(path, "toml_scan") == flatten(tomllib.loads(text))


def test_toml_load_reports_a_syntax_error_with_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[ok]\nkey = "value"\nnot toml at all\n')
    out = bash('toml_load "$1"', str(path))
    assert out.returncode == 1 and out.stderr.startswith(f"{path}: invalid TOML at line 3 near: ")


@settings(max_examples=80, deadline=None)
@given(value=TEXT)
def test_toml_quote_writes_what_tomllib_reads_back(value: str) -> None:
    out = subprocess.run(["bash", "-c", PRELUDE + 'toml_quote q "$1"; printf "k = %s\\n" "$q"', "t", value],
                         capture_output=True, timeout=60)
    assert tomllib.loads(out.stdout.decode()) == {"k": value}


def test_toml_key_quotes_only_what_is_not_a_bare_key() -> None:
    out = bash('for k in a-b_C1 "PATH.append" "with space" ""; do toml_key q "$k"; printf "%s\\n" "$q"; done')
    assert out.stdout.split("\n")[:-1] == ["a-b_C1", '"PATH.append"', '"with space"', '""']


@pytest.mark.parametrize("constraint, version, result", [
    ("3.10.x", "3.10.13", 0), ("3.10.x", "3.11.0", 1), ("3.10", "3.10.2", 0), ("3.10", "3.11.0", 1),
    ("3.11.*", "3.11.6", 0), ("*", "3.12.0", 0), ("3.10.13", "3.10.13", 0), ("3.10.13", "3.10.12", 1),
    ("^3.8", "3.12.0", 0), ("^3.8", "4.0.0", 1), ("^3.8", "3.7.9", 1), ("^0.2.3", "0.2.9", 0), ("^0.2.3", "0.3.0", 1),
    ("~3.10", "3.10.5", 0), ("~3.10", "3.11.0", 1), ("~>3.10", "3.10.1", 0),
    (">=3.8,<3.11", "3.10.13", 0), (">=3.8,<3.11", "3.11.5", 1), (">= 3.8 < 3.11", "3.9.1", 0),
    (">3.10", "3.10.5", 1), (">3.10", "3.11.0", 0), ("<=3.10", "3.10.9", 0), ("<=3.10", "3.11.0", 1),
    ("!=3.10", "3.10.1", 1), ("!=3.10", "3.11.0", 0), ("3.8 || 3.12", "3.12.0", 0), ("3.8 || 3.12", "3.10.1", 1),
    ("==3.10", "3.10.1", 2), ("abc", "1.0.0", 2), ("", "1.0.0", 2),
])
def test_semver_constraints_follow_masterminds(constraint: str, version: str, result: int) -> None:
    assert bash('rc=0; semver_satisfies "$1" "$2" || rc=$?; exit $rc', constraint, version).returncode == result


@pytest.mark.parametrize("ms, text", [(0, "0s"), (41, "41ms"), (999, "999ms"), (1000, "1s"), (2624, "2.624s"),
                                      (2600, "2.6s"), (62345, "1m2.345s"), (60000, "1m0s"),
                                      (3723004, "1h2m3.004s")])
def test_durations_print_like_gos_time_duration(ms: int, text: str) -> None:
    assert bash('go_duration "$1" TOOK; printf %s "$TOOK"', str(ms)).stdout == text
