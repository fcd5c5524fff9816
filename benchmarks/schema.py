"""The result-file schema (``schema.json``) and a small validator for it.

The validator covers the part of JSON Schema that ``schema.json`` uses (type,
const, enum, minimum, properties, required, additionalProperties, items,
$ref to ``#/$defs``, allOf, oneOf), so checking a result file needs no extra
dependency.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

PATH = pathlib.Path(__file__).with_name("schema.json")

_TYPES = {
  "object": lambda x: isinstance(x, dict),
  "array": lambda x: isinstance(x, list),
  "string": lambda x: isinstance(x, str),
  "boolean": lambda x: isinstance(x, bool),
  "null": lambda x: x is None,
  "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
  "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x),
}


def load() -> dict[str, Any]:
  with open(PATH) as f:
    return json.load(f)


def errors(instance: Any, schema: dict[str, Any] | None = None) -> list[str]:
  """Every way ``instance`` violates ``schema`` (default: the result schema), as ``path: problem``."""
  root = load() if schema is None else schema
  out: list[str] = []
  _check(instance, root, root, "$", out)
  return out


def validate(instance: Any, schema: dict[str, Any] | None = None) -> None:
  """Raise ``ValueError`` listing the first problems if ``instance`` does not match."""
  found = errors(instance, schema)
  if found:
    raise ValueError(f"{len(found)} schema violations, e.g.:\n  " + "\n  ".join(found[:10]))


def _check(x: Any, schema: dict[str, Any], root: dict[str, Any], path: str, out: list[str]) -> None:
  if "$ref" in schema:
    target: Any = root
    for part in schema["$ref"].removeprefix("#/").split("/"):
      target = target[part]
    _check(x, target, root, path, out)
  for sub in schema.get("allOf", ()):
    _check(x, sub, root, path, out)
  if "oneOf" in schema:
    matches = [not errors_of(x, sub, root, path) for sub in schema["oneOf"]]
    if sum(matches) != 1:
      detail = "; ".join(e for sub in schema["oneOf"] for e in errors_of(x, sub, root, path)[:2])
      out.append(f"{path}: matches {sum(matches)} of the oneOf alternatives, not exactly 1 ({detail})")
  if "const" in schema and x != schema["const"]:
    out.append(f"{path}: expected {schema['const']!r}, got {x!r}")
  if "enum" in schema and x not in schema["enum"]:
    out.append(f"{path}: expected one of {schema['enum']}, got {x!r}")
  if "type" in schema:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_TYPES[t](x) for t in types):
      out.append(f"{path}: expected {' or '.join(types)}, got {type(x).__name__} {x!r:.60}")
      return
  if "minimum" in schema and _TYPES["number"](x) and x < schema["minimum"]:
    out.append(f"{path}: {x} is below the minimum {schema['minimum']}")
  if isinstance(x, dict):
    properties = schema.get("properties", {})
    for key in schema.get("required", ()):
      if key not in x:
        out.append(f"{path}: missing required {key!r}")
    extra = schema.get("additionalProperties", True)
    for key, value in x.items():
      if key in properties:
        _check(value, properties[key], root, f"{path}.{key}", out)
      elif extra is False:
        out.append(f"{path}: unexpected property {key!r}")
      elif isinstance(extra, dict):
        _check(value, extra, root, f"{path}.{key}", out)
  if isinstance(x, list) and "items" in schema:
    for i, item in enumerate(x):
      _check(item, schema["items"], root, f"{path}[{i}]", out)


def errors_of(x: Any, schema: dict[str, Any], root: dict[str, Any], path: str) -> list[str]:
  out: list[str] = []
  _check(x, schema, root, path, out)
  return out
