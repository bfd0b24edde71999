"""The one option table: every command, argument and option, written once.

Each :class:`Opt` carries its flags, value kind, default, help, (for a
fixed set of values) its choices and the range of its numbers.  The values
are checked here and only here (``value``, ``check``, ``check_together``),
with the tool's own one-line messages; both parsers call these:

* ``cli/__init__.py`` parses every command line without importing typer (Kbuild
  starts the tool once per object, so start-up time matters) and reports a
  malformed one as ``scall-objtool: error: ...``, exit 2;
* ``cli/typer_cli.py`` turns the table into typer commands, which render the help.

Options that change what is found, classified or written (``POLICY``) are the
fields of :class:`Options` (defined here, beside their table; ``model``
re-exports it); their defaults are read from that record, so each default is
written once, and the record's values are checked by the table too.  Every command is carried out by the function
of the same name in ``cli/commands.py``, called with one keyword argument per
option (``paths`` for the inputs, ``options`` for the policy record).

This module imports nothing heavy: it is on the per-object fast path.
"""
from __future__ import annotations

from .errors import UsageError
from .records import defaults, record
from .vocabulary import FORMAT_TABLE, LOADER_MODEL_TABLE, formats_of, release_range

POLICIES = ("seed", "kernel")
#: where a kernel module's sections are placed (see placement.py): auto picks
#: the loader model from the module's vermagic, off uses section alignment
#: only, a model name (vocabulary.LOADER_MODELS) forces that model
PLACEMENTS = ("auto", "off", *LOADER_MODEL_TABLE)
#: how a linked image's candidate sites are found (see pipeline.scan_elf)
CANDIDATE_SOURCES = ("auto", "relocs", "code")


@record(frozen=True)
class Options:
    """Everything that changes what the tool finds, classifies or writes."""
    policy: str = "seed"
    allow_tail: bool = False
    allow_prefixed: bool = False
    cache_line: int = 64
    assume_align: int | None = None
    tramp_prefix: str = "__SCT__"
    key_prefix: str = "__SCK__"
    module: bool = False
    strict_keys: bool = False
    placement: str = "auto"
    candidates: str = "auto"

    def __post_init__(self):
        check_policy(self)          # by the option table, as the command line's values

    def to_json(self) -> dict:
        """The report's ``policy`` record (``candidates`` aside: how a linked
        image's sites were found, not what is done with them)."""
        return {"name": self.policy, "allow_tail": self.allow_tail,
                "allow_prefixed": self.allow_prefixed,
                "cache_line": self.cache_line, "assume_align": self.assume_align,
                "module": self.module, "strict_keys": self.strict_keys,
                "tramp_prefix": self.tramp_prefix, "key_prefix": self.key_prefix,
                "placement": self.placement}


@record(frozen=True)
class Opt:
    """One option: ``kind`` is flag, str, int, choice or list (repeatable str).

    An int lies in ``minimum``..``maximum`` (and is a power of two with
    ``power_of_two``); a str is not empty with ``nonempty``; a ``text_only``
    option changes the text format only and is refused with another."""
    dest: str
    flags: tuple
    kind: str
    help: str
    default: object = None
    choices: tuple = ()
    metavar: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    power_of_two: bool = False
    nonempty: bool = False
    text_only: bool = False


@record(frozen=True)
class Arg:
    """Positional arguments: ``many`` takes one or more, else exactly one."""
    dest: str
    metavar: str
    help: str
    many: bool = False


@record(frozen=True)
class Command:
    """One command: its positional ``args`` and its ``options`` (with the
    POLICY options when ``policy``)."""
    name: str
    help: str
    args: tuple
    options: tuple
    policy: bool = True          # takes the POLICY options (built into ``options``)
    #: --policy defaults to each table's own (verify): ``None`` when not given
    policy_of_table: bool = False


_DEF = defaults(Options)


def _policy(dest: str, flags: tuple, kind: str, help: str, **kw) -> Opt:
    return Opt(dest, flags, kind, help, default=_DEF[dest], **kw)


