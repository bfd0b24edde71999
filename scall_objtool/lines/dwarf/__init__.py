"""A small DWARF reader for source lines and inline chains, with bounded cost.

It reads only what the sites need:

* the compile units that cover a site: from ``.debug_aranges`` when the
  image has one, otherwise from each unit's top DIE (``DW_AT_low_pc``/
  ``DW_AT_high_pc``/``DW_AT_ranges``); a unit without ranges may cover any
  site and is decided by its line table;
* each distinct line program once (units that share one, as a crafted input
  may, share its decoding), streamed through the state machine without
  keeping rows: a site takes the row in force at its address as the rows go
  by (the last row at an address wins, as in BFD), and the decoding of a
  unit stops once every site it covers has its row;
* in each unit that holds a site, only the DIE subtrees whose PC ranges
  contain a site (``DW_AT_sibling`` or a size known from the abbreviation
  skips the rest), giving the chain of ``DW_TAG_inlined_subroutine`` with
  their ``DW_AT_call_file``/``DW_AT_call_line``.

Time is linear in the bytes decoded, memory in the sites plus the unit
headers, abbreviations and file tables read; no Python object is made per
line-table row or per DIE skipped.

The parts:

* ``forms``: constants, the error, LEB128 and strings, the size of a form;
* ``sections``: the debug sections of a file, decompressed, relocated when a
  value is read (symbols and relocations as ``core/elf.py`` reads them);
* ``units``: abbreviations, unit headers, DIEs and their attributes, names;
* ``ranges``: ``DW_FORM_addrx`` and range lists;
* ``lines``: line-program headers and the streamed state machine.
"""
from __future__ import annotations

from .forms import (_DESCEND, _FUNCS, AT_CALL_FILE, AT_CALL_LINE, AT_COMP_DIR, AT_SIBLING,
                    AT_STMT_LIST, DwarfError, cstring, sleb, text, uleb)
from .lines import LineProgram
from .sections import LOW, TAG_SHIFT, Debug, Section
from .units import Abbrev, Abbrevs, Reader, Unit

__all__ = ["AT_CALL_FILE", "AT_CALL_LINE", "AT_COMP_DIR", "AT_SIBLING", "AT_STMT_LIST", "LOW",
           "TAG_SHIFT", "Abbrev", "Abbrevs", "Debug", "DwarfError", "LineProgram", "Reader",
           "Section", "Unit", "_DESCEND", "_FUNCS", "cstring", "sleb", "text", "uleb"]
