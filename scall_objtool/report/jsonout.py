"""The JSON writer of every report: exactly ``json.dumps(doc, indent=2,
ensure_ascii=True)``, about four times faster.

The standard library's C encoder serves only unindented output; with an
indent ``json`` runs its pure-Python generators, a call and a ``yield`` per
value (8 % of a build tree's scan with lines).  Here a container is written
by one loop over its items, strings through ``json``'s own C escaper, with
the standard encoder's order of type checks.  What it does not write itself
(a type ``json`` cannot encode, a key of another type, nesting past 1000
levels, a circular reference) goes to ``json.dumps`` whole, so that the
output and the errors stay the standard ones."""
from __future__ import annotations

from json.encoder import encode_basestring_ascii as _s

_int = int.__repr__
_float = float.__repr__
_INF = float("inf")
#: the indent (2 spaces a level) past which json.dumps decides (depth, cycles)
_DEEP = 2000


class _Unusual(Exception):
    """A value left to ``json.dumps``."""


def _floatstr(o: float) -> str:
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return _float(o)


def _key(k) -> str:
    # json's order: str, float, True, False, None, int
    if isinstance(k, str):
        return k
    if isinstance(k, float):
        return _floatstr(k)
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return _int(k)
    raise _Unusual


def _value(v, ind: str, out: list) -> None:
    # json's order: str, None, True, False, int, float, list/tuple, dict
    if isinstance(v, str):
        out.append(_s(v))
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(_int(v))
    elif isinstance(v, float):
        out.append(_floatstr(v))
    elif isinstance(v, (list, tuple)):
        _list(v, ind, out)
    elif isinstance(v, dict):
        _dict(v, ind, out)
    else:
        raise _Unusual


def _inside(container, ind: str, out: list, empty: str) -> str | None:
    """The indent of a container's items; None when it is empty (written)."""
    if not container:
        out.append(empty)
        return None
    if len(ind) > _DEEP:
        raise _Unusual
    return ind + "  "


def _dict(d: dict, ind: str, out: list) -> None:
    inner = _inside(d, ind, out, "{}")
    if inner is None:
        return
    sep, nxt = "{" + inner, "," + inner
    app = out.append
    for k, v in d.items():
        if type(k) is not str:
            k = _key(k)
        t = type(v)
        if t is str:
            app(f"{sep}{_s(k)}: {_s(v)}")
        elif t is int:
            app(f"{sep}{_s(k)}: {_int(v)}")
        elif v is None:
            app(f"{sep}{_s(k)}: null")
        else:
            app(f"{sep}{_s(k)}: ")
            if t is dict:
                _dict(v, inner, out)
            elif t is list:
                _list(v, inner, out)
            else:
                _value(v, inner, out)
        sep = nxt
    app(ind + "}")


def _list(lst, ind: str, out: list) -> None:
    inner = _inside(lst, ind, out, "[]")
    if inner is None:
        return
    sep, nxt = "[" + inner, "," + inner
    app = out.append
    for v in lst:                           # in a report: mostly objects
        app(sep)
        if type(v) is dict:
            _dict(v, inner, out)
        else:
            _value(v, inner, out)
        sep = nxt
    app(ind + "]")


def dumps(doc) -> str:
    """``json.dumps(doc, indent=2, ensure_ascii=True)``."""
    out: list = []
    try:
        _value(doc, "\n", out)
    except (_Unusual, RecursionError):
        import json
        return json.dumps(doc, indent=2, ensure_ascii=True)
    return "".join(out)