# ------------------------------------------------------------ the policy
POLICY = (
    _policy("policy", ("--policy",), "choice",
            "seed: patch only direct calls that never cross a cache line; "
            "kernel: list every call and tail call, as objtool does",
            choices=POLICIES),
    _policy("allow_tail", ("--allow-tail",), "flag",
            "seed policy: tail calls (jmp) are patchable too"),
    _policy("allow_prefixed", ("--allow-prefixed",), "flag",
            "seed policy: cs-prefixed calls (2E E8, static_call_prefixed) are listed, "
            "crossing or not, for the run-time prefix patcher"),
    _policy("cache_line", ("--cache-line",), "int",
            "cache-line size in bytes (a power of two, 8 to 4096)", metavar="N",
            minimum=8, maximum=4096, power_of_two=True),
    _policy("assume_align", ("--assume-align",), "int",
            "relocatable objects: each section starts N-aligned (a power of two up to "
            "1 GiB; write records it in sh_addralign); not used for the sections of a "
            "modelled kernel module",
            metavar="N", minimum=1, maximum=1 << 30, power_of_two=True),
    _policy("placement", ("--placement",), "choice",
            "kernel modules: auto lays out the sections as the module loader of the "
            "vermagic's kernel does ("
            + ", ".join(release_range(m) for m in LOADER_MODEL_TABLE.values())
            + "), giving exact crossing verdicts; off uses section alignment only; "
            + " or ".join(LOADER_MODEL_TABLE) + " forces that model",
            choices=PLACEMENTS),
    _policy("tramp_prefix", ("--tramp-prefix",), "str", "trampoline symbol prefix",
            metavar="PREFIX", nonempty=True),
    _policy("key_prefix", ("--key-prefix",), "str", "key symbol prefix",
            metavar="PREFIX", nonempty=True),
    _policy("module", ("--module",), "flag",
            "kernel module: the trampoline stands in for a missing key, as objtool "
            "--module does (a .ko with .gnu.linkonce.this_module is recognised without it; "
            "this is for a module's parts, .o files that cannot tell)"),
    _policy("strict_keys", ("--strict-keys",), "flag",
            "a missing key is an error (as in objtool), not added"),
)

#: verify's --policy: by default, each table is judged by the policy it was
#: written under
TABLE_POLICY = Opt("policy", ("--policy",), "choice",
                   "judge every table by this policy (default: each by its own: a table "
                   "that lists a tail call or a site that may cross a cache line is a "
                   "kernel one, as objtool writes, else a seed one)",
                   choices=POLICIES)

# ------------------------------------------------------- shared by many
PATHS = Arg("paths", "PATH...", "objects to process", many=True)
INCLUDE = Opt("include", ("--include",), "list",
              "in directories, process files matching GLOB (repeatable; default *.o *.ko "
              "*.ko.xz *.ko.zst *.ko.gz *.a; write: *.o *.ko)",
              metavar="GLOB")
JOBS = Opt("jobs", ("--jobs", "-j"), "int",
           "worker processes over files (default: the number of CPUs)", metavar="N",
           minimum=1, maximum=1024)
CANDIDATES = Opt("candidates", ("--candidates",), "choice",
                 "linked images: find candidates through the relocations the image keeps "
                 "(relocs), by scanning its code for branches (code), or relocations when "
                 "present (auto)", default=_DEF["candidates"], choices=CANDIDATE_SOURCES)


def _format(command: str, help: str) -> Opt:
    """``--format`` of ``command``: the formats it writes (vocabulary.FORMATS),
    their own help after ``help``."""
    names = formats_of(command)
    help += "".join(f"; {FORMAT_TABLE[n].help}" for n in names if FORMAT_TABLE[n].help)
    return Opt("format", ("--format", "-f"), "choice", help, default="text", choices=names)


OUTPUT = Opt("output", ("-o", "--output"), "str", "write the report to FILE",
             metavar="FILE")
LINT_OUTPUT = Opt("output", ("-o", "--output"), "str", "write the output to FILE",
                  metavar="FILE")
SOURCE_ROOT = Opt("source_root", ("--source-root",), "str",
                  "show and record source paths relative to DIR when below it (default: "
                  "the current directory)", metavar="DIR")
