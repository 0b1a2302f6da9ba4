"""layers/build: the Montage and BLAST layers run from their unpacked zips with only their
own libraries, fit Lambda's limits, and zip deterministically."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from layers import build_layer
from layers.build_layer import LOADER, UNZIPPED_MAX, LayerError

pytestmark = pytest.mark.tools

HEADER = """SIMPLE  = T
BITPIX  = -64
NAXIS   = 2
NAXIS1  = 64
NAXIS2  = 64
CTYPE1  = 'RA---TAN'
CTYPE2  = 'DEC--TAN'
EQUINOX = 2000
CRVAL1  = 10.0
CRVAL2  = 20.0
CRPIX1  = 32.5
CRPIX2  = 32.5
CDELT1  = -0.001
CDELT2  = 0.001
CROTA2  = 0.0
END
"""


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/install-tools installs it)")


def unpack(zip_path: Path, dest: Path) -> Path:
    """Unzip as Lambda does into /opt: files with the modes the zip records."""
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            os.chmod(z.extract(info, dest), (info.external_attr >> 16) & 0o777)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, build_layer.Built]]:
    need("mImgtbl")
    need("blastn")
    out = tmp_path_factory.mktemp("dist")
    results = build_layer.build(["montage", "blast"], out, out / "tree")
    yield {b.name: b for b in results}


@pytest.fixture(scope="module")
def montage(built: dict[str, build_layer.Built], tmp_path_factory: pytest.TempPathFactory) -> Path:
    zip_path = built["montage"].zip_path
    assert zip_path is not None
    return unpack(zip_path, tmp_path_factory.mktemp("opt"))


def run_clean(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Like `env -i VAR=... argv`: no PATH, no inherited library path."""
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_montage_tools_run_from_the_unpacked_layer(montage: Path, tmp_path: Path) -> None:
    (tmp_path / "region.hdr").write_text(HEADER)
    (tmp_path / "raw").mkdir()
    lib = str(montage / "lib")
    steps = [
        [str(montage / "bin" / "mMakeImg"), "-n", "1.0", "region.hdr", "raw/tile.fits"],
        [str(montage / "bin" / "mImgtbl"), "raw", "images.tbl"],
        [str(montage / "bin" / "mProjectPP"), "raw/tile.fits", "projected.fits", "region.hdr"],
    ]
    for argv in steps:
        done = run_clean(argv, tmp_path, LD_LIBRARY_PATH=lib)
        assert done.returncode == 0 and 'stat="OK"' in done.stdout, (argv, done.stdout, done.stderr)
    assert "count=1" in run_clean(steps[1], tmp_path, LD_LIBRARY_PATH=lib).stdout
    assert "tile.fits" in (tmp_path / "images.tbl").read_text()
    assert (tmp_path / "projected.fits").stat().st_size > 64 * 64 * 8


def test_tools_load_only_the_layers_libraries(montage: Path) -> None:
    wrapper = (montage / "bin" / "mProjectPP").read_text()
    assert f'"$d/lib/{LOADER}" --inhibit-cache --library-path "$d/lib"' in wrapper
    # what the wrapper runs, in list mode: every library the tool loads, and from where
    listed = run_clean([str(montage / "lib" / LOADER), "--inhibit-cache", "--library-path", str(montage / "lib"),
                        "--list", str(montage / "libexec" / "mProjectPP")], montage)
    assert listed.returncode == 0, listed.stderr
    paths = [line.split("=>")[1].split("(")[0].strip() for line in listed.stdout.splitlines() if "=>" in line]
    assert any(p.endswith("/libcfitsio.so.10") for p in paths)
    assert paths and all(p.startswith(str(montage / "lib") + "/") for p in paths), listed.stdout


def test_blast_runs_from_its_unpacked_layer(built: dict[str, build_layer.Built], tmp_path: Path) -> None:
    zip_path = built["blast"].zip_path
    assert zip_path is not None
    layer = unpack(zip_path, tmp_path / "opt")
    done = run_clean([str(layer / "bin" / "blastn"), "-version"], tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("blastn: 2."), done.stdout + done.stderr


def test_layers_fit_lambdas_limits(built: dict[str, build_layer.Built]) -> None:
    for layer in built.values():
        assert layer.unzipped_bytes == build_layer.tree_bytes(layer.root)
        assert layer.zip_path is not None and layer.zip_bytes == layer.zip_path.stat().st_size
    assert sum(b.unzipped_bytes for b in built.values()) < UNZIPPED_MAX
    assert {"mProjectPP", "mAdd", "mImgtbl"} <= set(built["montage"].tools)
    assert {"blastn", "makeblastdb"} <= set(built["blast"].tools)


def test_a_layer_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    need("mImgtbl")
    monkeypatch.setattr(build_layer, "UNZIPPED_MAX", 1_000_000)
    with pytest.raises(LayerError, match="MB unzipped"):
        build_layer.assemble("montage", ["montage"], tmp_path / "montage")


def test_zips_are_deterministic(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "tool").write_text("#!/bin/sh\n")
    (tree / "bin" / "tool").chmod(0o755)
    first = build_layer.write_zip(tree, tmp_path / "a.zip")
    os.utime(tree / "bin" / "tool", (1, 1))  # a different mtime, the same content
    build_layer.write_zip(tree, tmp_path / "b.zip")
    assert first > 0 and (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_an_uninstalled_package_says_how_to_install_it() -> None:
    with pytest.raises(LayerError, match="scripts/install-tools"):
        build_layer.package_executables("updraft-no-such-package")
