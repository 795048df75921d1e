# shellcheck shell=bash
# shellcheck disable=SC2034 # the UPPER_CASE globals set here are the bin scripts' inputs
# Dependency selection as packit's postal.Service.Resolve does it (github.com/paketo-buildpacks/packit, postal/service.go),
# over the dependency table of the stub's buildpack.toml, with version constraints checked
# the way Masterminds/semver v3 checks them. Needs toml.sh (the plan's entries).

# semver_parse VERSION: _SV = (major minor patch) and _SVD = the number of parts given
# before the first wildcard (x, X or *; wildcard parts count as 0). Returns 1 if invalid.
semver_parse() {
  local core=${1#v} part i=0
  core=${core%%[-+]*}
  _SV=(0 0 0)
  _SVD=0
  [[ -n $core && $core != *[!0-9xX*.]* && $core != *..* && $core != .* && $core != *. ]] || return 1
  while [[ -n $core ]]; do
    ((i < 3)) || return 1
    part=${core%%.*}
    if [[ $core == *.* ]]; then core=${core#*.}; else core=""; fi
    case $part in
      x | X | '*') _SVD=$((_SVD < i ? _SVD : i)) ;;
      *[!0-9]*) return 1 ;;
      *)
        _SV[i]=$((10#$part))
        ((_SVD == i)) && _SVD=$((i + 1))
        ;;
    esac
    i=$((i + 1))
  done
  return 0
}

# _semver_cmp A0 A1 A2 B0 B1 B2 -> _CMP = -1, 0, 1
_semver_cmp() {
  _CMP=0
  if (($1 != $4)); then _CMP=$(($1 < $4 ? -1 : 1))
  elif (($2 != $5)); then _CMP=$(($2 < $5 ? -1 : 1))
  elif (($3 != $6)); then _CMP=$(($3 < $6 ? -1 : 1))
  fi
}

# semver_compile CONSTRAINT: _SC_GROUPS = its alternatives (`||`), each a space-separated
# list of conditions that must all hold (`,` or blanks separate them; blanks after an
# operator are dropped). Returns 2 when it does not parse ("improper constraint").
semver_compile() {
  local rest=$1 group ch cond
  _SC_GROUPS=()
  while :; do
    group=${rest%%'||'*}
    for ch in '=' '<' '>' '~' '^' '!'; do
      while [[ $group == *"$ch "* ]]; do group=${group//"$ch "/$ch}; done
    done
    group=${group//,/ }
    group=${group//$'\t'/ }
    local -a conds
    read -r -a conds <<< "$group"
    ((${#conds[@]})) || return 2
    for cond in "${conds[@]}"; do
      _semver_op "$cond"
      semver_parse "${cond:${#_OP}}" || return 2
    done
    _SC_GROUPS+=("${conds[*]}")
    [[ $rest == *'||'* ]] || return 0
    rest=${rest#*'||'}
  done
}

# semver_match VERSION: 0 if VERSION satisfies the compiled constraint, else 1.
semver_match() {
  semver_parse "$1" || return 1
  local v0=${_SV[0]} v1=${_SV[1]} v2=${_SV[2]} group cond all
  local -
  set -f # a condition may be "*"
  for group in "${_SC_GROUPS[@]}"; do
    all=0
    for cond in $group; do
      _semver_check "$cond" "$v0" "$v1" "$v2" || { all=1; break; }
    done
    ((all == 0)) && return 0
  done
  return 1
}

# semver_satisfies CONSTRAINT VERSION: 0 satisfied, 1 not, 2 CONSTRAINT does not parse.
semver_satisfies() {
  semver_compile "$1" || return 2
  semver_match "$2"
}

_semver_op() { # COND -> _OP
  case $1 in
    '!='* | '>='* | '=>'* | '<='* | '=<'* | '~>'*) _OP=${1:0:2} ;;
    [=\<\>~^]*) _OP=${1:0:1} ;;
    *) _OP="" ;;
  esac
}

# _semver_check COND MAJOR MINOR PATCH: Masterminds v3's constraint functions. A "dirty"
# condition has missing or wildcard parts (3.10, 3.10.x): `=` then means a range.
_semver_check() {
  local v=("$2" "$3" "$4") op
  _semver_op "$1"
  op=$_OP
  semver_parse "${1:${#op}}"
  local c=("${_SV[@]}") given=$_SVD
  local minor_dirty=$((given < 2)) patch_dirty=$((given < 3))
  if ((given == 0)) && [[ $op == "" || $op == = ]]; then return 0; fi # "*": anything
  _semver_cmp "${v[@]}" "${c[@]}"
  case $op in
    "" | =)
      if ((patch_dirty)); then _semver_tilde; return; fi
      ((_CMP == 0))
      ;;
    !=)
      if ((patch_dirty)); then
        ((v[0] != c[0])) && return 0
        ((minor_dirty)) && return 1
        ((v[1] != c[1])) && return 0
        return 1
      fi
      ((_CMP != 0))
      ;;
    '>')
      if ((!patch_dirty)); then ((_CMP > 0)); return; fi
      ((v[0] > c[0])) && return 0
      ((v[0] < c[0])) && return 1
      ((minor_dirty)) && return 1
      ((v[1] > c[1]))
      ;;
    '<') ((_CMP < 0)) ;;
    '>=' | '=>') ((_CMP >= 0)) ;;
    '<=' | '=<')
      if ((!patch_dirty)); then ((_CMP <= 0)); return; fi
      ((v[0] > c[0])) && return 1
      ((v[0] == c[0] && v[1] > c[1] && !minor_dirty)) && return 1
      return 0
      ;;
    '~' | '~>') _semver_tilde ;;
    '^')
      ((_CMP < 0)) && return 1
      if ((c[0] > 0 || minor_dirty)); then ((v[0] == c[0])); return; fi
      ((v[0] > 0)) && return 1
      if ((c[1] > 0 || patch_dirty)); then ((v[1] == c[1])); return; fi
      ((v[1] == c[1] && v[2] == c[2]))
      ;;
  esac
}
_semver_tilde() { # uses v, c, _CMP, minor_dirty, patch_dirty of the caller
  ((_CMP < 0)) && return 1
  ((c[0] == 0 && c[1] == 0 && c[2] == 0 && !minor_dirty && !patch_dirty)) && return 0
  ((v[0] != c[0])) && return 1
  ((v[1] != c[1] && !minor_dirty)) && return 1
  return 0
}

