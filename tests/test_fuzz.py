"""Fuzzing (hypothesis): every importer fails only with wspace errors, leaving the store as it was.

- Every importer gets mutated copies of a small valid source (a file of it truncated, bytes
  overwritten or inserted, or replaced by random bytes). Each import either succeeds or raises a
  :class:`~wspace.errors.WspaceError`, never another exception; on error the store, which holds
  the committed rows of the unmutated source's first import, is byte-for-byte unchanged.

``Layout.from_dict`` is fuzzed in tests/test_layout.py
(``test_from_dict_fuzz_gives_a_layout_or_schema_mismatch``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_hostile_input import SOURCES
from tests.workers import SOAK
from wspace.errors import WspaceError
from wspace.io import FORMATS, import_zoo
from wspace.testing import file_snapshot

EXAMPLES = 200 if SOAK else 12
"""Mutations per format (8 formats: about 100 imports; ``WSPACE_SOAK=1``: 1600)."""


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    """Per format: a store holding a good source's rows, and another good source to mutate
    (its folder's parent ``src``, and the path to import relative to that folder)."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(fmt: str) -> tuple[Path, Path]:
        if fmt not in made:
            base = tmp_path_factory.mktemp(f"fuzz-{fmt}")
            good = SOURCES[fmt](base / "good", "good")
            import_zoo(fmt, good, base / "store.zarr", progress=False)
            src = SOURCES[fmt](base / "src", "bad")
            made[fmt] = base / "store.zarr", src.relative_to(base / "src")
        return made[fmt]

    return get


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("replace"), st.binary(max_size=2048)),
)


def mutate(data: bytes, how: tuple[Any, ...]) -> bytes:
    if how[0] == "replace":
        return bytes(how[1])
    at = int(how[1] * len(data))
    if how[0] == "truncate":
        return data[:at]
    if how[0] == "overwrite":
        return data[:at] + how[2] + data[at + len(how[2]) :]
    return data[:at] + how[2] + data[at:]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_mutated_sources_import_or_raise_wspace_errors(fmt, originals, trials):
    store0, path = originals(fmt)
    src0 = store0.parent / "src"
    files = sorted(p.relative_to(src0) for p in src0.rglob("*") if p.is_file())
    outcomes = {"imported": 0, "refused": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    @given(file=st.sampled_from(files), how=mutations)
    def check(file: Path, how: tuple[Any, ...]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store, root = Path(tmp, "store.zarr"), Path(tmp, "src")
            shutil.copytree(store0, store)
            shutil.copytree(src0, root)
            target = root / file
            target.write_bytes(mutate(target.read_bytes(), how))
            before = file_snapshot(store)
            try:
                import_zoo(fmt, root / path, store, progress=False)
            except WspaceError:
                assert file_snapshot(store) == before
                outcomes["refused"] += 1
            else:
                outcomes["imported"] += 1

    check()
    trials.add(
        "hostile input, every importer: fuzzed sources (hypothesis mutations of valid files)",
        sum(outcomes.values()),
        "imported, or WspaceError with the store byte-unchanged; no other exception",
    )


# what the fuzzing found (each escaped as a non-wspace exception before it was fixed)
FOUND = [
    ("cnn-zoo", "weights.npy", ("truncate", 0.0)),  # EOFError
    ("cnn-zoo", "weights.npy", ("overwrite", 6.103515625e-05, b"\x00")),  # tokenize.TokenError
    ("nws", "runs/bad/meta.csv", ("overwrite", 0.0, b"\x80")),  # UnicodeDecodeError
    ("model-zoos", "trial_bad/result.json", ("replace", b"\x80")),  # UnicodeDecodeError
    ("state-dict", "net_bad.pt", ("replace", b"J")),  # struct.error
    ("state-dict", "net_bad.pt", ("overwrite", 0.0, b"q")),  # IndexError
]


@pytest.mark.parametrize(("fmt", "file", "how"), FOUND)
def test_what_fuzzing_found_is_a_wspace_error_naming_the_file(fmt, file, how, tmp_path):
    path = SOURCES[fmt](tmp_path / "src", "bad")
    target = tmp_path / "src" / file
    target.write_bytes(mutate(target.read_bytes(), how))
    with pytest.raises(WspaceError, match=str(target)):
        import_zoo(fmt, path, tmp_path / "store.zarr", progress=False)
    assert not (tmp_path / "store.zarr").exists()
