"""The one option table: every command, argument and option, written once.

Each :class:`Opt` carries its flags, value kind, default, help and (for a
fixed set of values) its choices.  Two parsers are built from this table and
nothing else:

* ``cli.py`` turns it into typer commands (help, completion, error messages);
* ``fastcli.py`` parses well-formed command lines without importing typer
  (Kbuild starts the tool once per object, so start-up time matters).

Options that change what is found, classified or written (``POLICY``) are the
fields of :class:`model.Options`; their defaults are read from that record, so
each default is written once.  Every command is carried out by the function
of the same name in ``commands.py``, called with one keyword argument per
option (``paths`` for the inputs, ``options`` for the policy record).

This module imports nothing heavy: it is on the per-object fast path.
"""
from __future__ import annotations

from .model import PLACEMENTS, POLICIES, Options
from .records import defaults, record


@record(frozen=True)
class Opt:
    """One option: ``kind`` is flag, str, int, choice or list (repeatable str)."""
    dest: str
    flags: tuple
    kind: str
    help: str
    default: object = None
    choices: tuple = ()
    metavar: str | None = None
    minimum: int | None = None


@record(frozen=True)
class Arg:
    """Positional arguments: ``many`` takes one or more, else exactly one."""
    dest: str
    metavar: str
    help: str
    many: bool = False


@record(frozen=True)
class Command:
    name: str
    help: str
    args: tuple
    options: tuple
    policy: bool = True          # takes the POLICY options (built into ``options``)


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
    _policy("cache_line", ("--cache-line",), "int", "cache-line size in bytes",
            metavar="N"),
    _policy("assume_align", ("--assume-align",), "int",
            "relocatable objects: each section starts N-aligned (write records it in "
            "sh_addralign); not used for the sections of a modelled kernel module",
            metavar="N"),
    _policy("placement", ("--placement",), "choice",
            "kernel modules: auto lays out the sections as the module loader of the "
            "vermagic's kernel does (6.1-6.3, 6.4-6.12), giving exact crossing verdicts; off "
            "uses section alignment only; 6.1 or 6.4 forces that model",
            choices=PLACEMENTS),
    _policy("tramp_prefix", ("--tramp-prefix",), "str", "trampoline symbol prefix"),
    _policy("key_prefix", ("--key-prefix",), "str", "key symbol prefix"),
    _policy("module", ("--module",), "flag",
            "kernel module: the trampoline stands in for a missing key, as objtool "
            "--module does (a .ko with .gnu.linkonce.this_module is recognised without it; "
            "this is for a module's parts, .o files that cannot tell)"),
    _policy("strict_keys", ("--strict-keys",), "flag",
            "a missing key is an error (as in objtool), not added"),
)

# ------------------------------------------------------- shared by many
PATHS = Arg("paths", "PATH...", "objects to process", many=True)
INCLUDE = Opt("include", ("--include",), "list",
              "in directories, process files matching GLOB (repeatable; default *.o *.ko "
              "*.ko.xz *.ko.zst *.ko.gz *.a; write: *.o *.ko)",
              metavar="GLOB")
JOBS = Opt("jobs", ("--jobs", "-j"), "int",
           "worker processes over files (default: the number of CPUs)", metavar="N",
           minimum=1)
CANDIDATES = Opt("candidates", ("--candidates",), "choice",
                 "linked images: find candidates through the relocations the image keeps "
                 "(relocs), by scanning its code for branches (code), or relocations when "
                 "present (auto)", default="auto", choices=("auto", "relocs", "code"))
FORMAT = Opt("format", ("--format", "-f"), "choice", "report format", default="text",
             choices=("text", "json"))
METRICS_HELP = ("; openmetrics: counts per directory, trampoline, kind and reason for "
                "node_exporter's textfile collector")
OUTPUT = Opt("output", ("-o", "--output"), "str", "write the report to FILE",
             metavar="FILE")
LINT_OUTPUT = Opt("output", ("-o", "--output"), "str", "write the output to FILE",
                  metavar="FILE")
SOURCE_ROOT = Opt("source_root", ("--source-root",), "str",
                  "show and record source paths relative to DIR when below it (default: "
                  "the current directory)", metavar="DIR")
QUIET = Opt("quiet", ("--quiet", "-q"), "flag",
            "text format: print only the summary line (and warnings and errors)")
GROUP_BY = Opt("group_by", ("--group-by",), "choice",
               "text format: instead of one line a site, a table of the sites grouped by "
               "object directory, trampoline, kind or fallback reason (for large trees)",
               choices=("dir", "trampoline", "kind", "reason"))
NO_LINES = Opt("no_lines", ("--no-lines",), "flag",
               "do not read source lines (DWARF) for the report; the formats that show "
               "them (text findings, JSON, SARIF) leave them null")
STATS = Opt("stats", ("--stats",), "flag",
            "text format: add tables of sites per trampoline, kind, reason and object "
            "(the JSON summary always has them)")

# ------------------------------------------------------------ commands
COMMANDS = {c.name: c for c in (
    Command("scan", "Report every static-call site and how it is classified.",
            (PATHS,),
            (Opt("format", ("--format", "-f"), "choice", "report format" + METRICS_HELP,
                 default="text", choices=("text", "json", "openmetrics")),
             OUTPUT, INCLUDE, JOBS, STATS, CANDIDATES, QUIET, GROUP_BY, SOURCE_ROOT,
             NO_LINES)),
    Command("verify",
            "Check existing tables: every entry must point at an instruction that calls or "
            "jumps to its key's trampoline, with the right tail flag, and no site the "
            "table's policy lists may be missing (a table with tail calls is a kernel "
            "one).  Entries the --policy would not patch are reported apart, as policy "
            "findings.  Exit 1 on a wrong or incomplete table (--strict: on policy "
            "findings too).",
            (PATHS,),
            (FORMAT, OUTPUT, INCLUDE, JOBS, CANDIDATES,
             Opt("quiet", ("--quiet", "-q"), "flag",
                 "text format: print only the failed objects and the summary line"),
             Opt("strict", ("--strict",), "flag",
                 "policy findings (an entry for a site the policy would not patch) fail "
                 "the run too, not only a wrong or incomplete table"))),
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
            (Opt("format", ("--format", "-f"), "choice", "output format" + METRICS_HELP,
                 default="text", choices=("text", "json", "sarif", "openmetrics")),
             LINT_OUTPUT,
             Opt("baseline", ("--baseline",), "str",
                 "a report from `scan --format json`: fail only on fallback sites it lacks",
                 metavar="REPORT.json"),
             Opt("max_fallback", ("--max-fallback",), "int",
                 "fail only when there are more than N (new) fallback sites", default=0,
                 metavar="N"),
             Opt("stats", ("--stats",), "flag",
                 "text format: add tables of sites per trampoline, kind, reason and object"),
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
            (Opt("format", ("--format", "-f"), "choice", "output format", default="text",
                 choices=("text", "json")),
             LINT_OUTPUT, QUIET,
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
                 "write the page to FILE (default: standard output)", metavar="FILE"),
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
    return cmd.options + (POLICY if cmd.policy else ())
