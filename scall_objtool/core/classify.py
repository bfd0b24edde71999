"""Classify stage: cache-line crossing and the patching policy.

Crossing is three-valued.  In a relocatable object only the offset modulo the
section's alignment is known, so a site's position within a cache line is
known modulo g = gcd(alignment, line).  With the instruction at offset o and
L bytes long, its start within a line can be any of (o mod g) + k*g:

* ``never``   -- (o mod g) + L <= g: no placement makes it cross;
* ``always``  -- (o mod g) + L >  line: every placement makes it cross;
* ``depends`` -- otherwise.

A linked image knows the address: pass it as the offset with g = line.
"""
from __future__ import annotations

from math import gcd

from ..vocabulary import KIND_TABLE
from . import CS_PREFIX, Options, Site


def effective_alignment(sh_addralign: int, options: Options) -> int:
    """What is known of a section's placement, reduced to a cache line."""
    align = sh_addralign if sh_addralign > 0 else 1
    if options.assume_align:
        align = max(align, options.assume_align)
    return gcd(align, options.cache_line)


def crossing(offset: int, length: int, align: int, line: int) -> str:
    pos = offset % align
    if pos + length <= align:
        return "never"
    if pos + length > line:
        return "always"
    return "depends"


def apply_policy(site: Site, options: Options) -> None:
    """Set ``patchable`` and ``reason`` on a site under the options' policy."""
    site.reason = reason = policy_reason(site.kind, site.prefixes, site.crossing, options)
    site.patchable = reason is None


def policy_reason(kind: str, prefixes: bytes, crossing: str | None,
                  options: Options) -> str | None:
    """Why a site of ``kind`` with these ``prefixes`` and ``crossing`` is
    fallback under the options' policy; None when it is patchable.  Depends
    on nothing else: a scan works it out once for each combination."""
    spec = KIND_TABLE[kind]
    if options.policy == "kernel":
        # objtool lists every direct call, tail call and conditional tail
        # call; the kernel's int3-based patcher copes with any placement.
        return None if spec.direct else spec.reason
    # the kind's own reason (a jmp, a jcc, no rel32), --allow-tail lifting a jmp's
    reason = None if kind == "tail" and options.allow_tail else spec.reason
    if reason is None:
        reason = _site_reason(kind, prefixes, crossing, options)
    return reason


def _site_reason(kind: str, prefixes: bytes, crossing: str | None,
                 options: Options) -> str | None:
    """The seed policy's reason for a direct call or jmp: its prefixes, else
    its crossing."""
    if prefixes:
        # --allow-prefixed: a call whose one prefix is cs (2E E8 rel32) is
        # the prefix patcher's, crossing or not: int3 goes on the prefix
        # byte, and no thread executes the rel32 while it is written.
        if options.allow_prefixed and kind == "prefixed-call" and prefixes == CS_PREFIX:
            return None
        return "prefixed"
    if crossing == "always":
        return "crosses-cache-line"
    if crossing == "depends":
        return "may-cross-cache-line"
    return None