QUIET = Opt("quiet", ("--quiet", "-q"), "flag",
            "text format: print only the summary line (and warnings and errors)",
            text_only=True)
GROUP_BY = Opt("group_by", ("--group-by",), "choice",
               "text format: instead of one line a site, a table of the sites grouped by "
               "object directory, trampoline, kind or fallback reason (for large trees)",
               choices=("dir", "trampoline", "kind", "reason"), text_only=True)
NO_LINES = Opt("no_lines", ("--no-lines",), "flag",
               "do not read source lines (DWARF) for the report; the formats that show "
               "them (text findings, JSON, SARIF) leave them null")
STATS = Opt("stats", ("--stats",), "flag",
            "text format: add tables of the sites per trampoline, kind, reason and "
            "object, with fallback, and their totals (the JSON summary always has them)",
            text_only=True)

# ------------------------------------------------------------ commands
COMMANDS = {c.name: c for c in (
    Command("scan", "Report every static-call site and how it is classified.",
            (PATHS,),
            (_format("scan", "report format"), OUTPUT, INCLUDE, JOBS, STATS, CANDIDATES,
             QUIET, GROUP_BY, SOURCE_ROOT, NO_LINES)),
    Command("verify",
            "Check existing tables: every entry must point at an instruction that calls or "
            "jumps to its key's trampoline, with the right tail flag, and no site the "
            "table's policy lists may be missing (a table with tail calls is a kernel "
            "one).  With --policy, entries that policy would not patch are reported "
            "apart, as policy findings.  Exit 1 on a wrong or incomplete table "
            "(--strict: on policy findings too).",
            (PATHS,),
            (_format("verify", "report format"), OUTPUT, INCLUDE, JOBS, CANDIDATES,
             Opt("quiet", ("--quiet", "-q"), "flag",
                 "text format: print only the failed objects and the summary line",
                 text_only=True),
             Opt("strict", ("--strict",), "flag",
                 "policy findings (an entry for a site the policy would not patch) fail "
                 "the run too, not only a wrong or incomplete table")),
            policy_of_table=True),
    Command("write", "Write the .static_call_sites table of each object (in place by "
                     "default).",
            (PATHS,),
            (Opt("output", ("-o", "--output"), "str",
                 "write the result to OUT instead of in place (one input only)",
                 metavar="OUT"),
             Opt("dry_run", ("--dry-run",), "flag", "report what would be written"),
             Opt("backup", ("--backup",), "flag", "keep the original as FILE.orig"),
             Opt("force", ("--force",), "flag", "replace an existing table"),
             Opt("quiet", ("--quiet", "-q"), "flag", "print only warnings and errors"),
             INCLUDE, JOBS)),
    Command("check", "Fail (exit 1) when a static-call site is fallback under the policy: "
                     "a CI gate.",
            (PATHS,),
            (_format("check", "output format"), LINT_OUTPUT,
             Opt("baseline", ("--baseline",), "str",
                 "a report from `scan --format json`: fail only on fallback sites it lacks",
                 metavar="REPORT.json"),
             Opt("max_fallback", ("--max-fallback",), "int",
                 "fail only when there are more than N (new) fallback sites", default=0,
                 metavar="N", minimum=0),
             STATS,
             Opt("layout_gate", ("--layout-gate",), "choice",
                 "crossing findings (layout): chance compares their count with what uniform "
                 "placement gives (+3 sigma); strict fails on every new one; auto is strict "
                 "when every judged section is cache-line aligned (the assembler's padding "
                 "flags), else chance", default="auto", choices=("auto", "chance", "strict")),
             SOURCE_ROOT,
             INCLUDE, JOBS, CANDIDATES, QUIET, GROUP_BY, NO_LINES)),
    Command("diff", "Compare two JSON reports: added, removed and changed sites (exit 1 on "
                    "a new fallback site).",
            (Arg("old", "OLD.json", "the earlier `scan --format json` report"),
             Arg("new", "NEW.json", "the later report")),
            (_format("diff", "output format"), LINT_OUTPUT, QUIET,
             Opt("old_root", ("--old-root",), "str",
                 "match OLD's objects by their paths below DIR (default: the current "
                 "directory; when nothing matches, each report's common directory)",
                 metavar="DIR"),
             Opt("new_root", ("--new-root",), "str",
                 "match NEW's objects by their paths below DIR", metavar="DIR")),
            policy=False),
    Command("dashboard", "Render JSON reports (scan or check --format json, oldest first) "
                         "as one self-contained HTML page: summary, breakdowns, fallback "
                         "sites with cache-line pictures, and the trend over the reports.",
            (Arg("reports", "REPORT.json...", "the reports, oldest first", many=True),),
            (Opt("output", ("-o", "--output"), "str",
                 "write the page to FILE (default: standard output, unless it is a "
                 "terminal; - for standard output)", metavar="FILE"),
             Opt("label", ("--label",), "list",
                 "label of the next report, in order (repeatable; default: its file name)",
                 metavar="L")),
            policy=False),
    Command("runtime-path", "Print the directory of the C runtime (headers, sources, "
                            "linker-script fragment) that patches the sites at run time.",
            (), (), policy=False),
)}


