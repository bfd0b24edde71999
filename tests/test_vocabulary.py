"""One table per vocabulary (scall_objtool/vocabulary.py): instruction kinds,
fallback reasons, loader models, output formats.  Every other place that
names them -- the decoder, the policy, the schemas, the SARIF rules, the
remedies, the dashboard, the option choices, the commands' writers -- agrees
with the table, so a word added in one place only fails here."""
from __future__ import annotations

import json
import re
import sys
from importlib import resources
from itertools import product

import pytest

from scall_testlib import ROOT

from scall_objtool import options as table
from scall_objtool.cli import parse
from scall_objtool.cli.commands import run
from scall_objtool.core import placement
from scall_objtool.core import CROSSINGS, CS_PREFIX, Options, Site
from scall_objtool.core.classify import apply_policy
from scall_objtool.core.decode import analyse
from scall_objtool.core.remedy import COMPILERS, REMEDIES, remedy
from scall_objtool.report import dashboard, sarif
from scall_objtool.report.findings import LAYOUT_REASONS, STRUCTURAL_REASONS
from scall_objtool.vocabulary import (FORMAT_TABLE, FORMATS, GATES, KIND_TABLE, KINDS,
                                      LOADER_MODEL_TABLE, LOADER_MODELS, REASON_TABLE, REASONS,
                                      TAIL_KINDS, formats_of)

PREBUILT = ROOT / "testdata" / "prebuilt"
sys.path.insert(0, str(ROOT / "scripts"))
import schema_enums  # noqa: E402

#: which vocabularies (scripts/schema_enums.py) each schema enumerates
SCHEMA_VOCABULARIES = {
    "report-v1.json": {"KINDS", "REASONS", "LOADER_MODELS", "PLACEMENTS", "POLICIES",
                       "CROSSINGS", "COMPILERS"},
    "check-v1.json": {"KINDS", "REASONS", "CROSSINGS", "COMPILERS", "GATES"},
    "verify-v1.json": {"PLACEMENTS", "POLICIES"},
}


def _schema_text(name: str) -> str:
    return resources.files("scall_objtool").joinpath("schema", name).read_text()


@pytest.mark.parametrize("name", sorted(SCHEMA_VOCABULARIES))
def test_schema_enums_are_the_tables(name):
    """Every enum of a kind, reason, model... in the shipped schemas holds the
    table's words (scripts/schema_enums.py writes them)."""
    _, changes, found = schema_enums.sync(_schema_text(name))
    assert changes == [], "run scripts/schema_enums.py"
    assert found == SCHEMA_VOCABULARIES[name]


def test_the_schema_enums_are_written_from_the_tables():
    """A word added to a schema's enum only, or missing there, is found and
    put right, the rest of the text left as it was."""
    text = _schema_text("report-v1.json")
    kinds = '"kind": {"enum": ' + json.dumps(list(KINDS)) + '}'
    assert kinds in text
    wrong = text.replace(kinds, kinds.replace('"jcc-tail", ', '').replace(
        '"indirect"', '"indirect", "far-call"'))
    assert wrong != text
    fixed, changes, _ = schema_enums.sync(wrong)
    assert len(changes) == 1 and "far-call" in changes[0] and fixed == text
    model = schema_enums.vocabulary_of
    assert (model(["6.1", "6.4", "6.13"]), model(["auto", "off", "6.1"])) == \
        ("LOADER_MODELS", "PLACEMENTS")
    assert model(["text", "rodata"]) is None


# --------------------------------------------------------------- kinds
def _insn(kind_opcode: tuple[str, ...], prefix: bytes) -> bytes:
    """The bytes of an instruction with ``kind_opcode`` (``?`` nibbles filled)
    and a zero rel32/disp32."""
    op = bytes.fromhex("".join(b.replace("?", "1") for b in kind_opcode))
    return prefix + op + bytes(4)


def test_the_decoder_gives_every_kind_from_its_opcode_and_no_other():
    """The table's opcode bytes (the dashboard draws them) are what the decoder
    reads as that kind; the kinds the decoder gives are the table's."""
    given = {}
    for spec, prefix in product(KIND_TABLE.values(), (b"", CS_PREFIX)):
        code = _insn(spec.opcode, prefix)
        kind = analyse(code, 0, len(code), "x").kind
        given.setdefault(spec.name, set()).add(kind)
    assert set().union(*given.values()) - {None} == set(KINDS)
    assert all(name in kinds for name, kinds in given.items()), given


