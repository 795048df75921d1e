"""Binding the inputs to the parameters of a typed `run()`, as PlanQK's current ("v2") runtime does.

A function with no annotated parameter (`run(data=None, params=None)`, `run(**kwargs)`) is
called as the job-template always called it: `run(data=..., params=...)`. A function with
annotated parameters gets only its own parameters, each converted to its annotation:

* a pydantic model (v1 or v2 API, whichever the user's code installed) is validated;
* `dict`, `list`, `tuple`, `set`, `str`, `int`, `float`, `bool`, `Literal`, an `Enum`, a
  dataclass, `datetime`/`date`/`time`, `UUID`, `Decimal` and `Path` are converted, with the
  item types of `List[...]`/`Dict[..., ...]`;
* `Optional[...]`/`Union[...]` tries its members in order; `Any` or no annotation passes the
  JSON value through;
* a parameter without an input gets its default, else `None` if it is Optional, else an
  empty pydantic model (validated from `{}`); else binding fails.

A value that does not fit raises `BindingError`, whose message names the parameter, the input's
source and the field. Nothing here imports pydantic: a model is recognised by its methods.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import json
import pathlib
import sys
import typing
import uuid
from collections import abc
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

LEGACY_INPUTS = ("data", "params")
_MISSING = object()
_UNION_TYPES: Tuple[Any, ...] = (typing.Union,)
if sys.version_info >= (3, 10):
    import types

    _UNION_TYPES += (types.UnionType,)


class BindingError(ValueError):
    """An input that cannot be bound; the message names the parameter, the source and the field."""


class _Mismatch(Exception):
    """A value that does not fit a type, at a field path inside the input."""

    def __init__(self, problems: List[Tuple[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems     # (field path, what is wrong); "" = the input itself


@dataclass(frozen=True)
class Input:
    """One input: its JSON value, or the text of a file of the v2 layout (converted by the annotation)."""

    source: str                      # e.g. "file '/var/runtime/input/data.json'"
    value: Any = None
    text: Optional[str] = None       # set for a v2 file: `str` takes it as it is, the rest parse it as JSON

    def json_value(self) -> Any:
        """The JSON value (a v2 file parsed); raises BindingError for a file that is not JSON."""
        if self.text is None:
            return self.value
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise BindingError(f"input from {self.source} is not valid JSON: {exc.msg} at line {exc.lineno} "
                               f"column {exc.colno}") from None


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: Any                        # inspect.Parameter kind
    annotation: Any                  # resolved; inspect.Parameter.empty when absent
    default: Any                     # inspect.Parameter.empty when absent


@dataclass(frozen=True)
class Signature:
    """How to call the user's function: the legacy call, or the typed parameters to bind."""

    typed: bool
    parameters: Tuple[Parameter, ...]
    declares_return: bool = False    # `-> X`: the author says what the result is

    @property
    def names(self) -> List[str]:
        return [p.name for p in self.parameters]


