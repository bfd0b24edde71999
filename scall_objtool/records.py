"""A minimal record decorator for the classes on the per-object path.

``dataclasses`` costs about 5 ms to import here (it pulls in ``inspect``) and
half a millisecond a class; Kbuild starts the tool once per object, and most
objects have no static calls, so those milliseconds are a large part of a
run.  ``record`` builds ``__init__``, ``__repr__`` and ``__eq__`` from the
class annotations; defaults are constants, or ``LIST`` for a fresh empty
list.  ``frozen=True`` forbids assignment after ``__init__`` and makes
instances hashable.  ``__post_init__`` runs if defined.

``__init__`` is compiled (one small ``exec``, 40-70 us) at the class's
``COMPILE_AFTER``-th instance, not when it is defined; the instances before
are bound without compiling: most of the records a module defines are made
once or never on a run over an object without static calls.

``fields(cls)`` lists a record's field names in order, ``defaults(cls)``
their default values.  ``cached`` is ``functools.cached_property`` without
the import of ``functools`` (and the ``collections`` it pulls in).  ``later``
is a module imported when first used, then kept.
"""
from __future__ import annotations

import sys

LIST = object()          # default: a new empty list for every instance
_MISSING = object()


def fields(cls) -> tuple[str, ...]:
    return cls.__record_fields__


def defaults(cls) -> dict:
    """A record's default values by field name (``LIST`` ones as ``[]``)."""
    return {n: ([] if d is LIST else d) for n, d in cls.__record_defaults__.items()}


def _init_source(names: list[str], defaults: dict, frozen: bool,
                 post_init: bool) -> tuple[str, dict]:
    """The source of a record's ``__init__`` and its globals: plain attribute
    stores (the fastest to run), or for a frozen record, whose ``__setattr__``
    refuses, one update of the instance ``__dict__``."""
    params, values, glb = [], [], {"_LIST": LIST}
    seen_default = False
    for n in names:
        d = defaults.get(n, _MISSING)
        if d is _MISSING:
            if seen_default:
                raise TypeError(f"field {n} without default after one with a default")
            params.append(n)
            values.append(n)
        elif d is LIST:
            seen_default = True
            params.append(f"{n}=_LIST")
            values.append(f"[] if {n} is _LIST else {n}")
        else:
            seen_default = True
            glb[f"_d_{n}"] = d
            params.append(f"{n}=_d_{n}")
            values.append(n)
    if frozen:
        body = [f"    self.__dict__.update({', '.join(f'{n}={v}' for n, v in zip(names, values))})"]
    else:
        body = [f"    self.{n} = {v}" for n, v in zip(names, values)]
    if post_init:
        body.append("    self.__post_init__()")
    return f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass"), glb


#: a record's ``__init__`` is compiled at its this-many-th instance; the ones
#: before are bound by ``_bind`` (slower a call, but no compile)
COMPILE_AFTER = 8


def _bind(self, name: str, names: list[str], defaults: dict, args: tuple, kw: dict) -> None:
    """What the compiled ``__init__`` does, interpreted: the values of the
    fields, in field order, into the instance ``__dict__``."""
    if len(args) > len(names):
        raise TypeError(f"{name}() takes {len(names)} arguments, {len(args)} given")
    values = dict(zip(names, args))
    for k, v in kw.items():
        if k in values or k not in names:
            raise TypeError(f"{name}() got an unexpected or repeated argument {k!r}")
        values[k] = v
    state = {}
    for n in names:
        if n in values:
            state[n] = values[n]
        elif n in defaults:
            state[n] = [] if defaults[n] is LIST else defaults[n]
        else:
            raise TypeError(f"{name}() missing argument {n!r}")
    self.__dict__.update(state)


def record(cls=None, *, frozen: bool = False):
    def build(cls):
        names = [n for n in cls.__dict__.get("__annotations__", {})
                 if not n.startswith("__")]
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        # checked now, as a dataclass would be, though compiled on first use
        try:
            _init_source(names, defaults, frozen, False)
        except TypeError as e:
            raise TypeError(f"{cls.__name__}.{e}") from None
        for n in defaults:
            delattr(cls, n)
        post_init = "__post_init__" in cls.__dict__

        made = [0]

        def __init__(self, *args, **kw):
            # the first few instances: the arguments bound here; then the
            # compiled __init__ takes this one's place
            made[0] += 1
            if made[0] < COMPILE_AFTER:
                _bind(self, cls.__name__, names, defaults, args, kw)
                if post_init:
                    self.__post_init__()
                return
            src, glb = _init_source(names, defaults, frozen, post_init)
            ns: dict = {}
            exec(src, glb, ns)
            ns["__init__"].__qualname__ = f"{cls.__qualname__}.__init__"
            cls.__init__ = ns["__init__"]
            cls.__init__(self, *args, **kw)

        cls.__init__ = __init__
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


class cached:
    """A property computed on first use and kept in the instance ``__dict__``
    (a non-data descriptor: the stored value is found first after that)."""

    def __init__(self, fn):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


class later:
    """A module imported when first used, then kept: ``_render =
    later("scall_objtool.table.render")`` beside the imports, ``_render()``
    where it is used -- for a module that not every run needs (a clean
    object's, a dry run's, a report-only command's) but that a batch uses
    for every object.  An import statement run inside a function costs
    ~7,000 instructions every time, even of a module long imported (``from
    X import Y`` looks up ``X.__path__``, which a plain module lacks, and
    its ``__getattr__`` makes two formatted AttributeErrors); this, a call."""
    __slots__ = ("name", "module")

    def __init__(self, name: str):
        self.name = name
        self.module = None

    def __call__(self):
        module = self.module
        if module is None:
            __import__(self.name)
            module = self.module = sys.modules[self.name]
        return module
