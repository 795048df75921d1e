"""Finding and decoding the inputs (PlanQK's job-template runtime, as planqk-commons' planqk/commons/runtime has it).

Two layouts. The job-template's (T0-T3): `data` and `params`, each taken from the first source
that exists, in this order (shown for data): `DATA_FILE`, `<root>/data.json`,
`<root>/data/data.json`, `DATA_VALUE`, the deprecated `INPUT_DATA`; otherwise `{}`. `<root>` is
`PLANQK_INPUT_ROOT` (default `/var/input`). Files and values are base64 unless `BASE64_ENCODED`
or `DATA_BASE64_ENCODED` says otherwise. A source that cannot be read or decoded is logged and
gives `{}`, as PlanQK's runtime does: the job still runs.

The project's own `./input/data.json` is not a source: a container sees only the inputs that
are mounted or given (PlanQK's runtime reads it only when `DATA_FILE` names an existing file,
T3); `DATA_FILE=input/data.json` reads it on purpose.

PlanQK's current runtime (v2, T4): one file per input in `INPUT_DIRECTORY` (default
`/var/runtime/input`), named after the parameter it is for (`data.json` -> `data`); used
whenever that directory exists, with no base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

INPUT_ROOT_VAR = "PLANQK_INPUT_ROOT"
DEFAULT_INPUT_ROOT = "/var/input"
INPUT_DIRECTORY_VAR = "INPUT_DIRECTORY"
DEFAULT_INPUT_DIRECTORY = "/var/runtime/input"
TRUTHY = ("yes", "true", "1")
BASE64_TEXT = re.compile(rb"\s*[A-Za-z0-9+/_-]+={0,2}\s*")

log = logging.getLogger(__name__)


class InputError(ValueError):
    """An input source that cannot be decoded; the message says how to fix it."""


@dataclass(frozen=True)
class Source:
    name: str              # "data" or "params"
    kind: str              # "file" or "environment variable"
    where: str             # the path or the variable's name
    value: Optional[str] = None   # the variable's value (kind "environment variable")

    def __str__(self) -> str:
        return f"{self.kind} '{self.where}'"

    def read(self) -> bytes:
        if self.value is not None:
            return self.value.encode("utf-8", "surrogateescape")
        with open(self.where, "rb") as fh:
            return fh.read()


def truthy(env: Mapping[str, str], name: str) -> bool:
    """A flag that is true unless set to something other than yes/true/1 (any case)."""
    value = env.get(name)
    return True if value is None else value.strip().lower() in TRUTHY


def is_base64(env: Mapping[str, str], name: str) -> bool:
    return truthy(env, "BASE64_ENCODED") and truthy(env, f"{name.upper()}_BASE64_ENCODED")


def candidates(name: str, env: Mapping[str, str], cwd: str) -> List[str]:
    """The files looked at for an input, in order."""
    root = env.get(INPUT_ROOT_VAR) or DEFAULT_INPUT_ROOT
    files = [os.path.join(root, f"{name}.json"), os.path.join(root, name, f"{name}.json")]
    explicit = env.get(f"{name.upper()}_FILE")
    if explicit:
        files.insert(0, os.path.join(cwd, explicit))
    return files


def find(name: str, env: Mapping[str, str], cwd: str) -> Optional[Source]:
    """The first source of an input that exists, or None."""
    upper = name.upper()
    explicit = env.get(f"{upper}_FILE")
    if explicit and not os.path.isfile(os.path.join(cwd, explicit)):
        log.warning("%s_FILE=%r is not a file; looking for %s elsewhere", upper, explicit, name)
    for path in candidates(name, env, cwd):
        if os.path.isfile(path):
            return Source(name, "file", path)
    for variable, deprecated in ((f"{upper}_VALUE", False), (f"INPUT_{upper}", True)):
        if env.get(variable):
            if deprecated:
                log.warning("DEPRECATED: %s is deprecated, use %s_VALUE instead", variable, upper)
            return Source(name, "environment variable", variable, env[variable])
    return None


def decode(raw: bytes, base64_encoded: bool) -> Any:
    """base64 (URL-safe or standard alphabet, padding required) if asked, then UTF-8, then JSON."""
    hint = _hint(raw, base64_encoded)
    if base64_encoded:
        try:
            raw = base64.urlsafe_b64decode(raw)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"is not valid base64 ({exc}){hint}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"is not UTF-8 text{hint}") from None
    if text.startswith("\ufeff"):
        raise InputError("starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without BOM")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}") from None


def load(name: str, env: Mapping[str, str], cwd: str) -> Any:
    """The value of one input; `{}` when there is none or it cannot be decoded."""
    return load_with_source(name, env, cwd)[0]


def load_with_source(name: str, env: Mapping[str, str], cwd: str) -> Tuple[Any, str]:
    """(the value of one input, where it came from); `{}` when there is none or it cannot be decoded."""
    encoded = is_base64(env, name)
    log.debug("Input %s: base64 encoded = %s", name, encoded)
    source = find(name, env, cwd)
    if source is None:
        local = os.path.join("input", f"{name}.json")
        unread = (f"; the project's {local} is not read (only given inputs are: mount it at "
                  f"{env.get(INPUT_ROOT_VAR) or DEFAULT_INPUT_ROOT}/{name}.json or set {name.upper()}_FILE={local})"
                  if os.path.isfile(os.path.join(cwd, local)) else "")
        log.warning("No input %s found (looked at %s, %s_VALUE, INPUT_%s); working with empty dict%s",
                    name, ", ".join(candidates(name, env, cwd)), name.upper(), name.upper(), unread)
        return {}, f"the empty input (no {name} given)"
    log.info("Using input %s from %s", name, source)
    try:
        raw = source.read()
    except OSError as exc:
        log.error("Cannot read input %s from %s: %s; working with empty dict", name, source, exc.strerror or exc)
        return {}, str(source)
    try:
        value = decode(raw, encoded)
    except InputError as exc:
        log.error("Input %s from %s %s; working with empty dict", name, source, exc)
        return {}, str(source)
    return ({} if value is None else value), str(source)


def input_directory(env: Mapping[str, str]) -> Optional[str]:
    """The v2 layout's input directory when it exists, else None."""
    path = env.get(INPUT_DIRECTORY_VAR) or DEFAULT_INPUT_DIRECTORY
    return path if os.path.isdir(path) else None


