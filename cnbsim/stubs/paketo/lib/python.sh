# shellcheck shell=bash
# shellcheck disable=SC2034 # the UPPER_CASE globals set here are the bin scripts' inputs
# The host interpreter the stubs expose instead of a downloaded CPython, and the two
# install modes the platform chooses (CNBSIM_INSTALLER):
#   stub  the package-manager stubs resolve and record what they would install;
#   real  they create a virtualenv in their layer and pip-install into it, from the
#         package index or, offline, from CNBSIM_WHEELHOUSE (pip --no-index --find-links).
# Platform env vars (set by cnbsim, absent under a real `pack`):
#   CNBSIM_BASE_PYTHON  the host's base interpreter (not a venv)
#   CNBSIM_PYTHONS      the base interpreters installed on the host (pyenv, uv, /usr/bin),
#                       colon-separated: the cpython stub picks the selected version from them
#   CNBSIM_PYTHON       the interpreter running cnbsim, with `virtualenv` importable
#   CNBSIM_INSTALLER    stub (default) | real
#   CNBSIM_WHEELHOUSE   a directory of wheels for offline real installs

# installer_mode: INSTALLER = stub | real; anything else is an error that says the fix.
installer_mode() {
  INSTALLER=${CNBSIM_INSTALLER:-stub}
  [[ $INSTALLER == stub || $INSTALLER == real ]] \
    || die "CNBSIM_INSTALLER must be 'stub' or 'real', not '$INSTALLER' (cnbsim build --installer stub|real)"
}

# _which NAME: _W = the first executable NAME on PATH (returns 1 if none).
_which() {
  local dir
  local -a dirs
  IFS=: read -r -a dirs <<< "$PATH"
  for dir in "${dirs[@]}"; do
    [[ -n $dir && -x $dir/$1 && ! -d $dir/$1 ]] && { _W=$dir/$1; return 0; }
  done
  return 1
}

# host_python: HOST_PY = the base interpreter to expose (CNBSIM_BASE_PYTHON, else the base
# interpreter behind python3 on PATH). HOST_PY_NOTE says when the fallback was used.
host_python() {
  HOST_PY_NOTE=""
  if [[ -n ${CNBSIM_BASE_PYTHON:-} ]]; then
    [[ -x $CNBSIM_BASE_PYTHON ]] || die "CNBSIM_BASE_PYTHON=$CNBSIM_BASE_PYTHON is not an executable interpreter"
    HOST_PY=$CNBSIM_BASE_PYTHON
    return 0
  fi
  _which python3 || die "no CNBSIM_BASE_PYTHON and no python3 on PATH: the stub has no interpreter to expose"
  HOST_PY=$("$_W" -I -S -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))') \
    || die "cannot run $_W"
  HOST_PY_NOTE="CNBSIM_BASE_PYTHON is not set: exposing $HOST_PY (python3 on PATH)"
}

