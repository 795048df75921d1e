# shellcheck shell=bash
# shellcheck disable=SC2034 # the UPPER_CASE globals set here are the bin scripts' inputs
# Reading the TOML files the lifecycle hands a buildpack (the buildpack plan, a restored
# <layer>.toml), and the build-plan questions packit's `draft.Planner` answers.
#
# toml_load flattens a document into three maps, paths joining keys and array indexes
# with "." (e.g. entries.0.metadata.version):
#   TOML[path]    a scalar's decoded value; an array's length
#   TOML_T[path]  string | bool | number | datetime | array | table
#   TOML_K[path]  a table's keys, one per line, in document order ($TOML_ROOT is the root table:
#                 the character \x1f, so that no key can collide with it). Keys holding the
#                 control characters \x01, \x1e, \x1f or \x7f are not supported (bash mangles
#                 \x01 and \x7f in array subscripts); no CNB file has them.
# A dot inside a quoted key is kept as $'\x1e' in paths (so "A.b" = 1 is TOML[A$'\x1e'b]).
# It reads TOML 1.0 as tomli-w, BurntSushi/toml and go-toml write it (tables, arrays of
# tables, dotted keys, inline tables, arrays, basic, literal and multi-line strings;
# numbers and dates are kept as written; a line-ending backslash in a multi-line basic
# string is not folded).

declare -gA TOML=() TOML_T=() TOML_K=()
TOML_ROOT=$'\x1f'
_TS="" _TI=0 _TLINES=()

