"""A minimal record decorator for the classes on the per-object path.

``dataclasses`` costs about 5 ms to import here (it pulls in ``inspect``) and
half a millisecond a class; Kbuild starts the tool once per object, and most
objects have no static calls, so those milliseconds are a large part of a
run.  ``record`` builds ``__init__``, ``__repr__`` and ``__eq__`` from the
class annotations with one small ``exec`` each; defaults are constants, or
``LIST`` for a fresh empty list.  ``frozen=True`` forbids assignment after
``__init__`` and makes instances hashable.  ``__post_init__`` runs if defined.

``fields(cls)`` lists a record's field names in order, ``defaults(cls)``
their default values.
"""
from __future__ import annotations

LIST = object()          # default: a new empty list for every instance
_MISSING = object()


def fields(cls) -> tuple[str, ...]:
    return cls.__record_fields__


def defaults(cls) -> dict:
    """A record's default values by field name (``LIST`` ones as ``[]``)."""
    return {n: ([] if d is LIST else d) for n, d in cls.__record_defaults__.items()}


def record(cls=None, *, frozen: bool = False):
    def build(cls):
        names = [n for n in cls.__dict__.get("__annotations__", {})
                 if not n.startswith("__")]
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        params, body, glb = [], [], {"_LIST": LIST, "_set": object.__setattr__}
        seen_default = False
        for n in names:
            d = defaults.get(n, _MISSING)
            if d is _MISSING:
                if seen_default:
                    raise TypeError(f"{cls.__name__}.{n}: field without default after one "
                                    "with a default")
                params.append(n)
                value = n
            elif d is LIST:
                seen_default = True
                params.append(f"{n}=_LIST")
                value = f"[] if {n} is _LIST else {n}"
            else:
                seen_default = True
                glb[f"_d_{n}"] = d
                params.append(f"{n}=_d_{n}")
                value = n
            body.append(f"    _set(self, {n!r}, {value})")
            if n in cls.__dict__:
                delattr(cls, n)
        if "__post_init__" in cls.__dict__:
            body.append("    self.__post_init__()")
        src = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass")
        ns: dict = {}
        exec(src, glb, ns)
        cls.__init__ = ns["__init__"]
        cls.__record_fields__ = tuple(names)
        cls.__record_defaults__ = defaults

        def __repr__(self):
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            return f"{type(self).__name__}({inner})"

        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in names)

        cls.__repr__ = __repr__
        cls.__eq__ = __eq__
        if frozen:
            def __setattr__(self, name, value):
                raise AttributeError(f"{type(self).__name__} is frozen")
            cls.__setattr__ = __setattr__
            cls.__hash__ = lambda self: hash(tuple(getattr(self, n) for n in names))
        else:
            cls.__hash__ = None
        return cls
    return build if cls is None else build(cls)
