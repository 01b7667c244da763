"""The sidecar of a layerwise pickle: the model names, class by class, in row order."""

from __future__ import annotations

import json
import os
from pathlib import Path

from wspace.errors import CorruptDataError, SchemaMismatchError
from wspace.io.files import atomic_file

__all__ = ["SIDECAR_FORMAT", "read_sidecar", "sidecar_path", "write_sidecar"]

SIDECAR_FORMAT = "wspace layerwise-pickle model names"


def sidecar_path(pickle_path: str | os.PathLike[str]) -> Path:
    """The sidecar of a layerwise pickle: same folder and stem, suffix ``.models.json``.

    Examples
    --------
    >>> sidecar_path("x/lenet5_onevall_wghts_bylayer_class_20240101_000000.pkl").name
    'lenet5_onevall_wghts_bylayer_class_20240101_000000.models.json'
    """
    path = Path(pickle_path)
    return path.with_name(f"{path.stem}.models.json")


def write_sidecar(
    path: str | os.PathLike[str],
    pickle_name: str,
    classes: list[tuple[str, list[str]]],
    *,
    names_inferred: bool = False,
) -> None:
    """Write the model names of a layerwise pickle, class by class, in row order.

    The JSON object has ``format`` (``"wspace layerwise-pickle model names"``), ``version``
    (1), ``pickle`` (the pickle's file name), ``names_inferred`` (whether the names were made up
    as ``{class}_{i}`` when the zoo was imported) and ``classes``: a list, in the pickle's
    order, of ``{"class": name, "models": [model names in row order]}``.
    """
    body = {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "pickle": pickle_name,
        "names_inferred": bool(names_inferred),
        "classes": [{"class": c, "models": list(models)} for c, models in classes],
    }
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(body, indent=1) + "\n")


def read_sidecar(path: str | os.PathLike[str]) -> tuple[dict[str, list[str]], bool]:
    """``({class: model names}, names_inferred)`` of a sidecar (see :func:`write_sidecar`)."""
    where = repr(os.fspath(path))
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptDataError(f"{where}: not a readable sidecar ({exc})") from exc
    classes = body.get("classes") if isinstance(body, dict) else None
    ok = (
        isinstance(body, dict)
        and body.get("format") == SIDECAR_FORMAT
        and isinstance(classes, list)
        and all(
            isinstance(c, dict)
            and isinstance(c.get("class"), str)
            and isinstance(c.get("models"), list)
            and all(isinstance(m, str) and m for m in c["models"])
            for c in classes
        )
    )
    if not ok or classes is None:
        raise SchemaMismatchError(
            f"{where}: not a layerwise-pickle sidecar (expected {{'format': {SIDECAR_FORMAT!r}, "
            "'classes': [{'class': ..., 'models': [...]}, ...]}})"
        )
    return {c["class"]: c["models"] for c in classes}, bool(body.get("names_inferred", False))
