"""Named fault-injection points for crash tests; inert unless ``WSPACE_FAULT`` is set.

The engine calls :func:`fault_point` at the moments a crash matters most. When the environment
variable ``WSPACE_FAULT`` is ``"<point>"`` or ``"<point>:<n>"``, the process kills itself with
``SIGKILL`` (no cleanup, no ``finally``, like a power cut) the ``n``-th time (default: first)
it reaches that point. Without the variable a call costs one dictionary lookup.

Points: ``segment.chunk-written`` (a weight chunk was written), ``commit.before-publish``
(chunks written, record not yet created), ``log.before-create`` / ``log.after-create`` (around
the atomic creation of a commit record), ``commit.after-publish`` (record created, the writer
has not yet marked its rows committed), ``compact.copied`` (archive written, compaction record
not yet published), ``compact.after-publish``.

Examples
--------
>>> fault_point("commit.before-publish")  # inert: WSPACE_FAULT is not set
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "fault_point"]

ENV = "WSPACE_FAULT"
_hits: dict[str, int] = {}
"""Times each point was reached in this process (only counted while ``WSPACE_FAULT`` is set)."""


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL if ``WSPACE_FAULT`` names this point (and hit count)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
