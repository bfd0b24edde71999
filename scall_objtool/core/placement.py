"""Where the kernel's module loader puts each section of a module.

A ``.ko`` is a relocatable object, so its sections' addresses are not in the
file; but the loader lays them out deterministically from the section
headers alone, and every region it allocates starts page-aligned.  Modelling
that layout turns each site's offset into an offset from a page boundary,
which makes its cache-line crossing exact (``never`` or ``always``).

The model follows ``kernel/module/main.c`` (x86-64):

* Before the layout the loader changes some flags: ``.modinfo`` and
  ``__versions`` lose SHF_ALLOC (``rewrite_section_headers()``), so does
  ``.data..percpu`` on SMP kernels (allocated per CPU), and
  ``.data..ro_after_init`` and ``__jump_table`` gain SHF_RO_AFTER_INIT
  (``layout_and_allocate()``).  Each of these names the first SHF_ALLOC
  section of that name (``find_sec()``).
* A section is *init* when its name starts with ``.init``, and also when it
  starts with ``.exit`` on a kernel without CONFIG_MODULE_UNLOAD
  (``module_init_layout_section()``); ``mod_unload`` in the module's
  ``vermagic`` says which.
* Core sections, then init sections, are taken in five passes over the
  section headers by flag masks -- executable; read-only; ro_after_init;
  writable; the rest -- and each is put at the next multiple of its
  ``sh_addralign`` after the previous one (``module_get_offset()``).
* Linux 6.1 (``layout_sections()``): one allocation for core and one for
  init.  With CONFIG_STRICT_MODULE_RWX the size is rounded up to a page
  after the text, the read-only data and (core only) ro_after_init passes,
  so each region starts on a page of its allocation.
* Linux 6.4 and later (``__layout_sections()``): each memory type
  (``mod_mem``: text, rodata, ro_after_init, data and the init ones) is its
  own page-aligned allocation (``module_memory_alloc()``).

Each placed section gets the name of its region and its offset from the
region's start.  The module is recognised by its
``.gnu.linkonce.this_module`` section (the loader refuses a module without
one); the kernel release and ``mod_unload`` come from ``vermagic`` in
``.modinfo``.  This module is imported for every object with sites: it is
kept to plain arithmetic over the section headers.
"""
from __future__ import annotations

from math import gcd

from ..records import record
from ..vocabulary import LOADER_MODEL_TABLE, release_range
from .classify import effective_alignment
from .elf import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE

PAGE_SIZE = 4096
#: the loader's own flag for ro_after_init sections (include/uapi/linux/elf.h)
SHF_RO_AFTER_INIT = 0x00200000
THIS_MODULE = b".gnu.linkonce.this_module"


#: layout_sections() masks: (flags that must be set, flags that must be clear)
_MASKS = ((SHF_EXECINSTR | SHF_ALLOC, 0), (SHF_ALLOC, SHF_WRITE),
          (SHF_RO_AFTER_INIT | SHF_ALLOC, 0), (SHF_WRITE | SHF_ALLOC, 0), (SHF_ALLOC, 0))
#: the region each mask pass fills, for core and init sections (6.4: mod_mem types)
_CORE_REGIONS = ("text", "rodata", "ro_after_init", "data", "data")
_INIT_REGIONS = ("init_text", "init_rodata", None, "init_data", "init_data")
#: 6.1: passes after which the allocation's size is rounded up to a page
_STRICT_ALIGN_61 = {"core": (0, 1, 2, 4), "init": (0, 1, 4)}
#: 6.1: region of a pass into the init allocation (ro_after_init shares data's)
_INIT_REGIONS_61 = ("init_text", "init_rodata", "init_data", "init_data", "init_data")
#: the loader keeps sizes in 32 bits; a module near that is not modelled
_MAX_SIZE = 1 << 31


class Unmodelled(Exception):
    """The layout of this module cannot be modelled; the message says why."""


@record(frozen=True)
class ModuleInfo:
    """What a module's ``.modinfo`` tells about the kernel it was built for."""
    vermagic: str | None
    release: str | None
    unload: bool        # mod_unload: CONFIG_MODULE_UNLOAD
    smp: bool           # SMP: .data..percpu is allocated per CPU, not laid out


@record(frozen=True)
class Placed:
    """A section's place: ``offset`` from the start of ``region``, which is
    page-aligned; ``allocation`` is the block the region is part of (6.1:
    ``core`` or ``init``; 6.4: the region itself) and ``alloc_offset`` the
    section's offset in it."""
    region: str
    offset: int
    allocation: str
    alloc_offset: int