def _site(kind: str, prefixes: bytes, crossing: str | None) -> Site:
    return Site(section=".text", section_index=1, offset=0, address=None, function="f",
                function_offset=0, trampoline="__SCT__t", tramp_sym=1, key="__SCK__t",
                kind=kind, length=5 + len(prefixes), prefixes=prefixes,
                reloc_type="R_X86_64_PLT32", alignment=16, crossing=crossing)


def test_every_reason_is_given_and_every_reason_given_is_the_tables():
    """The policies, over every kind, prefix and crossing, give exactly the
    table's reasons: a reason added to the table only is never given, one
    added to the policy only is not in the table."""
    given = set()
    policies = [Options(), Options(allow_tail=True, allow_prefixed=True),
                Options(policy="kernel")]
    for kind, prefixes, cross, opts in product(KINDS, (b"", CS_PREFIX, b"\x67"),
                                               (*CROSSINGS, None), policies):
        s = _site(kind, prefixes, cross)
        apply_policy(s, opts)
        assert s.patchable == (s.reason is None)
        given.add(s.reason)
    assert given - {None} == set(REASONS)
    assert {k.reason for k in KIND_TABLE.values()} - {None} <= set(REASONS)


def test_kind_properties_agree():
    """A direct jump is a tail (its table entry has the tail flag); a site
    without a rel32 has a reason to be fallback under every policy."""
    assert TAIL_KINDS == {k.name for k in KIND_TABLE.values()
                          if k.direct and k.verb == "jumps to"}
    for spec in KIND_TABLE.values():
        assert spec.direct or spec.reason is not None, spec.name
        apply_policy(s := _site(spec.name, b"", None), Options(policy="kernel"))
        assert s.patchable == spec.direct


# --------------------------------------------------------------- reasons
def test_gates_cover_every_reason_once():
    assert {r.gate for r in REASON_TABLE.values()} <= set(GATES)
    assert LAYOUT_REASONS | STRUCTURAL_REASONS == set(REASONS)
    assert not LAYOUT_REASONS & STRUCTURAL_REASONS


def test_sarif_has_one_rule_per_reason_from_the_table():
    rules = sarif._rules(64)
    assert [r["id"] for r in rules] == list(REASONS)
    for rule in rules:
        spec = REASON_TABLE[rule["id"]]
        assert (rule["name"], rule["shortDescription"]["text"],
                rule["fullDescription"]["text"]) == (spec.rule, spec.short, spec.full)
        assert rule["help"]["text"] == f"Remedy: {remedy(spec.name, None, 64).text}."
    assert len({r["name"] for r in rules}) == len(rules)


def test_every_reason_has_its_own_remedy():
    assert set(REMEDIES) == set(REASONS)
    for r in REASONS:
        for compiler in (None, *COMPILERS):
            fix = remedy(r, compiler)
            assert fix.reason == r and fix.text and "no known remedy for" not in fix.text


# ------------------------------------------------------------ dashboard
def test_the_dashboard_takes_its_words_from_the_table():
    """The page's script names no kind or reason: their texts and opcode bytes
    are embedded with the data, from the table."""
    js = resources.files("scall_objtool").joinpath("assets", "dashboard.js").read_text()
    quoted = [w for w in (*KINDS, *REASONS) if re.search(f"[\"']{re.escape(w)}[\"']", js)]
    assert quoted == []
    assert "D.vocab.reasons" in js and "D.vocab.opcodes" in js
    assert dashboard.VOCAB == {
        "reasons": {r.name: r.meaning for r in REASON_TABLE.values()},
        "opcodes": {k.name: list(k.opcode) for k in KIND_TABLE.values()}}


def test_the_page_embeds_the_vocabulary(cli, tmp_path):
    report = tmp_path / "r.json"
    assert cli("scan", "--format", "json", "-o", report, PREBUILT / "kinds.o").rc == 0
    html = dashboard.dashboard_from_files([str(report)])
    data = json.loads(re.search(r'id="scall-data">(.*?)</script>', html, re.S).group(1))
    assert data["vocab"] == dashboard.VOCAB


