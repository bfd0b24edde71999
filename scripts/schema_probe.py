"""One schema library on the shipped report schema, for scripts/bench --reader.

    python scripts/schema_probe.py MODULE REPORT.json...

Prints {"compile": s, "parse": s, "validate": s}: CPU seconds (best of 3) to
build the validator, to parse the reports (json.loads; for msgspec the typed
decoding, which parses and checks in one pass) and to validate the parsed
reports.  Every report must be valid.  MODULE: jsonschema_rs, fastjsonschema,
jsonschema, msgspec.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scall_objtool.vocabulary import KINDS, REASONS  # noqa: E402

SCHEMA = json.loads((ROOT / "scall_objtool" / "schema" / "report-v1.json").read_text())


def best(fn, n=3) -> float:
    times = []
    for _ in range(n):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def msgspec_types():
    """The report schema as msgspec types: what typed decoding needs written a
    second time (oneOf, if/then/else and the joint patchable/reason rule have
    no counterpart and would stay code)."""
    from typing import Annotated, Literal, Optional, Union

    import msgspec
    from msgspec import Meta, Struct

    Count = Annotated[int, Meta(ge=0)]
    Pos = Annotated[int, Meta(ge=1)]
    Kind = Literal[KINDS]
    Reason = Literal[REASONS]

    class S(Struct, forbid_unknown_fields=True):
        pass

    class Source(S):
        file: Optional[str]
        line: Optional[Pos]

    class Frame(S):
        function: Optional[str]
        file: Optional[str]
        line: Optional[Pos]

    class Placement(S):
        basis: Literal["address", "alignment", "model"]
        alignment: Optional[Pos] = None
        model: Optional[Literal["6.1", "6.4"]] = None
        region: Optional[str] = None
        offset: Optional[Count] = None

    class Remedy(S):
        text: Annotated[str, Meta(min_length=1)]
        flags: list[str]
        option: Optional[str]
        known: bool

    class Site(S):
        section: str
        offset: Count
        address: Optional[Count]
        function: Optional[str]
        function_offset: Optional[Count]
        trampoline: str
        key: str
        kind: Kind
        length: Annotated[int, Meta(ge=1, le=15)]
        prefixes: Annotated[str, Meta(max_length=28, pattern="^([0-9a-f]{2})*$")]
        crossing: Optional[Literal["never", "always", "depends"]]
        patchable: bool
        reason: Optional[Reason]
        alignment: Pos
        reloc_type: str
        source: Optional[Source]
        placement: Optional[Placement] = None
        inlined: list[Frame] = []
        remedy: Optional[Remedy] = None

    class Reference(S):
        section: str
        offset: Count
        function: Optional[str]
        function_offset: Optional[Count]
        symbol: str
        reloc_type: str
        kind: Literal["address", "data", "unproven"]
        detail: str

    class Tramp(S):
        sites: Pos
        patchable: Count
        fallback: Count

    class Counts(S):
        sites: Count
        patchable: Count
        fallback: Count
        references: Count
        by_kind: dict[Kind, Pos]
        by_reason: dict[Reason, Pos]
        by_trampoline: dict[str, Tramp]

    class Table(S):
        entries: Count

    class Obj(S):
        path: str
        elf_type: Literal["REL", "EXEC", "DYN"]
        sites: list[Site]
        references: list[Reference]
        existing_table: Optional[Table]
        summary: Counts
        compiler: Optional[Literal["gcc", "clang"]] = None

    class ByObject(S):
        path: str
        sites: Count
        patchable: Count
        fallback: Count
        references: Count

    class Skipped(S):
        foreign: Optional[Pos] = None
        repeated: Optional[Pos] = None

    class Summary(Counts):
        objects: Count
        by_object: list[ByObject]
        skipped: Optional[Skipped] = None

    class Report(S):
        schema_version: Literal[1]
        tool: dict[str, str]
        policy: dict[str, Union[str, int, bool, None]]
        objects: list[Obj]
        summary: Summary
        paths_relative_to: Optional[str] = None

    return lambda raw: msgspec.json.decode(raw, type=Report)


def main() -> int:
    module, paths = sys.argv[1], sys.argv[2:]
    raws = [Path(p).read_bytes() for p in paths]
    out = {"compile": 0.0, "parse": best(lambda: [json.loads(r) for r in raws])}
    docs = [json.loads(r) for r in raws]
    if module == "msgspec":
        decode = None

        def build():
            nonlocal decode
            decode = msgspec_types()
        out["compile"] = best(build, 1)
        out["parse"] = best(lambda: [decode(r) for r in raws])
        out["validate"] = 0.0
    else:
        if module == "jsonschema_rs":
            import jsonschema_rs as lib
            make = lambda: lib.validator_for(SCHEMA, pattern_options=lib.RegexOptions())  # noqa: E731
            check = lambda v, d: v.validate(d)  # noqa: E731
        elif module == "fastjsonschema":
            import fastjsonschema as lib
            make = lambda: lib.compile(SCHEMA)  # noqa: E731
            check = lambda v, d: v(d)  # noqa: E731
        elif module == "jsonschema":
            import jsonschema as lib
            make = lambda: lib.Draft202012Validator(SCHEMA)  # noqa: E731
            check = lambda v, d: v.validate(d)  # noqa: E731
        else:
            raise SystemExit(f"unknown module {module}")
        out["compile"] = best(make, 1)
        v = make()
        out["validate"] = best(lambda: [check(v, d) for d in docs], 1 if module == "jsonschema"
                               else 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