@record
class Layout:
    model: str
    info: ModuleInfo
    sections: dict           # section index -> Placed (SHF_ALLOC sections after the frobbing)


def is_module(elf) -> bool:
    """A loadable kernel module: a relocatable object with the section that
    holds its ``struct module``."""
    if elf.linked:
        return False
    for sec in elf.sections:
        if sec.name_bytes == THIS_MODULE:
            return True
    return False


def module_info(elf) -> ModuleInfo:
    """The ``vermagic`` of the first ``.modinfo`` section, split into release
    and flags (``mod_unload`` and ``SMP``; both assumed when there is no
    vermagic)."""
    return _module_info(elf, next((s for s in elf.sections if s.name_bytes == b".modinfo"),
                                  None))


def _module_info(elf, modinfo) -> ModuleInfo:
    """``module_info`` from the first ``.modinfo`` section (None: none)."""
    vermagic = None
    if modinfo is not None:
        # the first NUL-separated entry that starts with vermagic=
        data = elf.section_bytes(modinfo)
        if data.startswith(b"vermagic="):
            start = 9
        else:
            start = data.find(b"\0vermagic=")
            start = start + 10 if start >= 0 else -1
        if start >= 0:
            end = data.find(b"\0", start)
            vermagic = data[start:end if end >= 0 else len(data)].decode("ascii", "replace")
    if vermagic is None:
        return ModuleInfo(None, None, True, True)
    words = vermagic.split()
    return ModuleInfo(vermagic, words[0] if words else None,
                      "mod_unload" in words, "SMP" in words)


def release_version(release: str | None) -> tuple[int, int] | None:
    """(major, minor) of a release string such as ``6.1.0-50-cloud-amd64``."""
    if not release:
        return None
    parts = release.split(".", 2)
    if len(parts) < 2:
        return None
    minor = parts[1]
    n = 0
    while n < len(minor) and minor[n].isdigit():
        n += 1
    if not parts[0].isdigit() or n == 0:
        return None
    return int(parts[0]), int(minor[:n])


def model_for(release: str | None) -> str | None:
    model = _MODEL_FOR.get(release, _UNKNOWN)
    if model is _UNKNOWN:
        model = _model_for(release)
        if len(_MODEL_FOR) < 256:
            _MODEL_FOR[release] = model      # a corpus has a release or a few
    return model


_MODEL_FOR: dict = {}
_UNKNOWN = object()


def _model_for(release: str | None) -> str | None:
    version = release_version(release)
    if version is None:
        return None
    for m in LOADER_MODEL_TABLE.values():
        low, high = m.releases
        if low <= version <= high:
            return m.name
    return None


#: the sections the loader changes the flags of before the layout: the first
#: SHF_ALLOC one of each name (find_sec())
_CLEARED = (b".modinfo", b"__versions")
_CLEARED_SMP = _CLEARED + (b".data..percpu",)
_MARKED = (b".data..ro_after_init", b"__jump_table")
_FROBBED = frozenset(_CLEARED_SMP + _MARKED)


#: the names ``_survey`` looks for
_SURVEYED = _FROBBED | {THIS_MODULE, b".modinfo"}


def _survey(elf) -> tuple[bool, object, dict]:
    """One pass over the section headers: is there a THIS_MODULE section
    (``is_module``), the first ``.modinfo`` section whatever its flags
    (``module_info``), and the first SHF_ALLOC section of each _FROBBED name
    (find_sec()), by name."""
    module, modinfo, first = False, None, {}
    for sec in elf.sections[1:]:
        name = sec.name_bytes
        if name in _SURVEYED:
            if name == THIS_MODULE:
                module = True
            elif name == b".modinfo" and modinfo is None:
                modinfo = sec
            if name in _FROBBED and sec.flags & SHF_ALLOC and name not in first:
                first[name] = sec
    return module, modinfo, first


def loader_flags(elf, info: ModuleInfo) -> list[int]:
    """Each section's flags as the loader has them when it lays out."""
    flags = [s.flags for s in elf.sections]
    for index, f in _changed_flags(_survey(elf)[2], info).items():
        flags[index] = f
    return flags


def _changed_flags(first: dict, info: ModuleInfo) -> dict[int, int]:
    """The flags the loader gives the sections it changes, by section index,
    from the first SHF_ALLOC section of each name (``_survey``).  It clears
    SHF_ALLOC of sections whose names differ from the ones it marks after,
    so each find_sec() finds what it finds here."""
    changed: dict[int, int] = {}
    for name in (_CLEARED_SMP if info.smp else _CLEARED):
        sec = first.get(name)
        if sec is not None:
            changed[sec.index] = sec.flags & ~SHF_ALLOC
    for name in _MARKED:
        sec = first.get(name)
        if sec is not None:
            changed[sec.index] = sec.flags | SHF_RO_AFTER_INIT
    return changed