def all_options(cmd: Command) -> tuple:
    """The options of ``cmd``: its own, then the policy's."""
    if not cmd.policy:
        return cmd.options
    if cmd.policy_of_table:
        return cmd.options + (TABLE_POLICY,) + POLICY[1:]
    return cmd.options + POLICY


# ------------------------------------------------------------ the checks
def _name(opt: Opt) -> str:
    return opt.flags[0]


def check(opt: Opt, v) -> None:
    """UsageError unless ``v`` is a value ``opt`` takes (None: not given)."""
    if v is None or opt.kind in ("flag", "list"):
        return
    if opt.kind == "choice":
        if v not in opt.choices:
            raise UsageError(f"{_name(opt)}: unknown value {v!r} "
                             f"(choose from {', '.join(opt.choices)})")
    elif opt.kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise UsageError(f"{_name(opt)}: {v!r} is not a whole number")
        lo, hi = opt.minimum, opt.maximum
        if opt.power_of_two and (v <= 0 or v & (v - 1) or not lo <= v <= hi):
            raise UsageError(f"{_name(opt)}: must be a power of two from {lo} to {hi}, "
                             f"not {v}")
        if lo is not None and v < lo:
            raise UsageError(f"{_name(opt)}: must be at least {lo}, not {v}")
        if hi is not None and v > hi:
            raise UsageError(f"{_name(opt)}: must be at most {hi}, not {v}")
    elif opt.nonempty and not v:
        raise UsageError(f"{_name(opt)}: must not be empty")


def value(opt: Opt, text: str):
    """The value of ``opt`` written as ``text`` on a command line, checked."""
    if opt.kind == "int":
        try:
            v = int(text, 10)
        except ValueError:
            raise UsageError(f"{_name(opt)}: {text!r} is not a whole number") from None
    else:
        v = text
    check(opt, v)
    return v


def check_together(cmd: Command, values: dict) -> None:
    """Options that cannot be honoured together: a text-only option with
    another output format (it would be silently ignored)."""
    fmt = values.get("format")
    if fmt is None or fmt == "text":
        return
    for o in cmd.options:
        if o.text_only and values.get(o.dest) not in (None, False):
            raise UsageError(f"{_name(o)} applies to the text format only, not to "
                             f"--format {fmt}")


def check_policy(options) -> None:
    """The policy record's values, as the command line checks them (the
    library's ``Options(...)`` goes through here too)."""
    for o in (*POLICY, CANDIDATES):
        check(o, getattr(options, o.dest))


def options_of(cmd: Command, values: dict) -> tuple:
    """(the ``Options`` record of a command's values, the other values): every
    option whose dest is a field of ``Options`` goes into the record."""
    from .records import fields
    rest = dict(values)
    own = {o.dest for o in all_options(cmd)} & set(fields(Options))
    return Options(**{d: rest.pop(d) for d in sorted(own) if d in rest}), rest