# deps_load: DEPS = "id<TAB>version<TAB>stacks<TAB>checksum" rows of [metadata] dependencies
# and DEFAULT_VERSIONS[id] from [metadata.default-versions], read with toml.sh; the checksum is
# the `checksum` key, or a bare `sha256` as older dependency tables have it.
DEPS=() _DEPS_LOADED=0
declare -gA DEFAULT_VERSIONS=()
deps_load() {
  local LC_ALL=C
  DEPS=() DEFAULT_VERSIONS=() _DEPS_LOADED=1
  toml_scan "$SELF_DIR/buildpack.toml" || die "cannot read $SELF_DIR/buildpack.toml"
  local i j d stacks key
  for ((i = 0; i < ${TOML[metadata.dependencies]:-0}; i++)); do
    d=metadata.dependencies.$i stacks=""
    for ((j = 0; j < ${TOML[$d.stacks]:-0}; j++)); do stacks+=${stacks:+ }${TOML[$d.stacks.$j]}; done
    DEPS+=("${TOML[$d.id]:-}"$'\t'"${TOML[$d.version]:-}"$'\t'"$stacks"$'\t'"${TOML[$d.checksum]:-${TOML[$d.sha256]:-}}")
  done
  while IFS= read -r key; do
    [[ -n $key && ${TOML_T[metadata.default-versions.$key]:-} == string ]] \
      && DEFAULT_VERSIONS[$key]=${TOML[metadata.default-versions.$key]}
  done <<< "${TOML_K[metadata.default-versions]:-}"
  return 0
}

# dep_resolve ID CONSTRAINT: DEP_VERSION, DEP_CHECKSUM of the highest version that satisfies
# CONSTRAINT on CNB_STACK_ID (an entry for the stack beats a "*" entry of the same version).
# Errors exit 1 with postal's messages.
dep_resolve() {
  local LC_ALL=C
  local id=$1 constraint=$2 row rid rversion rstacks rsum supported="" best="" best_sum="" best_v=""
  ((_DEPS_LOADED)) || deps_load
  [[ -n $constraint && $constraint != default ]] || constraint=${DEFAULT_VERSIONS[$id]:-*}
  if [[ $constraint == *'~>'* ]]; then
    constraint=${constraint//'~>'/}
    local dots=${constraint//[!.]/}
    if ((${#dots} == 2)); then constraint="~$constraint"; else constraint="^$constraint"; fi
  fi
  semver_compile "$constraint" || die "improper constraint: $constraint"
  local -A matched=()
  for row in "${DEPS[@]}"; do
    rid=${row%%$'\t'*} row=${row#*$'\t'}
    rversion=${row%%$'\t'*} row=${row#*$'\t'}
    rstacks=" ${row%%$'\t'*} " rsum=${row#*$'\t'}
    [[ $rid == "$id" ]] || continue
    [[ $rstacks == *" $STACK_ID "* || $rstacks == *" * "* ]] || continue
    supported+=${supported:+, }$rversion
    if [[ ! -v "matched[$rversion]" ]]; then
      matched[$rversion]=0
      semver_match "$rversion" || matched[$rversion]=1
    fi
    ((matched[$rversion] == 0)) || continue
    if [[ -n $best ]]; then
      semver_parse "$rversion"
      _semver_cmp "${_SV[@]}" "${best_v[@]}"
      ((_CMP < 0)) && continue
      # the same version: an entry for this very stack beats a "*" one
      ((_CMP == 0)) && [[ $rstacks == *" * "* ]] && continue
    fi
    semver_parse "$rversion"
    best=$rversion best_sum=$rsum best_v=("${_SV[@]}")
  done
  [[ -n $best ]] || die "failed to satisfy \"$id\" dependency version constraint \"$constraint\": no compatible versions on \"$STACK_ID\" stack. Supported versions are: [$supported]"
  DEP_VERSION=$best DEP_CHECKSUM=$best_sum
}

# scribe Emitter.SelectedDependency for the first resolved entry (no deprecation dates:
# the stubs' dependency tables carry none).
log_selected() { # DEPENDENCY-NAME
  local src="<unknown>"
  if ((${#RESOLVED[@]})); then
    _entry_source "${RESOLVED[0]}"
    src=$_SRC
  fi
  log_subprocess "Selected $1 version (using $src): $DEP_VERSION"
  log_break
}

# resolve_dependency PLAN-NAME DEP-ID DISPLAY-NAME PRIORITY...: the candidate table, the
# version choice and the "Selected" line, as packit's dependency-installing buildpacks log it.
resolve_dependency() {
  local plan_name=$1 dep_id=$2 display=$3
  shift 3
  log_process "Resolving $display version"
  plan_resolve "$plan_name" "$@"
  log_candidates
  resolved_version
  dep_resolve "$dep_id" "$_V"
  log_selected "$display"
}
