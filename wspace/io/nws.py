"""NWS, the neural weight space of Eilertsen et al., "Classifying the classifier" (docs/formats.md).

A data set is a set of **run folders** listed by **split CSVs** (``nws_main_train.csv``, ...)::

    nws_main_train.csv            dataset, lrate, ..., weightn_conv, weightn_fc, path
    <path>/weights/001.bin ... 020.bin   raw float64, one flat vector per snapshot
    <path>/error.bin              float64 [epochs x 5]: step, train/valid/test error %, smoothed
    <path>/stat.bin               float64 [epochs, iterations, epochs (fraction), seconds]
    <path>/meta.csv               the run's hyper-parameters

The layout of a run is rebuilt from its CSV's architecture fields (:mod:`wspace.io.nws_arch`
says how, from the authors' code); snapshot ``k`` is epoch
``round(linspace(1, epochs, 20))[k - 1]`` with ``epochs = stat.bin[0]`` (``classifier.py``), and
``util.py`` ``import_weights`` reads ``error.bin`` at that epoch the same way.

Rows: ``model`` = the run's ``path`` as written in the CSV, ``step`` = the epoch of the
snapshot, ``snapshot`` = its file number, ``split`` = the CSV's name, every other CSV column,
``epochs``, and the ``error.bin`` row of that epoch (``iteration``, ``train_error``,
``valid_error``, ``test_error``, ``valid_error_smoothed``). The run's first snapshot row also
keeps ``error_curve`` (all of ``error.bin``), ``stat`` and ``meta_csv``, so that an export
writes those files back byte for byte. Each architecture is its own group, named by
:attr:`~wspace.io.nws_arch.NWSArchitecture.name`.

Examples
--------
>>> from wspace.io.nws import nws_layout
>>> nws_layout().name                      # the nws_fixed architecture
'nws-f5-c3x8-d2x128-bn1'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wspace.io.nws_arch import CSV_COLUMNS, NWSArchitecture, nws_layout, snapshot_epochs
from wspace.io.nws_export import export_zoo
from wspace.io.nws_runs import DERIVED as DERIVED
from wspace.io.nws_runs import ERROR_COLUMNS as ERROR_COLUMNS
from wspace.io.nws_runs import RUN_EXTRAS as RUN_EXTRAS
from wspace.io.nws_runs import scan
from wspace.io.session import ImportSession

if TYPE_CHECKING:
    from wspace.io.format import ImportReport
    from wspace.store.backend import StoreLike

__all__ = [
    "CSV_COLUMNS",
    "NWSArchitecture",
    "export_zoo",
    "import_zoo",
    "nws_layout",
    "scan",
    "snapshot_epochs",
]

log = logging.getLogger(__name__)


def import_zoo(
    src: str | os.PathLike[str],
    url: StoreLike,
    *,
    storage_options: Mapping[str, Any] | None,
    progress: bool,
    csv: str | None,
    root: str | os.PathLike[str] | None,
    commit_rows: int | None,
    allow_nonfinite: bool,
    codec: str | None,
) -> ImportReport:
    """Import NWS runs into the store at ``url`` (created when missing).

    Parameters
    ----------
    src
        A split CSV, or a folder whose CSVs (``csv`` glob, default ``*.csv``) are all split
        CSVs.
    csv
        Glob of the split CSVs in ``src``.
    root
        Folder the CSVs' relative ``path`` values start from (``None``: the CSV's folder).
    commit_rows, allow_nonfinite, codec
        The options of :class:`~wspace.io.session.ImportSession`.

    The defaults are those of :class:`wspace.io.builtin.Nws`, which calls this.

    Raises
    ------
    FormatError, SourceNotFoundError
        A CSV lacks columns, a run folder or snapshot is missing, a ``.bin`` has the wrong
        length. The whole data set is checked first, so nothing is written in these cases.
    """
    session = ImportSession(
        url,
        storage_options=storage_options,
        fmt="nws",
        commit_rows=commit_rows,
        allow_nonfinite=allow_nonfinite,
        codec=codec,
    )
    runs = scan(src, csv=csv, root=root)
    lossy = 0
    with session:
        for run in session.todo(
            runs, key=lambda r: r.model, progress=progress, desc="nws runs", unit="run"
        ):
            rows, exact = run.read()
            lossy += not exact
            session.add(run.model, rows, layout=run.layout, source=str(run.folder))
    if lossy:
        log.warning("%d run(s) had float64 weights not exact in float32; stored rounded", lossy)
    return session.report
