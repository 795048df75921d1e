# shellcheck shell=bash
# shellcheck disable=SC2034 # the UPPER_CASE globals set here are the bin scripts' inputs
# Shared code of the cnbsim stub buildpacks (sourced by every bin/detect and bin/build).
#
# What the stubs must reproduce is the CNB contract of the real Paketo buildpacks
# (github.com/paketo-buildpacks/<name>, and packit): args and env vars, plan TOML, layer TOML, env files, launch.toml and
# the log layout of packit's `scribe` (and libpak's `bard` for the libpak-based ones).
# Speed matters (every test runs the stubs many times): this file uses bash builtins only
# (no command substitution, no pipes); the external programs the stubs run are the few
# mkdir/ln/cp/rm of a fresh layer (each one a fork, a few ms).

# --- context ------------------------------------------------------------------------

# The buildpack's own dir (the lifecycle sets CNB_BUILDPACK_DIR for every Buildpack API)
# and this library's dir, for the bin scripts that source more of it.
if [[ -n ${CNB_BUILDPACK_DIR:-} ]]; then
  SELF_DIR=$CNB_BUILDPACK_DIR
else
  SELF_DIR=${BASH_SOURCE[1]:-}
  SELF_DIR=${SELF_DIR%/bin/*}
fi
LIB_DIR=${BASH_SOURCE[0]%/*}

# buildpack.md "Detection": $1 = platform dir, $2 = build plan path; from Buildpack API 0.8
# the lifecycle also sets CNB_PLATFORM_DIR / CNB_BUILD_PLAN_PATH. Like packit, the env var wins.
# A detect logs no title, so it does not read buildpack.toml (nor load toml.sh for it: about 1 ms
# of each of a build's dozen detects); the detects that read TOML source toml.sh themselves.
stub_detect_init() {
  APP_DIR=$PWD
  PLATFORM_DIR=${CNB_PLATFORM_DIR:-${1:-}}
  PLAN_PATH=${CNB_BUILD_PLAN_PATH:-${2:-}}
  [[ -n $PLAN_PATH ]] || die "usage: bin/detect <platform> <plan> (or CNB_BUILD_PLAN_PATH)"
  [[ $PLATFORM_DIR == /* ]] || PLATFORM_DIR=$PWD/$PLATFORM_DIR
  return 0
}

# buildpack.md "Build": $1 = the buildpack's layers dir, $2 = platform dir, $3 = buildpack
# plan path; API >= 0.8 adds CNB_LAYERS_DIR, CNB_PLATFORM_DIR and CNB_BP_PLAN_PATH.
stub_build_init() {
  APP_DIR=$PWD
  LAYERS_DIR=${CNB_LAYERS_DIR:-${1:-}}
  PLATFORM_DIR=${CNB_PLATFORM_DIR:-${2:-}}
  BP_PLAN_PATH=${CNB_BP_PLAN_PATH:-${3:-}}
  [[ -n $LAYERS_DIR && -n $BP_PLAN_PATH ]] \
    || die "usage: bin/build <layers> <platform> <plan> (or CNB_LAYERS_DIR, CNB_BP_PLAN_PATH)"
  # paths end up in env files and logs: make them absolute as the lifecycle's are
  [[ $LAYERS_DIR == /* ]] || LAYERS_DIR=$PWD/$LAYERS_DIR
  [[ $PLATFORM_DIR == /* ]] || PLATFORM_DIR=$PWD/$PLATFORM_DIR
  _stub_bp_info
  LOG_DEBUG=0
  [[ ${BP_LOG_LEVEL:-} == DEBUG ]] && LOG_DEBUG=1
  STACK_ID=${CNB_STACK_ID:-}
  return 0
}

# SELF_API, SELF_ID, SELF_NAME, SELF_VERSION, SELF_HOMEPAGE from our buildpack.toml (its root
# keys and [buildpack], read with toml.sh's fast path).
_stub_bp_info() {
  # shellcheck source=toml.sh
  [[ -v TOML_ROOT ]] || . "$LIB_DIR/toml.sh"
  toml_scan "$SELF_DIR/buildpack.toml" buildpack || die "cannot read $SELF_DIR/buildpack.toml"
  SELF_API=${TOML[api]:-} SELF_ID=${TOML[buildpack.id]:-} SELF_NAME=${TOML[buildpack.name]:-}
  SELF_VERSION=${TOML[buildpack.version]:-} SELF_HOMEPAGE=${TOML[buildpack.homepage]:-}
}

# --- outcomes -----------------------------------------------------------------------

# packit: a failed detect prints its message on stderr and exits 100; any other error exits 1.
detect_fail() { printf '%s\n' "$1" >&2; exit 100; }
die() { printf '%s\n' "$1" >&2; exit 1; }
# libpak: detect prints "SKIPPED: ..." on stdout and fails (100).
detect_skip() { printf '%s\n' "$1"; exit 100; }

# strconv.ParseBool, as packit and libpak read booleans: sets _B to true/false; returns 1
# (leaving _B unset) when the value does not parse.
parse_bool() {
  case $1 in
    1 | t | T | TRUE | true | True) _B=true ;;
    0 | f | F | FALSE | false | False) _B=false ;;
    *) return 1 ;;
  esac
}

# --- logging: packit scribe (2 spaces per level) ------------------------------------

_log_at() { # INDENT TEXT: every line of TEXT at INDENT
  local text=${2//$'\n'/$'\n'$1}
  printf '%s%s\n' "$1" "$text"
}
log_title() { printf '%s %s\n' "$SELF_NAME" "$SELF_VERSION"; }
log_process() { _log_at '  ' "$1"; }
log_subprocess() { _log_at '    ' "$1"; }
log_action() { _log_at '      ' "$1"; }
log_detail() { _log_at '        ' "$1"; }
log_break() { printf '\n'; }
# Debug lines appear only with BP_LOG_LEVEL=DEBUG.
log_debug() { # LEVEL-FUNCTION TEXT, e.g. log_debug log_subprocess "..."
  ((LOG_DEBUG)) || return 0
  "$1" "$2"
}
# Lines that say what the stub does instead of the real work, at action indent.
log_stub() { log_action "cnbsim stub: $1"; }

# libpak bard: the title is an empty line, "<name> <version>", then the homepage.
bard_title() {
  printf '\n%s %s\n' "$SELF_NAME" "$SELF_VERSION"
  bard_header "$SELF_HOMEPAGE"
}
bard_header() { _log_at '  ' "$1"; }
bard_body() { _log_at '    ' "$1"; }

# packit logs durations as Go's time.Duration rounded to the millisecond ("0s", "41ms",
# "2.624s", "1m2.345s"); the stubs report their own run time.
clock_start() { _CLOCK=${EPOCHREALTIME//[!0-9]/}; }
clock_stop() { # TOOK = the time since clock_start, formatted
  local now=${EPOCHREALTIME//[!0-9]/}
  go_duration "$(((now - _CLOCK + 500) / 1000))" TOOK
}
go_duration() { # MILLISECONDS VAR
  local ms=$1 out="" h m s frac
  if ((ms == 0)); then
    out=0s
  elif ((ms < 1000)); then
    out=${ms}ms
  else
    h=$((ms / 3600000)) m=$((ms / 60000 % 60)) s=$((ms / 1000 % 60)) frac=$((ms % 1000))
    ((h)) && out=${h}h
    ((h || m)) && out+=${m}m
    out+="$s"
    if ((frac)); then
      printf -v frac '%03d' "$frac"
      frac=${frac%0}
      frac=${frac%0}
      out+=.$frac
    fi
    out+="s"
  fi
  printf -v "$2" '%s' "$out"
}

# --- TOML values ------------------------------------------------------------------------

# toml_quote VAR VALUE: VAR = VALUE as a TOML basic string (with the quotes).
# (The functions that assign to a caller's VAR keep their own names "_"-prefixed.)
toml_quote() {
  local _v=$2
  if [[ $_v == *[\\\"[:cntrl:]]* ]]; then
    _v=${_v//\\/\\\\}
    _v=${_v//\"/\\\"}
    _v=${_v//$'\n'/\\n}
    _v=${_v//$'\t'/\\t}
    _v=${_v//$'\r'/\\r}
    if [[ $_v == *[[:cntrl:]]* ]]; then
      local _out="" _c _i
      for ((_i = 0; _i < ${#_v}; _i++)); do
        _c=${_v:_i:1}
        if [[ $_c == [[:cntrl:]] ]]; then
          printf -v _c '\\u%04x' "'$_c"
        fi
        _out+=$_c
      done
      _v=$_out
    fi
  fi
  printf -v "$1" '"%s"' "$_v"
}

# toml_key VAR KEY: VAR = KEY as a TOML key (bare when it can be, else quoted).
toml_key() {
  if [[ -n $2 && $2 != *[!A-Za-z0-9_-]* ]]; then
    printf -v "$1" '%s' "$2"
  else
    toml_quote "$1" "$2"
  fi
}

# toml_array VAR VALUE...: VAR = a TOML array of strings.
toml_array() {
  local _out="" _q _item
  local -a _qs=()
  for _item in "${@:2}"; do
    toml_quote _q "$_item"
    _qs+=("$_q")
  done
  # one join: appending to a string item by item is quadratic in bash (minutes for 2M requirements)
  ((${#_qs[@]})) && printf -v _out '%s, ' "${_qs[@]}"
  printf -v "$1" '[%s]' "${_out%, }"
}

# Go's %q for the plain strings the logs quote.
go_quote() {
  local _v=${2//\\/\\\\}
  printf -v "$1" '"%s"' "${_v//\"/\\\"}"
}

# --- detect: the build plan (written like packit's BurntSushi encoder) --------------

_PLAN_ALTS=() _PLAN_CUR=""

# plan_provide NAME
plan_provide() { _PLAN_CUR+=$'\n''P'"$1"; }
# plan_provides_empty: an explicit `provides = []` (python-start)
plan_provides_empty() { _PLAN_CUR+=$'\n''E'; }
# plan_require NAME [KEY=VALUE...]: metadata in the given order; true/false are booleans,
# everything else a string; prefix the key with "s:" to force a string, with "r:" to give
# a raw TOML value (an array).
plan_require() {
  local item
  _PLAN_CUR+=$'\n''R'"$1"
  for item in "${@:2}"; do _PLAN_CUR+=$'\n''M'"$item"; done
}
# plan_or: what follows is the next alternative ([[or]]).
plan_or() {
  _PLAN_ALTS+=("$_PLAN_CUR")
  _PLAN_CUR=""
}
# plan_write: write the plan to PLAN_PATH.
plan_write() {
  _PLAN_ALTS+=("$_PLAN_CUR")
  local out="" i
  for ((i = 0; i < ${#_PLAN_ALTS[@]}; i++)); do
    if ((i == 0)); then
      _plan_render "${_PLAN_ALTS[0]}" "" ""
    else
      out+=$'\n''[[or]]'$'\n'
      _plan_render "${_PLAN_ALTS[i]}" "or." "  "
    fi
    out+=$_PLAN_OUT
  done
  printf '%s' "${out#$'\n'}" > "$PLAN_PATH"
}
_plan_render() { # ITEMS TABLE-PREFIX INDENT -> _PLAN_OUT
  local items=$2 ind=$3 line key value q keys="" tables=""
  local -a lines
  IFS=$'\n' read -r -d '' -a lines <<< "$1" || true
  for line in "${lines[@]}"; do
    case $line in
      E) keys+="${ind}provides = []"$'\n' ;;
      P*)
        toml_quote q "${line:1}"
        tables+=$'\n'"${ind}[[${items}provides]]"$'\n'"${ind}  name = $q"$'\n'
        ;;
      R*)
        toml_quote q "${line:1}"
        tables+=$'\n'"${ind}[[${items}requires]]"$'\n'"${ind}  name = $q"$'\n'
        _plan_meta_open=1
        ;;
      M*)
        if ((_plan_meta_open)); then
          tables+="${ind}  [${items}requires.metadata]"$'\n'
          _plan_meta_open=0
        fi
        key=${line:1} value=${line#*=}
        key=${key%%=*}
        if [[ $key == r:* ]]; then
          key=${key#r:}
        elif [[ $key == s:* ]]; then
          key=${key#s:}
          toml_quote value "$value"
        elif [[ $value != true && $value != false ]]; then
          toml_quote value "$value"
        fi
        toml_key key "$key"
        tables+="${ind}    $key = $value"$'\n'
        ;;
    esac
  done
  _PLAN_OUT=$keys$tables
}
_plan_meta_open=0

# --- build: layers -------------------------------------------------------------------

# Metadata of the next layer_write, as TOML lines per table ("" = [metadata]).
meta_reset() { _META_MAIN="" _META_SUBS=() _META_SUB=(); }
# meta_set [-t SUBTABLE] KEY RAW-TOML-VALUE
meta_set() {
  local sub="" key
  if [[ $1 == -t ]]; then sub=$2; shift 2; fi
  toml_key key "$1"
  if [[ -z $sub ]]; then
    _META_MAIN+="  $key = $2"$'\n'
  else
    [[ -v "_META_SUB[$sub]" ]] || _META_SUBS+=("$sub")
    _META_SUB[$sub]+="    $key = $2"$'\n'
  fi
}
# meta_str [-t SUBTABLE] KEY STRING
meta_str() {
  local q
  if [[ $1 == -t ]]; then
    toml_quote q "$4"
    meta_set -t "$2" "$3" "$q"
  else
    toml_quote q "$2"
    meta_set "$1" "$q"
  fi
}
declare -gA _META_SUB=()
_META_SUBS=() _META_MAIN=""

# layer_write NAME LAUNCH BUILD CACHE: <layers>/<name>.toml with [types] (Buildpack API >= 0.6)
# and the metadata collected since meta_reset.
layer_write() {
  local out sub
  out="[types]"$'\n'"  build = $3"$'\n'"  cache = $4"$'\n'"  launch = $2"$'\n'
  if [[ -n $_META_MAIN || ${#_META_SUBS[@]} -gt 0 ]]; then
    out+=$'\n'"[metadata]"$'\n'$_META_MAIN
    for sub in "${_META_SUBS[@]}"; do
      out+=$'\n'"  [metadata.$sub]"$'\n'"${_META_SUB[$sub]}"
    done
  fi
  printf '%s' "$out" > "$LAYERS_DIR/$1.toml"
}

# layer_reset NAME [SUBDIR...]: packit's Layer.Reset - an empty layer dir - with the given
# subdirs made in the same `mkdir` (every external command costs a fork; the stubs keep
# them few).
layer_reset() {
  local dir=$LAYERS_DIR/$1 sub
  local -a dirs=("$dir")
  for sub in "${@:2}"; do dirs+=("$dir/$sub"); done
  [[ -e $dir ]] && rm -rf -- "$dir"
  mkdir -p -- "${dirs[@]}"
}

# dir_nonempty DIR: packit returns cache layers only when their dir exists and is not empty.
dir_nonempty() {
  local entries
  entries=("$1"/* "$1"/.[!.]*)
  [[ -e ${entries[0]} || -e ${entries[1]} ]]
}

# --- build: environment files (buildpack.md "Environment Variable Modification Rules") --

# env_set LAYER-DIR SCOPE NAME ACTION VALUE [DELIM]
#   SCOPE: env (shared), env.build, env.launch, env.launch/<process>
#   ACTION: default, override, prepend, append; packit writes NAME.delim with prepend/append.
env_set() {
  local dir=$1/$2
  [[ -d $dir ]] || mkdir -p -- "$dir"
  printf '%s' "$5" > "$dir/$3.$4"
  if [[ $# -ge 6 ]]; then
    printf '%s' "$6" > "$dir/$3.delim"
  fi
  _ENV_LOG+=("$2"$'\x1f'"$3"$'\x1f'"$4"$'\x1f'"$5"$'\x1f'"${6:-}")
}
env_log_reset() { _ENV_LOG=(); }
_ENV_LOG=()

# packit Emitter.EnvironmentVariables: the shared env merged into a build and a launch table,
# `NAME -> "value"` sorted and padded, prepend/append shown against $NAME.
log_env_tables() {
  local phase entry scope name action value delim
  for phase in build launch; do
    local -A shown=()
    local -a names=()
    for entry in "${_ENV_LOG[@]}"; do
      IFS=$'\x1f' read -r scope name action value delim <<< "$entry"
      [[ $scope == env || $scope == "env.$phase" ]] || continue
      case $action in
        prepend) value+=$delim${shown[$name]:-\$$name} ;;
        append) value=${shown[$name]:-\$$name}$delim$value ;;
      esac
      [[ -v "shown[$name]" ]] || names+=("$name")
      shown[$name]=$value
    done
    ((${#names[@]})) || continue
    local -a sorted=()
    local n width=0 table=""
    _sort_words sorted "${names[@]}"
    for n in "${sorted[@]}"; do ((${#n} > width)) && width=${#n}; done
    for n in "${sorted[@]}"; do
      printf -v entry '%-*s -> "%s"' "$width" "$n" "${shown[$n]}"
      table+=${table:+$'\n'}$entry
    done
    log_process "Configuring $phase environment"
    log_subprocess "$table"
    log_break
  done
}

# _sort_words VAR WORD...: VAR = the words in byte order (insertion sort; lists are short).
_sort_words() {
  local -n _out=$1
  local w i
  _out=()
  for w in "${@:2}"; do
    i=${#_out[@]}
    while ((i > 0)) && [[ ${_out[i - 1]} > $w ]]; do
      _out[i]=${_out[i - 1]}
      ((i--))
    done
    _out[i]=$w
  done
}

# The SBOM step of packit's dependency buildpacks: logged, not generated (the stubs declare
# no sbom-formats, so the lifecycle expects no <layer>.sbom.* files).
log_sbom() {
  log_process "Generating SBOM for $1"
  log_action "Completed in 0s"
  log_break
  if ((LOG_DEBUG)); then
    log_process "Writing SBOM in the following format(s):"
    log_break
  fi
}

# --- build: launch.toml ---------------------------------------------------------------

_LAUNCH_PROCS="" _LAUNCH_LABELS=""

# launch_process TYPE COMMAND DIRECT DEFAULT [ARG...]: an API <= 0.8 process (command is a
# string; `args` omitted when there are none; `default` omitted when false, as packit does).
launch_process() {
  local q args
  toml_quote q "$1"
  _LAUNCH_PROCS+=$'\n''[[processes]]'$'\n'"  type = $q"$'\n'
  toml_quote q "$2"
  _LAUNCH_PROCS+="  command = $q"$'\n'
  if [[ $# -gt 4 ]]; then
    toml_array args "${@:5}"
    _LAUNCH_PROCS+="  args = $args"$'\n'
  fi
  [[ $3 == omit ]] || _LAUNCH_PROCS+="  direct = $3"$'\n'
  [[ $4 == true ]] && _LAUNCH_PROCS+="  default = true"$'\n'
  return 0
}
# scribe Emitter.LaunchProcesses: one line per process, `<type>[ (default)]: <command>
# <args>`, commands aligned. ROW = type<US>default<US>command[<US>args joined by spaces]
# (<US> = $'\x1f'; no args field when the process has no args).
log_launch_processes() {
  local row width=0 line
  local -a f
  for row in "$@"; do
    IFS=$'\x1f' read -r -a f <<< "$row"
    [[ ${f[1]} == true ]] && f[0]+=" (default)"
    ((${#f[0]} > width)) && width=${#f[0]}
  done
  log_process "Assigning launch processes:"
  for row in "$@"; do
    IFS=$'\x1f' read -r -a f <<< "$row"
    [[ ${f[1]} == true ]] && f[0]+=" (default)"
    printf -v line '%s: %*s' "${f[0]}" $((width + ${#f[2]} - ${#f[0]})) "${f[2]}"
    [[ ${#f[@]} -gt 3 ]] && line+=" ${f[3]}"
    log_subprocess "$line"
  done
  log_break
}

# launch_label KEY VALUE
launch_label() {
  local k v
  toml_quote k "$1"
  toml_quote v "$2"
  _LAUNCH_LABELS+=$'\n''[[labels]]'$'\n'"  key = $k"$'\n'"  value = $v"$'\n'
}
# launch_write: <layers>/launch.toml, only when there is something to write.
launch_write() {
  local out=$_LAUNCH_PROCS$_LAUNCH_LABELS
  [[ -n $out ]] || return 0
  printf '%s' "${out#$'\n'}" > "$LAYERS_DIR/launch.toml"
}

# --- platform -------------------------------------------------------------------------

# libcnb's Platform.Environment: the names of the files in <platform>/env (sets PLATFORM_ENV).
platform_env_names() {
  PLATFORM_ENV=()
  local f
  for f in "$PLATFORM_DIR"/env/*; do
    [[ -f $f ]] && PLATFORM_ENV+=("${f##*/}")
  done
  return 0
}

# bindings_of_type TYPE: the binding dirs (k8s service binding spec, as libcnb reads them:
# $SERVICE_BINDING_ROOT, else <platform>/bindings) whose `type` is TYPE, case-insensitively.
bindings_of_type() {
  BINDINGS=()
  local root=${SERVICE_BINDING_ROOT:-${CNB_BINDINGS:-$PLATFORM_DIR/bindings}} dir type
  for dir in "$root"/*/; do
    [[ -f ${dir}type ]] || continue
    IFS= read -r type < "${dir}type" || true
    type=${type%$'\r'}
    [[ ${type,,} == "${1,,}" ]] && BINDINGS+=("${dir%/}")
  done
  return 0
}
