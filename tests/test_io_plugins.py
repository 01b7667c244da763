"""Formats as plugins: detection (``can_open``), ``auto`` import, options refused by signature,
and a third-party format found through a real ``wspace.formats`` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import wspace
from tests.test_hostile_input import SOURCES
from wspace.cli import app
from wspace.errors import FormatError, SourceNotFoundError, WspaceError
from wspace.io import FORMATS, Format, detect_format, formats, get_format, import_zoo
from wspace.testing import assert_rows_equal

REPO = Path(__file__).resolve().parents[1]


def unique(prefix: str) -> str:
    return f"memory://{prefix}-{uuid.uuid4().hex}"


def test_registry_lists_the_builtin_formats_as_format_subclasses():
    assert list(FORMATS) == [
        "keras-h5",
        "modelwise-pickle",
        "layerwise-pickle",
        "nws",
        "cnn-zoo",
        "model-zoos",
        "state-dict",
        "safetensors",
    ]
    assert set(SOURCES) == set(FORMATS) and set(FORMATS) <= set(formats())
    for name, fmt in FORMATS.items():
        assert isinstance(fmt, Format) and fmt.name == name and get_format(name) is fmt
        assert fmt.summary and fmt.exports
        assert {"commit_rows", "allow_nonfinite", "codec"} <= set(fmt.import_options())
        assert "batch_rows" in fmt.export_options()
    with pytest.raises(WspaceError, match=r"unknown format 'nope'; formats: 'keras-h5', "):
        get_format("nope")


@pytest.mark.parametrize("fmt", list(SOURCES))
def test_each_format_opens_its_own_sample_and_no_other_format_does(fmt, tmp_path):
    src = SOURCES[fmt](tmp_path / "src", "good")
    assert [name for name, f in FORMATS.items() if f.can_open(src)] == [fmt]
    assert detect_format(src) is FORMATS[fmt]


@pytest.mark.parametrize("fmt", list(SOURCES))
def test_auto_import_equals_explicit_import(fmt, tmp_path):
    src = SOURCES[fmt](tmp_path / "src", "good")
    explicit = import_zoo(fmt, src, unique(f"explicit-{fmt}"), progress=False)
    auto = import_zoo("auto", src, unique(f"auto-{fmt}"), progress=False)
    assert explicit.format == auto.format == fmt
    assert (auto.rows, auto.models, auto.archs) == (explicit.rows, explicit.models, explicit.archs)
    a, b = wspace.open(explicit.url), wspace.open(auto.url)
    pd.testing.assert_frame_equal(a.models, b.models)
    assert_rows_equal(a.values, b.values)


def test_cli_import_auto_says_which_format(tmp_path):
    src = SOURCES["safetensors"](tmp_path / "src", "good")
    url = str(tmp_path / "z.zarr")
    result = CliRunner().invoke(app, ["import", "auto", str(src), url])
    assert result.exit_code == 0, result.output
    assert "format safetensors (detected)" in result.output
    assert "imported 1 row(s) of 1 model(s)" in result.output


def test_ambiguous_and_unknown_sources_are_refused_naming_the_formats(tmp_path):
    both = SOURCES["safetensors"](tmp_path / "both", "good")
    SOURCES["state-dict"](tmp_path / "sd", "good")
    for pt in (tmp_path / "sd").iterdir():
        pt.rename(both / pt.name)
    with pytest.raises(WspaceError, match=r"several formats: 'state-dict', 'safetensors'"):
        detect_format(both)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a zoo")
    with pytest.raises(FormatError, match=r"none of the formats .* 'keras-h5', .*'safetensors'"):
        detect_format(tmp_path / "other")
    with pytest.raises(SourceNotFoundError, match="no such file or folder"):
        detect_format(tmp_path / "gone")
    result = CliRunner().invoke(app, ["import", "auto", str(both), str(tmp_path / "z.zarr")])
    assert result.exit_code == 2 and "'state-dict', 'safetensors'" in result.output
    assert not (tmp_path / "z.zarr").exists()
    # a look at a header that is no pickle, or no CSV, is a no, not an error
    (tmp_path / "junk.pkl").write_bytes(b"\xff\x00garbage")
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "bad.csv").write_bytes(b"\xff\xfe\x00")
    for name in ("modelwise-pickle", "layerwise-pickle"):
        assert not FORMATS[name].can_open(tmp_path / "junk.pkl")
    assert not FORMATS["nws"].can_open(tmp_path / "csvs")


def test_pickles_are_told_apart_by_their_first_opcode_when_renamed(tmp_path):
    for fmt in ("modelwise-pickle", "layerwise-pickle"):
        src = SOURCES[fmt](tmp_path / fmt, "good")
        renamed = src.with_name("zoo.pkl")
        src.rename(renamed)
        assert detect_format(renamed) is FORMATS[fmt]


def test_unknown_options_are_refused_naming_the_format_and_its_options(tmp_path):
    src = SOURCES["nws"](tmp_path / "src", "good")
    with pytest.raises(
        WspaceError,
        match=r"format 'nws' has no option\(s\) 'colour'; its options here: 'csv', 'root', "
        r"'commit_rows', 'allow_nonfinite', 'codec'",
    ):
        import_zoo("nws", src, unique("colour"), progress=False, colour="red")
    with pytest.raises(TypeError, match="colour"):  # the method's signature refuses it
        FORMATS["nws"].import_(src, unique("colour"), colour="red")
    result = CliRunner().invoke(
        app, ["import", "auto", str(src), unique("cli"), "-O", "colour=red"]
    )
    assert result.exit_code == 2
    assert "format 'nws' has no option(s) 'colour'; its options here: 'csv'" in result.output
    with pytest.raises(WspaceError, match="option allow_nonfinite='maybe': expected true or false"):
        import_zoo("nws", src, unique("bool"), progress=False, allow_nonfinite="maybe")
    with pytest.raises(WspaceError, match="option commit_every='x': expected an integer"):
        import_zoo("nws", src, unique("int"), progress=False, commit_every="x")


def test_cli_formats_lists_formats_with_summaries_and_options():
    result = CliRunner().invoke(app, ["formats"])
    assert result.exit_code == 0, result.output
    for name, fmt in FORMATS.items():
        assert f"{name}: {fmt.summary}" in result.output
    assert "  import options: arch='cnn-zoo', commit_rows=4096, allow_nonfinite=True" in (
        result.output
    )
    assert "  export options: weights_only=False, overwrite=True, batch_rows=64" in result.output


# -- a third-party format, installed as a package with an entry point -----------------------
PLUGIN = '''
from __future__ import annotations

from pathlib import Path

import numpy as np

import wspace
from wspace.io import Format, ImportReport


class Lines(Format):
    """A text file: one model per line, ``name,w1,w2,...``."""

    name = "lines"
    summary = "text file, one model per line: name,w1,w2,..."

    def can_open(self, src: Path) -> bool:
        return src.suffix == ".lines"

    def import_(self, src, url, *, storage_options=None, progress=True, sep: str = ",",
                scale: float = 1.0) -> ImportReport:
        rows = [line.split(sep) for line in Path(src).read_text().splitlines() if line]
        tensor = {"name": "line/w", "shape": [len(rows[0]) - 1]}
        layout = wspace.Layout.from_dict({"name": "lines", "tensors": [tensor]})
        wspace.create(url, layout, storage_options=storage_options)
        report = ImportReport(url=str(url), archs=["lines"], format=self.name)
        with wspace.writer(url, storage_options=storage_options) as writer:
            for model, *values in rows:
                writer.append(np.array(values, dtype=np.float64) * scale, model=model)
                report.models.append(model)
                report.rows += 1
        return report
'''

ENTRY_POINTS = """\
[wspace.formats]
lines = wspace_lines:Lines
broken = wspace_lines_missing:Nope
"""


def install_plugin(root: Path) -> None:
    """A package and its ``*.dist-info`` (METADATA, entry_points.txt) on ``root``."""
    (root / "wspace_lines").mkdir(parents=True)
    (root / "wspace_lines" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "wspace_lines-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wspace-lines\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def run_wspace(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPO}"}
    return subprocess.run(
        [sys.executable, "-m", "wspace", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=root,
    )


def test_a_format_of_an_installed_package_is_listed_detected_and_used(tmp_path):
    plugins = tmp_path / "site"
    install_plugin(plugins)
    listed = run_wspace(plugins, "formats")
    assert listed.returncode == 0, listed.stderr
    assert "lines: text file, one model per line: name,w1,w2,...  [plugin: wspace_lines]" in (
        listed.stdout
    )
    assert "  import options: sep=',', scale=1.0" in listed.stdout
    assert "  export options: (cannot export)" in listed.stdout
    assert "keras-h5: " in listed.stdout  # the built-in ones are still there
    # the broken entry point is left out with a warning naming it; nothing else is affected
    assert "entry point 'broken' = 'wspace_lines_missing:Nope'" in listed.stderr
    assert "ModuleNotFoundError" in listed.stderr

    src = tmp_path / "zoo.lines"
    src.write_text("a,1,2,3\nb,4,5,6\n")
    url = str(tmp_path / "lines.zarr")
    imported = run_wspace(plugins, "import", "auto", str(src), url, "-O", "scale=2")
    assert imported.returncode == 0, imported.stderr
    assert "format lines (detected)" in imported.stdout
    assert "imported 2 row(s) of 2 model(s)" in imported.stdout
    zoo = wspace.open(url)
    assert zoo.models["model"].tolist() == ["a", "b"]
    assert_rows_equal(zoo.values, np.array([[2, 4, 6], [8, 10, 12]], np.float32))

    wrong = run_wspace(plugins, "import", "lines", str(src), url + "2", "-O", "colour=red")
    assert wrong.returncode == 2
    assert "format 'lines' has no option(s) 'colour'; its options here: 'sep', 'scale'" in (
        wrong.stderr
    )
    broken = run_wspace(plugins, "import", "broken", str(src), url + "3")
    assert broken.returncode == 2
    assert "format 'broken' is not available: entry point 'broken'" in broken.stderr