def inspect_function(function: Callable[..., Any]) -> Signature:
    """The function's signature; `typed` when at least one of its parameters is annotated."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):      # a builtin or C function without a signature: call it as always
        return Signature(False, ())
    declares_return = signature.return_annotation is not inspect.Signature.empty
    named = [p for p in signature.parameters.values()
             if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if not any(p.annotation is not inspect.Parameter.empty for p in named):
        return Signature(False, (), declares_return)
    hints = _type_hints(function)
    parameters = []
    for p in named:
        annotation = hints.get(p.name, p.annotation)
        if isinstance(annotation, str):
            raise BindingError(f"parameter '{p.name}': cannot resolve its annotation {annotation!r} "
                               "(import the type at module level, not only under TYPE_CHECKING)")
        parameters.append(Parameter(p.name, p.kind, annotation, p.default))
    return Signature(True, tuple(parameters), declares_return)


def bind(signature: Signature, inputs: Mapping[str, Input]) -> Tuple[List[Any], Dict[str, Any]]:
    """(positional args, keyword args) for a typed function; raises BindingError."""
    args: List[Any] = []
    kwargs: Dict[str, Any] = {}
    for p in signature.parameters:
        value = _bind_one(p, inputs.get(p.name))
        if value is _MISSING:
            if p.kind is inspect.Parameter.POSITIONAL_ONLY:
                break                      # the rest of the positional ones keep their defaults too
            continue
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[p.name] = value
    return args, kwargs


def _bind_one(p: Parameter, given: Optional[Input]) -> Any:
    """The value for one parameter, or _MISSING to leave it to its default."""
    annotation = p.annotation
    label = f"parameter '{p.name}'" + ("" if annotation is inspect.Parameter.empty else f" ({_type_name(annotation)})")
    if given is None:
        if p.default is not inspect.Parameter.empty:
            return _MISSING
        if _is_optional(annotation):
            return None
        if _model_api(annotation):
            given = Input("no input (an empty model)", {})
        else:
            raise BindingError(f"no input for {label}: it has no default (give an input named "
                               f"'{p.name}', or give the parameter a default)")
    if annotation is inspect.Parameter.empty:
        return given.json_value()
    if given.text is not None and _takes_text(annotation):
        return given.text
    try:
        value = given.json_value()
    except BindingError:
        if given.text is None or not _reads_from_string(annotation):
            raise
        value = given.text.strip()       # `2024-05-01`, `42`: a scalar written without JSON quotes
    try:
        return _convert(value, annotation)
    except _Mismatch as mismatch:
        details = "; ".join(f"field '{where}': {what}" if where else what for where, what in mismatch.problems)
        raise BindingError(f"{label} from {given.source}: {details}") from None


def _convert(value: Any, tp: Any) -> Any:
    """`value` (JSON) converted to `tp`; raises _Mismatch."""
    if tp is Any or tp is object or tp is inspect.Parameter.empty:
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
        raise _Mismatch([("", f"expected null, got {_show(value)}")])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNION_TYPES:
        return _convert_union(value, args)
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch([("", f"expected one of {', '.join(json.dumps(a) for a in args)}, got {_show(value)}")])
    if _model_api(tp):
        return _validate_model(value, tp)
    if origin is not None:
        return _convert_generic(value, origin, args)
    if isinstance(tp, type):
        return _convert_class(value, tp)
    return value          # a TypeVar, NewType or anything else typing may hold: the value as it is


def _convert_union(value: Any, members: Tuple[Any, ...]) -> Any:
    if value is None and type(None) in members:
        return None
    problems: List[Tuple[str, str]] = []
    for member in (m for m in members if m is not type(None)):
        try:
            return _convert(value, member)
        except _Mismatch as mismatch:
            problems.extend(mismatch.problems)
    if len(members) == 2 and type(None) in members:
        raise _Mismatch(problems)              # Optional[X]: X's own problem says it best
    names = " or ".join(_type_name(m) for m in members)
    raise _Mismatch([("", f"expected {names}, got {_show(value)}")])


def _convert_generic(value: Any, origin: Any, args: Tuple[Any, ...]) -> Any:
    if isinstance(origin, type) and issubclass(origin, abc.Mapping):
        if not isinstance(value, dict):
            raise _Mismatch([("", f"expected a JSON object, got {_show(value)}")])
        value_type = args[1] if len(args) == 2 else Any
        return {key: item for key, item in _each(value.items(), value_type)}
    if origin in (list, tuple, set, frozenset) or (isinstance(origin, type) and issubclass(origin, abc.Iterable)):
        if not isinstance(value, list):
            raise _Mismatch([("", f"expected a JSON array, got {_show(value)}")])
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise _Mismatch([("", f"expected {len(args)} items, got {len(value)}")])
            return tuple(_convert_items(value, list(args)))
        item_type = args[0] if args else Any
        items = _convert_items(value, [item_type] * len(value))
        return origin(items) if origin in (tuple, set, frozenset) else items
    if origin is type:
        return value
    return _convert(value, origin)


def _convert_items(values: List[Any], types_: List[Any]) -> List[Any]:
    return [item for _, item in _each(((str(i), v) for i, v in enumerate(values)), types_)]


def _each(pairs: Any, item_type: Any) -> List[Tuple[Any, Any]]:
    """Convert each (key, value); all problems are reported, prefixed with the key."""
    out, problems = [], []
    for index, (key, item) in enumerate(pairs):
        tp = item_type[index] if isinstance(item_type, list) else item_type
        try:
            out.append((key, _convert(item, tp)))
        except _Mismatch as mismatch:
            problems.extend((_join(str(key), where), what) for where, what in mismatch.problems)
    if problems:
        raise _Mismatch(problems)
    return out


def _convert_class(value: Any, tp: type) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _Mismatch([("", f"expected a boolean, got {_show(value)}")])
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _Mismatch([("", f"expected an integer, got {_show(value)}")])
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise _Mismatch([("", f"expected a number, got {_show(value)}")])
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch([("", f"expected a string, got {_show(value)}")])
    if issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(json.dumps(member.value, default=str) for member in tp)
            raise _Mismatch([("", f"expected one of {allowed}, got {_show(value)}")]) from None
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp)
    if issubclass(tp, dict):
        return _convert_generic(value, dict, ())     # dict, TypedDict and dict subclasses
    if tp in (list, tuple, set, frozenset):
        return _convert_generic(value, tp, ())
    for kind, parse in _FROM_STRING:
        if tp is kind:
            if isinstance(value, str) or (kind is decimal.Decimal and isinstance(value, (int, float))
                                          and not isinstance(value, bool)):
                try:
                    return parse(str(value).strip())
                except (ValueError, ArithmeticError):
                    pass
            raise _Mismatch([("", f"expected {_type_name(tp)}, got {_show(value)}")])
    if isinstance(value, tp):
        return value
    raise _Mismatch([("", f"the type {_type_name(tp)} is not supported as an input (use a dict, list, str, "
                          "int, float, bool, a dataclass or a pydantic model)")])


_FROM_STRING: Tuple[Tuple[type, Callable[[str], Any]], ...] = (
    (datetime.datetime, lambda s: datetime.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)),
    (datetime.date, datetime.date.fromisoformat),
    (datetime.time, datetime.time.fromisoformat),
    (uuid.UUID, uuid.UUID),
    (decimal.Decimal, decimal.Decimal),
    (pathlib.Path, pathlib.Path),
    (pathlib.PurePath, pathlib.PurePath),
)


def _convert_dataclass(value: Any, tp: type) -> Any:
    if not isinstance(value, dict):
        raise _Mismatch([("", f"expected a JSON object for {tp.__name__}, got {_show(value)}")])
    hints = _type_hints(tp)
    given, problems = {}, []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                problems.append((f.name, "field required"))
            continue
        try:
            given[f.name] = _convert(value[f.name], hints.get(f.name, Any))
        except _Mismatch as mismatch:
            problems.extend((_join(f.name, where), what) for where, what in mismatch.problems)
    if problems:
        raise _Mismatch(problems)
    return tp(**given)           # unknown keys are ignored, as pydantic does by default


# ---------------------------------------------------------------------------------- pydantic

def _model_api(tp: Any) -> int:
    """2 for a pydantic v2 model class, 1 for a v1 one (also `pydantic.v1`), else 0."""
    if not isinstance(tp, type):
        return 0
    if callable(getattr(tp, "model_validate", None)) and hasattr(tp, "model_fields"):
        return 2
    if callable(getattr(tp, "parse_obj", None)) and hasattr(tp, "__fields__"):
        return 1
    return 0


def _validate_model(value: Any, tp: type) -> Any:
    """Validate with the pydantic the model's class comes from; its errors become _Mismatch."""
    try:
        if _model_api(tp) == 2:
            return tp.model_validate(value)  # type: ignore[attr-defined]
        return tp.parse_obj(value)  # type: ignore[attr-defined]
    except (ValueError, TypeError) as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise _Mismatch([("", str(exc))]) from None
        problems = []
        for error in errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
            problems.append((where, str(error.get("msg", "invalid"))))
        raise _Mismatch(problems or [("", str(exc))]) from None


