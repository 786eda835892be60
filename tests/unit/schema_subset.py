"""A JSON Schema (draft 2020-12) validator for the subset model/records.json_schema() emits: type
(one or a list), properties, required, additionalProperties (bool or schema), items, anyOf and local
$ref (#/$defs/NAME). jsonschema is not a dependency; a keyword outside the subset is an error here,
so the generator cannot start emitting one this validator silently ignores."""

KNOWN = {"$schema", "title", "description", "$defs", "$ref", "type", "properties", "required",
         "additionalProperties", "items", "anyOf"}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(value, schema: dict, root: dict | None = None, where: str = "$") -> list[str]:
    """Every place `value` breaks `schema`, as 'path: why' (empty: valid)."""
    root = root or schema
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"{where}: schema keywords outside the subset: {sorted(unknown)}")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return errors(value, root["$defs"][name], root, where)
    if "anyOf" in schema:
        if any(not errors(value, s, root, where) for s in schema["anyOf"]):
            return []
        return [f"{where}: matches none of anyOf"]
    out = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, t) for t in types):
            return [f"{where}: {type(value).__name__} is not {'/'.join(types)}"]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                out += errors(v, props[k], root, f"{where}.{k}")
            elif extra is False:
                out.append(f"{where}: unexpected {k}")
            elif isinstance(extra, dict):
                out += errors(v, extra, root, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += errors(v, schema["items"], root, f"{where}[{i}]")
    return out