#: flags -> the first of _MASKS they match, as worked out so far
_PASS_OF: dict[int, int] = {}


def _pass_of(f: int) -> int | None:
    """The first of _MASKS that flags ``f`` match (layout_sections())."""
    for m, (must, must_not) in enumerate(_MASKS):
        if f & must == must and not f & must_not:
            return m
    return None


def layout(elf, model: str, info: ModuleInfo) -> Layout:
    """Lay out the SHF_ALLOC sections of a module as ``model``'s loader does.
    Raises Unmodelled for a module that loader would refuse or that the
    model does not cover."""
    return _layout(model, info, _place(elf, model, info))


def _layout(model: str, info: ModuleInfo, placed: dict) -> Layout:
    return Layout(model, info, {i: Placed(*p) for i, p in placed.items()})


def _place(elf, model: str, info: ModuleInfo, changed: dict[int, int] | None = None,
           code_only: bool = False) -> dict[int, tuple[str, int, str, int]]:
    """``layout``'s places as (region, offset, allocation, alloc_offset), by
    section index; ``changed``: ``_changed_flags``, when known.  With
    ``code_only``, the places of the executable sections (the first pass;
    every section a site can be in), the others' only when needed to raise
    what ``layout`` raises."""
    if model not in _LAYOUTS:
        raise ValueError(f"unknown layout model {model!r}")
    if changed is None:
        changed = _changed_flags(_survey(elf)[2], info)
    wx = SHF_WRITE | SHF_EXECINSTR
    # init: module_init_layout_section(), .exit* too without mod_unload
    init_prefixes = (b".init",) if info.unload else (b".init", b".exit")
    # each SHF_ALLOC section goes in the first of the five passes whose mask
    # its flags match (layout_sections()): here one list a pass, core and init
    core: list[list] = [[] for _ in _MASKS]
    init: list[list] = [[] for _ in _MASKS]
    bound = 4 * PAGE_SIZE       # what every section and page rounding could add up to
    for sec in elf.sections[1:]:
        f = sec.flags
        if not f & SHF_ALLOC:
            continue            # (the loader changes the flags of SHF_ALLOC sections only)
        if changed and sec.index in changed:
            f = changed[sec.index]
            if not f & SHF_ALLOC:
                continue
        m = _PASS_OF.get(f)
        if m is None:
            if f & wx == wx:
                # module_enforce_rwx_sections(): the loader refuses the module
                raise Unmodelled(f"section {sec.name} is writable and executable")
            m = _pass_of(f)             # (SHF_ALLOC flags match the last mask at least)
            if len(_PASS_OF) < 1024:
                _PASS_OF[f] = m             # (never flags with SHF_WRITE and SHF_EXECINSTR)
        align = sec.addralign
        if align & (align - 1) or align >= _MAX_SIZE:       # (0 is no alignment)
            raise Unmodelled(f"section {sec.name} has alignment {align}")
        (init if sec.name_bytes.startswith(init_prefixes) else core)[m].append(sec)
        bound += sec.size + align
    if code_only and bound < _MAX_SIZE and not (model == "6.4" and init[2]):
        # the later passes cannot make the layout raise: no region or
        # allocation reaches _MAX_SIZE, and no init section is ro_after_init
        # (6.4: MOD_INVALID); they do not move the first pass's sections
        core, init = core[:1], init[:1]
    placed: dict[int, tuple[str, int, str, int]] = {}
    for is_init, passes in ((False, core), (True, init)):
        if any(passes):
            _LAYOUTS[model](passes, is_init, placed)
    return placed


def _too_big(size: int, where: str) -> Unmodelled:
    """What a region or allocation of ``size`` bytes (>= _MAX_SIZE) raises."""
    return Unmodelled(f"the {where} region would be {size} bytes")


def _layout_61(passes: list[list], is_init: bool, placed: dict) -> None:
    """layout_sections(): one allocation for core sections, one for init.
    ``passes``: the sections of each mask pass, in section header order."""
    allocation = "init" if is_init else "core"
    regions = _INIT_REGIONS_61 if is_init else _CORE_REGIONS
    strict = _STRICT_ALIGN_61[allocation]
    size = 0
    region_start = {}
    for m, batch in enumerate(passes):
        region = regions[m]
        start = region_start.setdefault(region, size)
        for s in batch:
            align = s.addralign or 1
            off = (size + align - 1) & ~(align - 1)         # module_get_offset()
            size = off + s.size
            if size >= _MAX_SIZE:
                raise _too_big(size, allocation)
            placed[s.index] = (region, off - start, allocation, off)
        if m in strict:
            size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)   # strict_align()


