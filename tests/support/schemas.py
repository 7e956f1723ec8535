"""Values a JSON Schema describes, as a Hypothesis strategy: for the schemas pydantic publishes
(hypothesis-jsonschema, the usual tool, does not run on this Hypothesis).

The structural keywords are generated (type, properties, required, additionalProperties, items,
anyOf/oneOf, enum, const, $ref, bounds, lengths, pattern); every value is then checked with
`jsonschema` against the whole schema, so a keyword generated loosely or not at all (format,
multipleOf, uniqueItems...) still only lets valid values through."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

MAX_SIZE = 4


def values_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid instances of `schema` (a document with its own `$defs`)."""
    validator = Draft202012Validator(schema)
    return _values(schema, schema).filter(validator.is_valid)


def _any_json() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=MAX_SIZE)
            | st.dictionaries(st.text(max_size=8), children, max_size=MAX_SIZE)
        ),
        max_leaves=8,
    )


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rpartition("/")[2]
        schema = {
            **root["$defs"][name],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    return schema


def _values(schema: Any, root: dict[str, Any]) -> st.SearchStrategy[Any]:
    if schema is True or schema == {}:
        return _any_json()
    if schema is False:
        return st.nothing()
    schema = _resolve(schema, root)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([_values(option, root) for option in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_values({**schema, "type": one}, root) for one in kind])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return _integers(schema)
    if kind == "number":
        return _integers(schema) | _floats(schema)
    if kind == "string":
        return _strings(schema)
    if kind == "array":
        return st.lists(
            _values(schema.get("items", True), root),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", MAX_SIZE),
        )
    if kind == "object":
        return _objects(schema, root)
    return _any_json()


def _bounds(schema: dict[str, Any]) -> tuple[float | None, float | None]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    return low, high


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low, high = _bounds(schema)
    return st.integers(
        min_value=None if low is None else int(low) - 1,
        max_value=None if high is None else int(high) + 1,
    )


def _floats(schema: dict[str, Any]) -> st.SearchStrategy[float]:
    low, high = _bounds(schema)
    return st.floats(
        min_value=low,
        max_value=high,
        allow_nan=False,
        allow_infinity=False,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
    )


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" in schema:
        matching = st.from_regex(re.compile(schema["pattern"]))
        return matching.filter(lambda text: low <= len(text) <= (high or len(text)))
    return st.text(min_size=low, max_size=high if high is not None else 16)


def _objects(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    extra = schema.get("additionalProperties", True)
    fixed = st.fixed_dictionaries(
        {
            name: _values(sub, root)
            for name, sub in properties.items()
            if name in required
        },
        optional={
            name: _values(sub, root)
            for name, sub in properties.items()
            if name not in required
        },
    )
    if extra is False:
        return fixed
    others = st.dictionaries(
        st.text(max_size=8).filter(lambda key: key not in properties),
        _values(extra, root),
        max_size=MAX_SIZE,
    )
    return st.builds(lambda known, more: {**more, **known}, fixed, others)
