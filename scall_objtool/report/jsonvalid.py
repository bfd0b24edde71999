"""A small JSON Schema validator for the subset the shipped schemas use.

Every report the tool loads (``diff``, ``check --baseline``) is validated
against ``schema/report-v1.json`` before any field is used, so a hostile or
truncated report is one error line, never a KeyError.  jsonschema is not a
runtime dependency (its import alone costs ~80 ms); the test suite checks
that this validator and jsonschema agree on the shipped schemas.

Supported keywords: type, const, enum, required, properties,
additionalProperties, propertyNames, items, $ref (to ``#/...`` in the same
document), allOf, oneOf, if/then/else, minimum, maximum, minLength, maxLength,
pattern.  The lengths are checked before the pattern, so that a bounded string
is never given to the regular expression engine at any length (a repeated
group costs it ~78 bytes of memory per character).
Any other keyword in a schema is an error (``SchemaError``), so the
validator cannot silently ignore a constraint the schema relies on.

Stricter than JSON Schema on one point, on purpose: "integer" means a JSON
number written without a fraction or exponent (``1``, not ``1.0``) and never
a boolean; the tool writes nothing else.
"""
from __future__ import annotations

import re

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs", "$comment", "default",
                "examples"}
_KNOWN = _ANNOTATIONS | {"type", "const", "enum", "required", "properties",
                         "additionalProperties", "propertyNames", "items", "$ref", "allOf",
                         "oneOf", "if", "then", "else", "minimum", "maximum", "minLength",
                         "maxLength", "pattern"}


_EMPTY: dict = {}


class SchemaError(Exception):
    """The schema uses something this validator does not implement."""


class Invalid(Exception):
    """The document does not match; ``str()`` names the place and the reason."""

    def __init__(self, where: str, why: str):
        super().__init__(f"{where or 'the document'}: {why}")
        self.where = where
        self.why = why


def _same(a, b) -> bool:
    """JSON equality that keeps booleans, integers and floats apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class Validator:
    def __init__(self, schema: dict):
        self.root = schema
        self._patterns: dict[str, re.Pattern] = {}
        self._refs: dict[str, dict] = {}
        self._check_keywords(schema)

    def _check_keywords(self, node, seen=None) -> None:
        seen = set() if seen is None else seen
        if isinstance(node, dict) and id(node) not in seen:
            seen.add(id(node))
            for key, val in node.items():
                if key in ("properties", "$defs"):
                    for sub in val.values():
                        self._check_keywords(sub, seen)
                elif key in ("allOf", "oneOf"):
                    for sub in val:
                        self._check_keywords(sub, seen)
                elif key in ("additionalProperties", "propertyNames", "items", "if", "then",
                             "else"):
                    self._check_keywords(val, seen)
                elif key not in _KNOWN:
                    raise SchemaError(f"unsupported schema keyword {key!r}")

    def _resolve(self, ref: str):
        if not ref.startswith("#/"):
            raise SchemaError(f"unsupported $ref {ref!r}")
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def validate(self, doc) -> None:
        """Raise ``Invalid`` at the first place ``doc`` does not match."""
        err = self._check(self.root, doc, "")
        if err is not None:
            raise Invalid(*err)

    def is_valid(self, schema, value) -> bool:
        return self._check(schema, value, "") is None

    def _check(self, s, v, where: str):     # noqa: C901 (one keyword per branch)
        """None if ``v`` matches ``s``, else (where, why).  (Errors are returned,
        not raised: oneOf and if/then/else try alternatives on every site.)"""
        if s is True:
            return None
        if s is False:
            return where, "no value is allowed here"
        ref = s.get("$ref")
        if ref is not None:
            target = self._refs.get(ref)
            if target is None:
                target = self._refs[ref] = self._resolve(ref)
            err = self._check(target, v, where)
            if err is not None:
                return err
        t = s.get("type")
        if t is not None:
            types = t if isinstance(t, list) else (t,)
            if not any(_TYPES[x](v) for x in types):
                return where, f"expected {' or '.join(types)}, not {_short(v)}"
        if "const" in s and not _same(v, s["const"]):
            return where, f"expected {s['const']!r}, not {_short(v)}"
        if "enum" in s and not any(_same(v, e) for e in s["enum"]):
            return where, f"unknown value {_short(v)}"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in s and v < s["minimum"]:
                return where, f"{v} is less than {s['minimum']}"
            if "maximum" in s and v > s["maximum"]:
                return where, f"{v} is more than {s['maximum']}"
        elif isinstance(v, str):
            if "minLength" in s and len(v) < s["minLength"]:
                return where, f"shorter than {s['minLength']} characters"
            if "maxLength" in s and len(v) > s["maxLength"]:
                return where, f"longer than {s['maxLength']} characters"
            if "pattern" in s:
                pat = self._patterns.get(s["pattern"])
                if pat is None:
                    pat = self._patterns[s["pattern"]] = re.compile(s["pattern"])
                if not pat.search(v):
                    return where, f"{_short(v)} does not match {s['pattern']!r}"
        elif isinstance(v, dict):
            for key in s.get("required", ()):
                if key not in v:
                    return where, f"{key!r} is required"
            props = s.get("properties", _EMPTY)
            extra = s.get("additionalProperties", True)
            names = s.get("propertyNames")
            for key, val in v.items():
                sub = props.get(key)
                if sub is None and extra is True and names is None:
                    continue
                at = f"{where}.{key}" if where else key
                if names is not None:
                    err = self._check(names, key, at)
                    if err is not None:
                        return err
                if sub is not None:
                    err = self._check(sub, val, at)
                elif extra is False:
                    return where, f"unexpected property {_short(key)}"
                elif extra is not True:
                    err = self._check(extra, val, at)
                else:
                    err = None
                if err is not None:
                    return err
        elif isinstance(v, list) and "items" in s:
            item = s["items"]
            for i, x in enumerate(v):
                err = self._check(item, x, f"{where}[{i}]")
                if err is not None:
                    return err
        for sub in s.get("allOf", ()):
            err = self._check(sub, v, where)
            if err is not None:
                return err
        alts = s.get("oneOf")
        if alts is not None:
            hits = sum(self._check(sub, v, where) is None for sub in alts)
            if hits != 1:
                return where, f"{_short(v)} matches {hits} of the allowed forms, not exactly one"
        cond = s.get("if")
        if cond is not None:
            branch = s.get("then") if self._check(cond, v, where) is None else s.get("else")
            if branch is not None:
                return self._check(branch, v, where)
        return None


_CACHE: dict[str, Validator] = {}


def shipped(name: str) -> Validator:
    """The validator of a schema shipped in the package (``report-v1.json``)."""
    v = _CACHE.get(name)
    if v is None:
        import json
        from importlib import resources
        schema = json.loads(resources.files("scall_objtool").joinpath(f"schema/{name}")
                            .read_text())
        v = _CACHE[name] = Validator(schema)
    return v