def load_directory(path: str) -> Dict[str, Tuple[str, str]]:
    """The v2 layout: {input name: (file text, source)} for each regular file in `path`, the name being
    the file's name up to its first '.'; raises InputError for a file that cannot be read."""
    found: Dict[str, Tuple[str, str]] = {}
    for entry in sorted(os.listdir(path)):
        file = os.path.join(path, entry)
        name = entry.split(".", 1)[0]
        if entry.startswith(".") or not name or not os.path.isfile(file):
            continue
        source = Source(name, "file", file)
        try:
            text = source.read().decode("utf-8")
        except OSError as exc:
            raise InputError(f"cannot read input {name} from {source}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"input {name} from {source} is not UTF-8 text (save it as UTF-8)") from None
        if name in found:
            log.warning("Input %s: %s is ignored, %s came first", name, source, found[name][1])
            continue
        log.info("Using input %s from %s", name, source)
        found[name] = (text.lstrip("\ufeff"), str(source))
    return found


def _hint(raw: bytes, base64_encoded: bool) -> str:
    """What the user most likely got wrong: the base64 flag."""
    if base64_encoded and raw.lstrip()[:1] in (b"{", b"["):
        return " (it looks like plain JSON: set BASE64_ENCODED=false)"
    if not base64_encoded and BASE64_TEXT.fullmatch(raw):
        return " (it looks base64-encoded: set BASE64_ENCODED=true)"
    return ""