# toml_load FILE [TABLE]: a missing or empty file is an empty document. With TABLE, only the
# root keys and the top-level TABLE (with its sub-tables) are read: reading stops at the first
# header of another table. On a syntax error it
# prints "FILE: invalid TOML near: ..." on stderr and returns 1. The document is read
# line by line (_TS is the unread rest of the current line); values that span lines
# (arrays, inline tables, multi-line strings) pull the next lines in.
toml_load() {
  local LC_ALL=C
  TOML=() TOML_T=(["$TOML_ROOT"]=table) TOML_K=()
  _TS="" _TI=0 _TLINES=()
  [[ -f $1 ]] || return 0
  mapfile -t _TLINES < "$1"
  _TOML_FILE=$1
  local prefix="" only=${2:-} key
  while ((_TI < ${#_TLINES[@]})); do
    _TS=${_TLINES[_TI++]}
    _TS=${_TS%$'\r'}
    _toml_skip_space
    [[ -z $_TS || $_TS == '#'* ]] && continue
    if [[ -n $only && $_TS == '['* ]]; then # with TABLE: stop at the first other table
      key=${_TS#'['} key=${key#'['} key=${key#"${key%%[![:space:]]*}"}
      [[ $key == "$only"[].\ ]* ]] || return 0
    fi
    if [[ $_TS == '[['* ]]; then
      _TS=${_TS:2}
      _toml_header_path || return 1
      [[ $_TS == ']]'* ]] || { _toml_error; return 1; }
      _TS=${_TS:2}
      _toml_table_array || return 1
      prefix=$_TP
    elif [[ $_TS == '['* ]]; then
      _TS=${_TS:1}
      _toml_header_path || return 1
      [[ $_TS == ']'* ]] || { _toml_error; return 1; }
      _TS=${_TS:1}
      _toml_open_table || return 1
      prefix=$_TP
    else
      _toml_keyval "$prefix" || return 1
    fi
    _toml_end_of_line || return 1
  done
}

# toml_scan FILE [TABLE]: the fast path of this reader, for the files the stubs write
# themselves (their buildpack.toml): the same maps as toml_load, read with string operations
# only, for documents made of headers, `key = "string"` (no escapes), `key = true|false` and
# arrays of one-line inline tables of such strings and string arrays. Any other line makes it
# read the whole file with toml_load instead. With TABLE, as toml_load's.
toml_scan() {
  local LC_ALL=C file=$1 only=${2:-} line prefix="" key value arr="" item body rest list j
  TOML=() TOML_T=(["$TOML_ROOT"]=table) TOML_K=()
  [[ -f $file ]] || return 0
  _TOML_FILE=$file
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line#"${line%%[![:space:]]*}"}
    line=${line%"${line##*[![:space:]]}"}
    [[ -z $line || $line == '#'* ]] && continue
    if [[ -n $arr ]]; then # inside `key = [`: one inline table per line, then `]`
      if [[ $line == ']' ]]; then
        arr=""
        continue
      fi
      [[ $line == '{ '*' },' || $line == '{ '*' }' ]] || { toml_load "$@"; return; }
      body=${line#'{ '} body=${body%,} body=${body%' }'}
      item=$arr.${TOML[$arr]} TOML[$arr]=$((TOML[$arr] + 1))
      TOML_T[$item]=table
      while [[ -n $body ]]; do
        key=${body%%' = '*} rest=${body#*' = '}
        [[ $key != "$body" && -n $key && $key != *[!A-Za-z0-9_-]* ]] || { toml_load "$@"; return; }
        TOML_K[$item]+=$key$'\n'
        if [[ $rest == '['* ]]; then
          list=${rest%%']'*} list=${list#'['} rest=${rest#*']'}
          TOML_T[$item.$key]=array j=0
          while [[ -n $list ]]; do
            value=${list%%', '*}
            [[ $value == \"*\" && ${value:1:-1} != *[\"\\]* ]] || { toml_load "$@"; return; }
            TOML_T[$item.$key.$j]=string TOML[$item.$key.$j]=${value:1:-1}
            j=$((j + 1))
            [[ $list == *', '* ]] && list=${list#*', '} || list=""
          done
          TOML[$item.$key]=$j
        elif [[ $rest == \"* ]]; then
          value=${rest:1} value=${value%%\"*}
          [[ $value != *\\* ]] || { toml_load "$@"; return; }
          rest=${rest:${#value}+2}
          TOML_T[$item.$key]=string TOML[$item.$key]=$value
        else
          toml_load "$@"
          return
        fi
        [[ -z $rest || $rest == ', '* ]] || { toml_load "$@"; return; }
        body=${rest#', '}
      done
      continue
    fi
    case $line in
      '['*)
        if [[ -n $only ]]; then
          key=${line#'['} key=${key#'['}
          [[ $key == "$only]"* || $key == "$only."* ]] || return 0
        fi
        _TS=$line
        if [[ $line == '[['*']]' ]]; then
          _TS=${_TS:2} _TS=${_TS%']]'}
          _toml_header_path || return 1
          _toml_table_array
        elif [[ $line == '['*']' ]]; then
          _TS=${_TS:1} _TS=${_TS%']'}
          _toml_header_path || return 1
          _toml_open_table
        else
          toml_load "$@"
          return
        fi
        prefix=$_TP
        ;;
      *)
        key=${line%%' = '*} value=${line#*' = '}
        [[ $key != "$line" && -n $key && $key != *[!A-Za-z0-9_-]* ]] || { toml_load "$@"; return; }
        key=${prefix:+$prefix.}$key
        case $value in
          true | false) _toml_define "$key" bool ;;
          '[')
            _toml_define "$key" array
            arr=$key
            continue
            ;;
          \"*\")
            value=${value:1:-1}
            [[ $value != *[\"\\]* ]] || { toml_load "$@"; return; }
            _toml_define "$key" string
            ;;
          *)
            toml_load "$@"
            return
            ;;
        esac
        TOML[$key]=$value
        ;;
    esac
  done < "$file"
}

_toml_error() {
  printf '%s: invalid TOML at line %s near: %s\n' "$_TOML_FILE" "$_TI" "${_TS:0:40}" >&2
}

# Blanks, comments and line ends inside a value (arrays, inline tables): _TS becomes the
# next significant text, pulling in lines; returns 1 at the end of the document.
_toml_skip_blank() {
  while :; do
    _toml_skip_space
    [[ -n $_TS && $_TS != '#'* ]] && return 0
    ((_TI < ${#_TLINES[@]})) || { _TS=""; return 1; }
    _TS=${_TLINES[_TI++]}
    _TS=${_TS%$'\r'}
  done
}
_toml_skip_space() { _TS=${_TS#"${_TS%%[!$' \t']*}"}; }
_toml_end_of_line() {
  _toml_skip_space
  [[ -z $_TS || $_TS == '#'* ]] && return 0
  _toml_error
  return 1
}

# One key (bare, "basic" or 'literal') -> _TKEY
_toml_key() {
  _toml_skip_space
  local bare=${_TS%%[!A-Za-z0-9_-]*}
  if [[ -n $bare ]]; then
    _TKEY=$bare
    _TS=${_TS:${#bare}}
  elif [[ $_TS == [\"\']* ]]; then
    _toml_string || return 1
    _TKEY=${_TSTR//./$'\x1e'}
  else
    _toml_error
    return 1
  fi
  _toml_skip_space
}

# A "basic" or 'literal' string at the front of _TS -> _TSTR (consumed).
_toml_string() {
  local body
  if [[ $_TS == \'* ]]; then
    body=${_TS:1}
    [[ $body == *\'* ]] || { _toml_error; return 1; }
    _TSTR=${body%%\'*}
    _TS=${body:${#_TSTR}+1}
    return 0
  fi
  body=${_TS:1}
  _TSTR=${body%%[\"\\]*}
  if [[ ${body:${#_TSTR}:1} == '"' ]]; then # no escapes: the common case
    _TS=${body:${#_TSTR}+1}
    return 0
  fi
  [[ $_TS =~ ^\"(([^\"\\]|\\.)*)\" ]] || { _toml_error; return 1; }
  _TS=${_TS:${#BASH_REMATCH[0]}}
  _toml_unescape "${BASH_REMATCH[1]}"
}

# A dotted key -> _TKEYS (array)
_toml_dotted_key() {
  _TKEYS=()
  while :; do
    _toml_key || return 1
    _TKEYS+=("$_TKEY")
    [[ $_TS == .* ]] || return 0
    _TS=${_TS:1}
  done
}

# _toml_define PATH TYPE: record PATH (and its key in the parent table) if new.
_toml_define() {
  [[ -v "TOML_T[$1]" ]] && return 0
  TOML_T[$1]=$2
  local parent=$TOML_ROOT key=$1
  if [[ $1 == *.* ]]; then parent=${1%.*} key=${1##*.}; fi
  [[ ${TOML_T[$parent]:-} == table ]] && TOML_K[$parent]+=$key$'\n'
  [[ $2 == array ]] && TOML[$1]=0
  return 0
}

# Header keys -> _TKEYS; then _TP is resolved by the callers.
_toml_header_path() { _toml_skip_space; _toml_dotted_key; }

# _toml_walk: resolve _TKEYS except the last into _TP, through the last element of arrays.
_toml_walk() {
  local k n=$((${#_TKEYS[@]} - 1)) i
  _TP=""
  for ((i = 0; i < n; i++)); do
    k=${_TKEYS[i]}
    _TP=${_TP:+$_TP.}$k
    _toml_define "$_TP" table
    if [[ ${TOML_T[$_TP]} == array ]]; then
      _TP+=.$((TOML[$_TP] - 1))
    fi
  done
}
_toml_open_table() {
  _toml_walk
  _TP=${_TP:+$_TP.}${_TKEYS[-1]}
  _toml_define "$_TP" table
  if [[ ${TOML_T[$_TP]} == array ]]; then
    _TP+=.$((TOML[$_TP] - 1))
  fi
}
_toml_table_array() {
  _toml_walk
  _TP=${_TP:+$_TP.}${_TKEYS[-1]}
  _toml_define "$_TP" array
  local i=${TOML[$_TP]}
  TOML[$_TP]=$((i + 1))
  _TP+=.$i
  TOML_T[$_TP]=table
}

# _toml_keyval TABLE-PATH: `key = value` (dotted keys create tables).
_toml_keyval() {
  _toml_dotted_key || return 1
  [[ $_TS == '='* ]] || { _toml_error; return 1; }
  _TS=${_TS:1}
  _toml_skip_space
  local path=$1 i n=$((${#_TKEYS[@]} - 1))
  for ((i = 0; i < n; i++)); do
    path=${path:+$path.}${_TKEYS[i]}
    _toml_define "$path" table
  done
  _toml_value "${path:+$path.}${_TKEYS[n]}"
}

# _toml_value PATH: parse the value at the front of _TS into PATH.
_toml_value() {
  local path=$1
  case $_TS in
    '"""'* | "'''"*)
      local quote=${_TS:0:3} raw
      _TS=${_TS:3}
      while [[ $_TS != *"$quote"* ]]; do
        ((_TI < ${#_TLINES[@]})) || { _toml_error; return 1; }
        _TS+=$'\n'${_TLINES[_TI++]%$'\r'}
      done
      raw=${_TS%%"$quote"*}
      _TS=${_TS:${#raw}+3}
      raw=${raw#$'\n'}
      if [[ $quote == '"""' ]]; then _toml_unescape "$raw"; else _TSTR=$raw; fi
      _toml_define "$path" string
      TOML[$path]=$_TSTR
      ;;
    '"'* | "'"*)
      _toml_string || return 1
      _toml_define "$path" string
      TOML[$path]=$_TSTR
      ;;
    '['*)
      _TS=${_TS:1}
      _toml_define "$path" array
      local n=0
      while :; do
        _toml_skip_blank || { _toml_error; return 1; }
        [[ $_TS == ']'* ]] && break
        _toml_value "$path.$n" || return 1
        n=$((n + 1))
        _toml_skip_blank || { _toml_error; return 1; }
        if [[ $_TS == ','* ]]; then
          _TS=${_TS:1}
        elif [[ $_TS != ']'* ]]; then
          _toml_error
          return 1
        fi
      done
      _TS=${_TS:1}
      TOML[$path]=$n
      ;;
    '{'*)
      _TS=${_TS:1}
      _toml_define "$path" table
      while :; do
        _toml_skip_blank || { _toml_error; return 1; }
        [[ $_TS == '}'* ]] && break
        _toml_keyval "$path" || return 1
        _toml_skip_blank || { _toml_error; return 1; }
        if [[ $_TS == ','* ]]; then
          _TS=${_TS:1}
        elif [[ $_TS != '}'* ]]; then
          _toml_error
          return 1
        fi
      done
      _TS=${_TS:1}
      ;;
    true* | false*)
      local v=true
      [[ $_TS == false* ]] && v=false
      _TS=${_TS:${#v}}
      _toml_define "$path" bool
      TOML[$path]=$v
      ;;
    *)
      local token=${_TS%%[!-+0-9A-Za-z_.:]*}
      if [[ -z $token ]]; then
        _toml_error
        return 1
      fi
      if [[ $token == [0-9][0-9][0-9][0-9]-* || $token == [0-9][0-9]:* ]]; then
        # a date-time may have a space between the date and the time
        [[ $_TS == "$token "[0-9][0-9]:* ]] && token=${_TS%%[!-+0-9A-Za-z_.: ]*} token=${token% }
        _toml_define "$path" datetime
      else
        _toml_define "$path" number
      fi
      TOML[$path]=$token
      _TS=${_TS:${#token}}
      ;;
  esac
}

# Basic-string escapes (\" \\ \n \t \r \b \f \uXXXX \UXXXXXXXX) -> _TSTR
_toml_unescape() {
  if [[ $1 != *\\* ]]; then
    _TSTR=$1
    return 0
  fi
  printf -v _TSTR '%b' "${1//\\\"/\"}"
}

# --- the buildpack plan ([[entries]] name, metadata) -----------------------------------

# plan_load: read BP_PLAN_PATH into PLAN, PLAN_T, PLAN_K (the TOML maps, kept apart from
# later toml_load calls) and PLAN_N, the number of entries.
declare -gA PLAN=() PLAN_T=() PLAN_K=()
plan_load() {
  toml_load "$BP_PLAN_PATH" || die "failed to parse buildpack plan $BP_PLAN_PATH"
  local key
  for key in "${!TOML[@]}"; do PLAN[$key]=${TOML[$key]}; done
  for key in "${!TOML_T[@]}"; do PLAN_T[$key]=${TOML_T[$key]}; done
  for key in "${!TOML_K[@]}"; do PLAN_K[$key]=${TOML_K[$key]}; done
  PLAN_N=${PLAN[entries]:-0}
  [[ ${PLAN_T[entries]:-} == array ]] || PLAN_N=0
}

# plan_entries NAME: PLAN_IDX = the indexes of the entries with that name, in plan order.
plan_entries() {
  PLAN_IDX=()
  local i
  for ((i = 0; i < PLAN_N; i++)); do
    [[ ${PLAN[entries.$i.name]:-} == "$1" ]] && PLAN_IDX+=("$i")
  done
  return 0
}

# plan_str I KEY: _V = the entry's metadata KEY if it is a string (else return 1).
plan_str() {
  [[ ${PLAN_T[entries.$1.metadata.$2]:-} == string ]] || return 1
  _V=${PLAN[entries.$1.metadata.$2]}
}

# draft.Planner.MergeLayerTypes: launch/build is true if any entry with NAME says so
# (a boolean true; anything else counts as false). Sets MERGED_LAUNCH, MERGED_BUILD.
plan_merge_types() {
  MERGED_LAUNCH=false MERGED_BUILD=false
  local i
  plan_entries "$1"
  for i in "${PLAN_IDX[@]}"; do
    [[ ${PLAN_T[entries.$i.metadata.launch]:-} == bool && ${PLAN[entries.$i.metadata.launch]} == true ]] \
      && MERGED_LAUNCH=true
    [[ ${PLAN_T[entries.$i.metadata.build]:-} == bool && ${PLAN[entries.$i.metadata.build]} == true ]] \
      && MERGED_BUILD=true
  done
  return 0
}

# draft.Planner.Resolve NAME PRIORITY...: RESOLVED = the entries with NAME sorted by the
# position of their version-source in PRIORITY (first = highest; unknown = lowest). Go's
# sort.Slice on so few entries is an insertion sort, i.e. stable: plan order breaks ties.
plan_resolve() {
  local name=$1 i j p rank
  shift
  plan_entries "$name"
  RESOLVED=() _RANKS=()
  for i in "${PLAN_IDX[@]}"; do
    rank=-1
    if plan_str "$i" version-source; then
      for ((p = 1; p <= $#; p++)); do
        [[ ${!p} == "$_V" ]] && rank=$(($# - p))
      done
    fi
    j=${#RESOLVED[@]}
    while ((j > 0)) && ((_RANKS[j - 1] < rank)); do
      RESOLVED[j]=${RESOLVED[j - 1]} _RANKS[j]=${_RANKS[j - 1]}
      ((j--))
    done
    RESOLVED[j]=$i _RANKS[j]=$rank
  done
  return 0
}

# The source packit shows for an entry: its version-source, "<unknown>" when it has none.
_entry_source() {
  if plan_str "$1" version-source; then _SRC=$_V; else _SRC="<unknown>"; fi
}

# scribe Emitter.Candidates over RESOLVED.
log_candidates() {
  local i width=0 seen=$'\n' pair q version
  local -a rows=()
  for i in "${RESOLVED[@]}"; do
    _entry_source "$i"
    ((${#_SRC} > width)) && width=${#_SRC}
    version=""
    plan_str "$i" version && version=$_V
    pair=$_SRC$'\t'$version
    [[ $seen == *$'\n'$pair$'\n'* ]] && continue
    seen+=$pair$'\n'
    rows+=("$pair")
  done
  log_subprocess "Candidate version sources (in priority order):"
  for pair in "${rows[@]}"; do
    go_quote q "${pair#*$'\t'}"
    printf -v pair '%-*s -> %s' "$width" "${pair%%$'\t'*}" "$q"
    log_action "$pair"
  done
  log_break
}

# The version constraint of the chosen (first resolved) entry -> _V ("" if none).
resolved_version() {
  _V=""
  ((${#RESOLVED[@]})) || return 0
  plan_str "${RESOLVED[0]}" version || _V=""
}