# select_python X.Y: HOST_PY = an installed base interpreter of that minor version (the
# host's own when it is one, else the first pythonX.Y of CNBSIM_PYTHONS); otherwise the host's
# (host_python) with SELECT_NOTE saying so.
select_python() {
  local py
  local -a list
  SELECT_NOTE=""
  IFS=: read -r -a list <<< "${CNBSIM_BASE_PYTHON:-}:${CNBSIM_PYTHONS:-}"
  for py in "${list[@]}"; do
    if [[ ${py##*/} == "python$1" && -x $py ]]; then
      HOST_PY=$py HOST_PY_NOTE=""
      return 0
    fi
  done
  host_python
  SELECT_NOTE="no Python $1 is installed on this machine (pyenv, uv, /usr/bin)"
}

# layer_python: HOST_PY = the interpreter the cpython layer exposes (bin/python3.X on PATH,
# resolved), else host_python. PY_XY is set too.
layer_python() {
  host_python_xy
  if [[ -n $_LAYER_PY ]]; then
    HOST_PY=$(readlink -f -- "$_LAYER_PY") || die "cannot resolve $_LAYER_PY"
    HOST_PY_NOTE=""
  else
    host_python
  fi
}

# host_python_xy: PY_XY = "3.11" of the interpreter the layers expose: the bin/python3.X next
# to python3 on PATH (the cpython layer's, _LAYER_PY), else the file name of CNBSIM_BASE_PYTHON
# (python3.11) when it says so, else asked from `python3` on PATH.
host_python_xy() {
  local py=${1:-} link
  _LAYER_PY=""
  if [[ -z $py ]] && _which python3; then
    for link in "${_W%/*}"/python3.[0-9]*; do
      if [[ ${link##*/} =~ ^python([0-9]+\.[0-9]+)$ && -L $link ]]; then
        PY_XY=${BASH_REMATCH[1]} _LAYER_PY=$link
        return 0
      fi
    done
  fi
  py=${py:-${CNBSIM_BASE_PYTHON:-}}
  if [[ ${py##*/} =~ ^python([0-9]+\.[0-9]+)$ ]]; then
    PY_XY=${BASH_REMATCH[1]}
    return 0
  fi
  if [[ -z $py ]]; then
    _which python3 || die "no python3 on PATH (is paketo-buildpacks/cpython in the group?)"
    py=$_W
  fi
  PY_XY=$("$py" -I -S -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "cannot run $py"
}

# host_python_version PY: PY_VERSION = "3.11.7", read from the interpreter's patchlevel.h
# when it is installed, else asked from the interpreter.
host_python_version() {
  local py=$1 prefix line
  PY_VERSION=""
  if [[ ${py##*/} =~ ^python([0-9]+\.[0-9]+)$ ]]; then
    prefix=${py%/bin/*}
    if [[ -f $prefix/include/python${BASH_REMATCH[1]}/patchlevel.h ]]; then
      while IFS= read -r line; do
        if [[ $line =~ ^#define[[:space:]]+PY_VERSION[[:space:]]+\"([^\"]+)\" ]]; then
          PY_VERSION=${BASH_REMATCH[1]}
          break
        fi
      done < "$prefix/include/python${BASH_REMATCH[1]}/patchlevel.h"
    fi
  fi
  [[ -n $PY_VERSION ]] && return 0
  PY_VERSION=$("$py" -I -S -c 'import platform; print(platform.python_version())') || die "cannot run $py"
}

# expose_python DIR X.Y: DIR/bin/pythonX.Y (a link to HOST_PY), python3 and python -> it, the
# names a CPython install has, so `python` works for later buildpacks and at launch, and the
# later stubs find the interpreter and its version. DIR/bin exists.
expose_python() {
  ln -s -- "$HOST_PY" "$1/bin/python$2"
  ln -s "python$2" "$1/bin/python3"
  ln -s python3 "$1/bin/python"
}

# fake_venv DIR: a virtual environment made by hand (pyvenv.cfg + bin/python): what a
# package manager's venv looks like, without installing anything (stub mode). DIR/bin and
# DIR/lib/pythonX.Y/site-packages exist.
fake_venv() {
  printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' \
    "${HOST_PY%/*}" "$PY_XY" > "$1/pyvenv.cfg"
  ln -s -- "$HOST_PY" "$1/bin/python"
}

# --- real mode ------------------------------------------------------------------------

# _indent_output: copy stdin to stdout at packit's action indent (pip's output in the log).
_indent_output() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do printf '      %s\n' "$line"; done
}

# venv_create DIR: a virtualenv on the cpython layer's interpreter holding what Paketo's
# CPython and pip buildpacks put under the app: setuptools where CPython's ensurepip bundles it
# (3.8 to 3.11, with pkg_resources; not 3.12+), and the pip of paketo-buildpacks/pip (its wheel
# in the pip-source dir on PIP_FIND_LINKS), else the interpreter's bundled pip. Made offline with
# CNBSIM_PYTHON's virtualenv; without CNBSIM_PYTHON, with the interpreter's `venv` (ensurepip).
venv_create() {
  local dir=$1 bundled whl link pip_dir="" pip_v="" st_v="" got
  local -a seed=() links=()
  layer_python
  [[ -z $HOST_PY_NOTE ]] || log_stub "$HOST_PY_NOTE"
  if [[ -z ${CNBSIM_PYTHON:-} ]]; then
    log_stub "CNBSIM_PYTHON is not set: creating the environment with $HOST_PY -m venv"
    "$HOST_PY" -m venv "$dir" 2>&1 | _indent_output || die "python -m venv failed to create $dir"
    return 0
  fi
  bundled=${HOST_PY%/bin/*}/lib/python$PY_XY/ensurepip/_bundled
  for whl in "$bundled"/setuptools-*.whl; do
    [[ -f $whl ]] && { st_v=${whl##*/setuptools-}; st_v=${st_v%%-*}; }
  done
  for whl in "$bundled"/pip-*.whl; do
    [[ -f $whl ]] && { pip_v=${whl##*/pip-}; pip_v=${pip_v%%-*}; pip_dir=$bundled; }
  done
  read -r -a links <<< "${PIP_FIND_LINKS:-}"
  for link in "${links[@]}"; do
    for whl in "$link"/pip-*.whl; do
      [[ -f $whl ]] && { pip_v=${whl##*/pip-}; pip_v=${pip_v%%-*}; pip_dir=$link; }
    done
  done
  if [[ -n $pip_v ]]; then seed+=(--pip "$pip_v" --extra-search-dir "$pip_dir"); else seed+=(--pip bundle); fi
  if ((${PY_XY#*.} >= 12)); then
    seed+=(--no-setuptools)
  elif [[ -n $st_v ]]; then
    seed+=(--setuptools "$st_v" --extra-search-dir "$bundled")
  else
    seed+=(--setuptools bundle)
    log_action "Warning: $HOST_PY has no bundled setuptools (ensurepip); the environment gets virtualenv's, which may lack pkg_resources"
  fi
  "$CNBSIM_PYTHON" -m virtualenv --python "$HOST_PY" --no-download --no-periodic-update "${seed[@]}" \
    --no-vcs-ignore --activators bash --quiet "$dir" 2>&1 | _indent_output \
    || die "virtualenv failed to create $dir (is virtualenv installed for $CNBSIM_PYTHON?)"
  got=""
  for whl in "$dir/lib/python$PY_XY/site-packages"/{pip,setuptools}-*.dist-info; do
    [[ -d $whl ]] || continue
    whl=${whl##*/} whl=${whl%.dist-info}
    got+=${got:+, }${whl/-/ }
  done
  log_stub "environment on Python $PY_XY ($HOST_PY): ${got:-no pip}"
}

# venv_pip_install VENV ARG...: `pip install` into VENV; the index options come from
# CNBSIM_WHEELHOUSE. The build env's PYTHONPATH and pip's user/target settings are
# dropped so that the packages land in VENV.
venv_pip_install() {
  local venv=$1
  shift
  local -a index=()
  if [[ -n ${CNBSIM_WHEELHOUSE:-} ]]; then
    [[ -d $CNBSIM_WHEELHOUSE ]] || die "CNBSIM_WHEELHOUSE=$CNBSIM_WHEELHOUSE is not a directory"
    index=(--no-index --find-links "$CNBSIM_WHEELHOUSE")
  fi
  log_action "Running '$venv/bin/python -m pip install ${index[*]}${index[*]:+ }$*'"
  env -u PYTHONPATH -u PYTHONHOME -u PIP_USER -u PIP_TARGET -u PIP_PREFIX -u PYTHONUSERBASE \
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input "${index[@]}" "$@" 2>&1 \
    | _indent_output
}

# --- the inputs' checksum (reuse across builds) -----------------------------------------

# inputs_sha256 TEXT: INPUTS_SHA = sha256 of TEXT plus the install mode and the wheelhouse,
# the inputs that decide what an install produces; the interpreter, the other one, is
# recorded beside it (host-python), so that the checksum is the same on every host.
inputs_sha256() {
  local sum
  sum=$(sha256sum <<< "$1"$'\n'"installer=$INSTALLER"$'\n'"wheelhouse=${CNBSIM_WHEELHOUSE:-}")
  INPUTS_SHA=${sum%% *}
}

# installed_for: _P = the interpreter packages are installed for: the one the cpython layer
# links (as it recorded it, one link deep), else CNBSIM_BASE_PYTHON. After host_python_xy.
installed_for() {
  _P=${CNBSIM_BASE_PYTHON:-}
  if [[ -n ${_LAYER_PY:-} ]]; then
    _P=$(readlink -- "$_LAYER_PY") || _P=$_LAYER_PY
  fi
}

# restored_inputs_sha LAYER: _V = the [metadata.cnbsim] inputs-sha256 of the restored
# <layer>.toml ("" when there is none, or when it was built on another interpreter).
restored_inputs_sha() {
  _V=""
  toml_load "$LAYERS_DIR/$1.toml" 2> /dev/null || return 0
  installed_for
  [[ ${TOML[metadata.cnbsim.host-python]-} == "$_P" ]] || return 0
  [[ ${TOML_T[metadata.cnbsim.inputs-sha256]:-} == string ]] && _V=${TOML[metadata.cnbsim.inputs-sha256]}
  return 0
}

# record_metadata REQUIREMENT...: the stub-only metadata every package-manager stub writes
# ([metadata.cnbsim]: the mode, the inputs' checksum, the interpreter and what was (or
# would be) installed).
record_metadata() {
  local list
  meta_str -t cnbsim installer "$INSTALLER"
  meta_str -t cnbsim inputs-sha256 "$INPUTS_SHA"
  installed_for
  meta_str -t cnbsim host-python "$_P"
  toml_array list "$@"
  meta_set -t cnbsim requirements "$list"
}

# stub_record SITE REQUIREMENT...: stub mode writes, instead of packages, one marker file
# per requirement (<normalized name>.cnbsim-stub, holding the requirement) in SITE.
stub_record() {
  local site=$1 req name
  shift
  mkdir -p -- "$site"
  for req in "$@"; do
    name=$req
    [[ $req =~ ^([A-Za-z0-9][A-Za-z0-9._-]*) ]] && name=${BASH_REMATCH[1],,}
    name=${name//[._]/-}
    [[ $req == -* || $req == */* ]] && name=local-$((++_STUB_N))
    # a file name has at most 255 bytes; the marker still holds the whole requirement
    ((${#name} <= 200)) || name=${name:0:200}-$((++_STUB_N))
    printf '%s\n' "$req" > "$site/$name.cnbsim-stub"
  done
}
_STUB_N=0

# stubtool ARG...: run lib/stubtool.py (lock files; off the hot path). The layers' Python
# (else CNBSIM_BASE_PYTHON) when it is >= 3.11 has tomllib and runs it without the site module
# (faster); otherwise CNBSIM_PYTHON (which has tomli), else python3 on PATH.
stubtool() {
  local -a py
  host_python_xy
  if [[ ${PY_XY%%.*} -eq 3 && ${PY_XY#*.} -ge 11 && -n ${_LAYER_PY:-${CNBSIM_BASE_PYTHON:-}} ]]; then
    py=("${_LAYER_PY:-$CNBSIM_BASE_PYTHON}" -I -S)
  elif [[ -n ${CNBSIM_PYTHON:-} ]]; then
    py=("$CNBSIM_PYTHON" -I)
  else
    _which python3 || die "no CNBSIM_PYTHON and no python3 on PATH to read the project files"
    py=("$_W" -I)
  fi
  "${py[@]}" "$LIB_DIR/stubtool.py" "$@"
}