# --------------------------------------------------------------- models
def test_loader_models_are_the_placement_choices_and_each_has_a_layout():
    assert table.PLACEMENTS == ("auto", "off", *LOADER_MODELS)
    assert set(placement._LAYOUTS) == set(LOADER_MODELS)
    for m in LOADER_MODEL_TABLE.values():
        for major, minor in m.releases:
            assert placement.model_for(f"{major}.{minor}.0-1-amd64") == m.name
    opt = next(o for o in table.POLICY if o.dest == "placement")
    assert opt.choices == table.PLACEMENTS
    assert all(m in opt.help for m in LOADER_MODELS)


# -------------------------------------------------------------- formats
#: what each format's output is (a format added to the table needs its check)
FORMAT_CHECKS = {
    "text": lambda out: not out.lstrip().startswith(("{", "#")) and out.strip(),
    "json": lambda out: isinstance(json.loads(out), dict) and "runs" not in json.loads(out),
    "sarif": lambda out: json.loads(out)["version"] == "2.1.0",
    "openmetrics": lambda out: out.startswith("# ") and out.endswith("# EOF\n"),
}


def test_format_choices_are_the_table():
    assert set(FORMAT_CHECKS) == set(FORMATS)
    offered = set()
    for cmd in table.COMMANDS.values():
        fmt = next((o for o in cmd.options if o.dest == "format"), None)
        choices = fmt.choices if fmt else ()
        assert choices == formats_of(cmd.name), cmd.name
        offered.update(choices)
    assert offered == set(FORMATS)
    assert {c for f in FORMAT_TABLE.values() for c in f.commands} <= set(table.COMMANDS)


@pytest.mark.parametrize("command,fmt", [(c, f) for f, spec in FORMAT_TABLE.items()
                                         for c in spec.commands])
def test_every_command_writes_each_of_its_formats(command, fmt, cli, tmp_path):
    """Each command writes every format the table gives it (a format offered
    but not written falls through to another, which its check tells)."""
    obj = PREBUILT / "kinds.o"
    if command == "diff":
        old = tmp_path / "old.json"
        assert cli("scan", "--format", "json", "-o", old, obj).rc == 0
        args = [str(old), str(old)]
    else:
        args = [str(obj), "--jobs", "1"]
    out = tmp_path / "out"
    name, values = parse([command, "--format", fmt, "-o", str(out), *args])
    assert run(name, values) in (0, 1)
    assert FORMAT_CHECKS[fmt](out.read_text()), (command, fmt)


# ------------------------------------------------------------------ docs
def _table_rows(text: str, header: str) -> list[str]:
    """The first cells of the Markdown table under ``header`` (its first row)."""
    lines = text.splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line.split(" | ", 1)[0].lstrip("| "))
    return rows


def _words(cells: list[str]) -> list[str]:
    return [w for c in cells for w in re.findall(r"`([^`]+)`", c)]


def test_the_documents_list_the_tables():
    """The README's table of kinds, both tables of remedies and the command
    summary's --format and --placement values are the tables'."""
    readme = (ROOT / "README.md").read_text()
    remedy_md = (ROOT / "docs" / "remedy.md").read_text()
    kinds = _words(_table_rows(readme, "| kind | instruction | seed policy | kernel policy |"))
    assert kinds == list(KINDS)
    assert sorted(_words(_table_rows(readme, "| reason | remedy |"))) == sorted(REASONS)
    assert sorted(_words(_table_rows(remedy_md, "| reason | remedy | flags (gcc / clang) | "
                                                "option |"))) == sorted(REASONS)
    for command in {c for f in FORMAT_TABLE.values() for c in f.commands}:
        line = next(x for x in readme.splitlines() if x.startswith(f"| `{command} "))
        shown = re.search(r"--format ([\w\\|]+)\]", line).group(1).split("\\|")
        assert shown == list(formats_of(command)), command
    shown = re.search(r"`--placement ([\w.\\|]+)`", readme).group(1).split("\\|")
    assert shown == list(table.PLACEMENTS)