def model_json_value(value: Any) -> Any:
    """A pydantic model as the JSON value of its JSON dump; anything else unchanged."""
    api = _model_api(type(value))
    if api == 2:
        return value.model_dump(mode="json")
    if api == 1:
        return json.loads(value.json())
    return value


def model_json_text(value: Any) -> Optional[str]:
    """A pydantic model's JSON dump (indent 2), as PlanQK's v2 runtime writes it; None for other values."""
    api = _model_api(type(value))
    if api == 2:
        return value.model_dump_json(indent=2)
    if api == 1:
        return value.json(indent=2)
    return None


# ---------------------------------------------------------------------------------- helpers

def _type_hints(obj: Any) -> Dict[str, Any]:
    """The resolved annotations (string ones evaluated in the object's module); the raw ones if that fails."""
    try:
        return typing.get_type_hints(obj)
    except Exception:  # a name only imported under TYPE_CHECKING, a typo: resolve what can be resolved
        raw = dict(getattr(obj, "__annotations__", {}) or {})
        module = sys.modules.get(getattr(obj, "__module__", ""), None)
        namespace = dict(vars(module)) if module else {}
        for name, annotation in raw.items():
            if isinstance(annotation, str):
                try:
                    raw[name] = eval(annotation, namespace)  # noqa: S307 (the user's own annotation)
                except Exception:
                    pass
        return raw


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in _UNION_TYPES and type(None) in typing.get_args(tp)


def _takes_text(tp: Any) -> bool:
    """`str` (or Optional[str]): a v2 input file is then passed as its text, unparsed."""
    if _is_optional(tp):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        return len(members) == 1 and members[0] is str
    return tp is str


def _reads_from_string(tp: Any) -> bool:
    """A scalar type (or Optional of one) that a bare, unquoted text can be converted to."""
    if _is_optional(tp):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        return len(members) == 1 and _reads_from_string(members[0])
    return tp in (int, float, bool) or any(tp is kind for kind, _ in _FROM_STRING) or (
        isinstance(tp, type) and issubclass(tp, enum.Enum))


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__name__
    return str(tp).replace("typing.", "")


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(key: str, where: str) -> str:
    return f"{key}.{where}" if where else key