def _layout_64(passes: list[list], is_init: bool, placed: dict) -> None:
    """__layout_sections(): each memory type its own allocation."""
    regions = _INIT_REGIONS if is_init else _CORE_REGIONS
    sizes: dict[str, int] = {}
    for m, batch in enumerate(passes):
        region = regions[m]
        for s in batch:
            if region is None:
                # __layout_sections(): MOD_INVALID, the loader warns and skips it
                raise Unmodelled(f"init section {s.name} is ro_after_init")
            size = sizes.get(region, 0)
            align = s.addralign or 1
            off = (size + align - 1) & ~(align - 1)         # module_get_offset()
            sizes[region] = size = off + s.size
            if size >= _MAX_SIZE:
                raise _too_big(size, region)
            placed[s.index] = (region, off, region, off)


def plan(elf, choice: str) -> tuple[Layout | None, str | None]:
    """The layout to classify ``elf`` with under ``Options.placement`` =
    ``choice``, and a warning when a module falls back to alignment verdicts.
    Not a module, or ``off``: (None, None)."""
    model, info, placed, warning = _plan(elf, choice)
    if placed is None:
        return None, warning
    return _layout(model, info, placed), None


def _plan(elf, choice: str, code_only: bool = False):
    """``plan`` as (model, module info, ``_place``'s places or None, warning)."""
    if choice == "off" or elf.linked:
        return None, None, None, None
    module, modinfo, first = _survey(elf)
    if not module:                              # is_module()
        return None, None, None, None
    info = _module_info(elf, modinfo)
    if choice == "auto":
        model = model_for(info.release)
        if model is None:
            if info.vermagic is None:
                why = "no vermagic in .modinfo, so the kernel release is unknown"
            else:
                why = (f"no layout model for kernel release {info.release!r} (models: "
                       + ", ".join(f"{m.name} for {release_range(m)}"
                                   for m in LOADER_MODEL_TABLE.values()) + ")")
            return None, info, None, _fallback(why)
    else:
        model = choice
    try:
        return model, info, _place(elf, model, info, _changed_flags(first, info),
                                   code_only), None
    except Unmodelled as e:
        return model, info, None, _fallback(f"the {model} module layout does not apply: {e}")


def _fallback(why: str) -> str:
    return f"module placement not modelled ({why}); crossing verdicts use section alignment"


class Placer:
    """What classification knows about where each section of one object
    lands: ``where(sec)`` gives (alignment g, offset of the section's start
    from a g-aligned boundary, the JSON ``placement`` of its sites)."""

    def __init__(self, elf, options, warnings: list[str]):
        self.elf = elf
        self.options = options
        self.warnings = warnings
        self._planned = False          # the layout is worked out for the first site
        self.model = None
        self.placed = None             # section index -> _place()'s tuple, when modelled
        self._cache: dict[int, tuple[int, int, dict]] = {}
        self._module_align = gcd(PAGE_SIZE, options.cache_line)

    def where(self, sec) -> tuple[int, int, dict]:
        got = self._cache.get(sec.index)
        if got is None:
            got = self._cache[sec.index] = self._where(sec)
        return got

    def _where(self, sec) -> tuple[int, int, dict]:
        if not self._planned:
            self._planned = True
            # only sections of code hold sites (decode.prove)
            self.model, _info, self.placed, warning = _plan(
                self.elf, self.options.placement, code_only=True)
            if warning:
                self.warnings.append(warning)
        if self.placed is not None:
            p = self.placed.get(sec.index)
            if p is not None:
                return (self._module_align, p[1],
                        {"basis": "model", "model": self.model, "region": p[0],
                         "offset": p[1]})
            self.warnings.append(f"{sec.name}: the module loader does not load this section; "
                                 "its sites' crossing verdicts use its alignment")
        g = effective_alignment(sec.addralign, self.options)
        return g, 0, {"basis": "alignment", "alignment": g}


#: the placement of a site in a linked image: its address is final
ADDRESS = {"basis": "address"}


#: the layout of each loader model (vocabulary.LOADER_MODELS), by name: a
#: model is one of Options.placement's values besides auto and off
_LAYOUTS = {"6.1": _layout_61, "6.4": _layout_64}
