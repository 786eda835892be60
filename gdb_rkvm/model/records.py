"""Typed records across process and layer boundaries: one way to turn a dataclass into JSON, to read
JSON back into it (checking every field's type), and to describe it as a JSON Schema (draft 2020-12).

Supported field types: int, float, str, bool, None, `X | None`, list[X], dict[str, X], a bare `dict`
(an object the record does not describe further) and nested dataclasses. That subset is all the
schema generator emits and all tests/unit/schema_subset.py validates.
"""

import dataclasses
import types
import typing

from gdb_rkvm.errors import RkvmError

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


def to_json(value):
    """A record (or list/dict of them) as JSON-ready values: a record's own to_json() or to_dict() when it
    has one (to keep the keys its consumers know), else its fields by name."""
    if hasattr(value, "to_json") and not isinstance(value, type):
        return value.to_json()
    if hasattr(value, "to_dict") and not isinstance(value, type):   # arch/ and live/ records' published shape
        return to_json(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _union_args(tp) -> tuple | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def parse(tp, data, where: str = "$"):
    """`data` (parsed JSON) as type `tp`, every field checked; RkvmError naming the first bad path."""
    args = _union_args(tp)
    if args is not None:
        if data is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"{where}: unions of several record types are not supported")
        return parse(rest[0], data, where)
    if dataclasses.is_dataclass(tp):
        return _parse_record(tp, data, where)
    origin = typing.get_origin(tp)
    if origin is list:
        _expect(isinstance(data, list), where, "an array", data)
        (item,) = typing.get_args(tp)
        return [parse(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        _expect(isinstance(data, dict), where, "an object", data)
        _, item = typing.get_args(tp)
        return {k: parse(item, v, f"{where}.{k}") for k, v in data.items()}
    if tp is dict:
        _expect(isinstance(data, dict), where, "an object", data)
        return data
    if tp is float:
        _expect(isinstance(data, (int, float)) and not isinstance(data, bool), where, "a number", data)
        return data
    if tp is int:
        _expect(isinstance(data, int) and not isinstance(data, bool), where, "an integer", data)
        return data
    if tp in (str, bool, type(None)):
        _expect(isinstance(data, tp), where, _SCALARS[tp], data)
        return data
    raise TypeError(f"{where}: unsupported field type {tp!r}")


def _parse_record(cls, data, where: str):
    _expect(isinstance(data, dict), where, f"an object ({cls.__name__})", data)
    hints, values = _hints(cls), {}
    unknown = set(data) - set(hints)
    if unknown:
        raise RkvmError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} in {cls.__name__}")
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = parse(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RkvmError(f"{where}: {cls.__name__} has no {f.name}")
    return cls(**values)


def _expect(ok: bool, where: str, what: str, data) -> None:
    if not ok:
        raise RkvmError(f"{where}: expected {what}, got {type(data).__name__}")


def json_schema(cls, title: str | None = None) -> dict:
    """A JSON Schema (draft 2020-12) for record class `cls`: every record type under $defs."""
    defs: dict = {}
    top = _schema(cls, defs)
    return {"$schema": SCHEMA_DRAFT, "title": title or cls.__name__, **top, "$defs": dict(sorted(defs.items()))}


def _schema(tp, defs: dict) -> dict:
    args = _union_args(tp)
    if args is not None:
        parts = [_schema(a, defs) for a in args]
        if all(set(p) == {"type"} and isinstance(p["type"], str) for p in parts):
            return {"type": [p["type"] for p in parts]}
        return {"anyOf": parts}
    if dataclasses.is_dataclass(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}     # placeholder: a record may refer to itself
            hints = _hints(tp)
            fields = dataclasses.fields(tp)
            required = [f.name for f in fields
                        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            defs[tp.__name__] = {"type": "object", "description": (tp.__doc__ or "").strip().split("\n")[0],
                                 "properties": {f.name: _schema(hints[f.name], defs) for f in fields},
                                 "required": required, "additionalProperties": False}
        return {"$ref": f"#/$defs/{tp.__name__}"}
    origin = typing.get_origin(tp)
    if origin is list:
        return {"type": "array", "items": _schema(typing.get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(typing.get_args(tp)[1], defs)}
    if tp is dict:
        return {"type": "object"}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    raise TypeError(f"unsupported field type {tp!r}")
