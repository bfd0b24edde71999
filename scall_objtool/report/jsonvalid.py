"""The shipped JSON schemas checked by jsonschema-rs (a maintained validator).

Every report the tool loads (``diff``, ``check --baseline``, ``dashboard``,
``openmetrics`` of a file) is validated against its shipped schema before any
field is used, so a hostile or truncated report is one error line, never a
KeyError.  Patterns run on Rust's ``regex`` engine (``RegexOptions``: linear
time, bounded memory), so a long string costs its length, whatever the order
the keywords are checked in; the library's own messages are masked, so that
an error on a 50 MB string does not copy it into the message.

This module only compiles the schemas (once a process) and words the first
error as ``where: why`` (``objects[0].sites[3].prefixes: longer than 28
characters``), quoting at most 60 characters of the offending value.  Floats,
NaN and huge numbers never get here: ``jsondoc.read_json`` refuses them.
"""
from __future__ import annotations

_CACHE: dict[str, object] = {}


def schema(name: str = "report") -> dict:
    """A JSON Schema shipped in the package: ``report`` (scan), ``check`` or ``verify``."""
    import json
    from importlib import resources
    text = resources.files("scall_objtool").joinpath(f"schema/{name}-v1.json").read_text()
    return json.loads(text)


class Invalid(Exception):
    """The document does not match; ``str()`` names the place and the reason."""

    def __init__(self, where: str, why: str):
        super().__init__(f"{where or 'the document'}: {why}")
        self.where = where
        self.why = why


def _validator(name: str, part: str | None):
    key = f"{name}#{part}"
    v = _CACHE.get(key)
    if v is None:
        import jsonschema_rs
        s = schema(name.removesuffix("-v1.json"))
        if part is not None:        # a subschema, with the definitions it refers to
            s = {"$defs": s["$defs"], **s["properties"][part]}
        # mask: the library's messages (unused here) would copy the whole value
        v = _CACHE[key] = jsonschema_rs.validator_for(
            s, pattern_options=jsonschema_rs.RegexOptions(), mask="...")
    return v


def validate(doc, name: str, part: str | None = None) -> None:
    """Raise ``Invalid`` at the first place ``doc`` does not match the shipped
    schema ``name`` (``report-v1.json``), or its property ``part`` (``summary``)."""
    import jsonschema_rs
    try:
        _validator(name, part).validate(doc)
    except jsonschema_rs.ValidationError as e:
        raise Invalid(_where(e.instance_path), _why(e)) from None


def _where(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _short(v) -> str:
    if isinstance(v, str) and len(v) > 60:
        return repr(v[:57]) + "..."
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "a list"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


#: the wording of each kind of error (``value``: the offending value, shortened;
#: the other fields are the library's details of that kind)
_WHY = {
    "Required": "{property!r} is required",
    "AdditionalProperties": "unexpected property {unexpected}",
    "PropertyNames": "unexpected key {key}",
    "Type": "expected {types}, not {value}",
    "Enum": "unknown value {value}",
    "OneOfNotValid": "{value} matches none of the allowed forms",
    "OneOfMultipleValid": "{value} matches more than one of the allowed forms",
    "Constant": "expected {expected_value!r}, not {value}",
    "Minimum": "{value} is less than {limit}",
    "Maximum": "{value} is more than {limit}",
    "MinLength": "shorter than {limit} characters",
    "MaxLength": "longer than {limit} characters",
    "Pattern": "{value} does not match {pattern!r}",
    "FalseSchema": "no value is allowed here",
}


def _why(e) -> str:
    kind = type(e.kind).__name__
    d = dict(e.kind.as_dict())
    if "unexpected" in d:
        d["unexpected"] = _short(d["unexpected"][0])
    if "error" in d:            # PropertyNames: the key that failed
        d["key"] = _short(d["error"].instance)
    if "types" in d:
        d["types"] = " or ".join(d["types"])
    return _WHY.get(kind, "{value}: " + kind).format_map({**d, "value": _short(e.instance)})
