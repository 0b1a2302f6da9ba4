"""Build Lambda layers carrying scientific tools from their installed Debian packages.

    layers/build                   # every layer below, into layers/dist/
    layers/build montage           # one of them
    layers/build --out /tmp/l blast

A layer unpacks into /opt of the function:

    /opt/bin/<tool>        a small /bin/sh wrapper (what PATH finds)
    /opt/libexec/<tool>    the Debian ELF executable, unchanged
    /opt/lib/<soname>      every shared library it loads, resolved by ldd, glibc included,
                           and the dynamic loader ld-linux-x86-64.so.2

Why the wrapper and a bundled glibc: Debian 12's binaries need glibc 2.36 symbols, and
Lambda's Amazon Linux 2023 runtimes have glibc 2.34. The wrapper starts the tool with the
layer's own loader (`ld.so --library-path <layer>/lib --inhibit-cache`), so the tool sees the
layer's libraries only, wherever the layer is unpacked. Tools must be installed first
(scripts/install-tools). Each layer is checked against Lambda's 250 MB unzipped limit, and so
is their sum, since a function's code and all its layers share that limit.

Zips are deterministic (sorted entries, fixed timestamps): the same files give the same
bytes, so scripts/deploy republishes a layer only when its content changed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"
UNZIPPED_MAX = 262_144_000  # bytes: 250 MB, function code and all its layers together (Lambda quotas)
ZIP_DIRECT_MAX = 50 * 1024 * 1024  # bytes: larger zips are published from S3 (scripts/deploy does)
LOADER = "ld-linux-x86-64.so.2"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)

# layer name -> the Debian packages whose executables it carries
LAYERS: dict[str, tuple[str, ...]] = {
    "montage": ("montage",),
    "blast": ("ncbi-blast+",),
}

WRAPPER = """#!/bin/sh
# {tool} from the layer, with the layer's own loader and libraries (layers/README.md).
case "$0" in */*) d="${{0%/*}}/.." ;; *) d=.. ;; esac
exec "$d/lib/{loader}" --inhibit-cache --library-path "$d/lib" --argv0 "$0" "$d/libexec/{tool}" "$@"
"""


class LayerError(Exception):
    """The layer cannot be built as asked; the message says how to fix it."""


@dataclass
class Built:
    name: str
    root: Path
    tools: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # package executables that are not ELF (scripts)
    unzipped_bytes: int = 0
    zip_path: Path | None = None
    zip_bytes: int = 0


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def package_executables(package: str) -> list[Path]:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    if status.returncode != 0 or "install ok installed" not in status.stdout:
        raise LayerError(f"Debian package {package!r} is not installed: run scripts/install-tools first")
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    files = [Path(line) for line in listed.splitlines() if line.startswith("/usr/bin/")]
    return sorted(p for p in files if p.is_file() and os.access(p, os.X_OK))


_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)$|^\s*(/\S+)\s+\(0x[0-9a-f]+\)$")


def shared_libraries(executable: Path) -> dict[str, Path]:
    """soname -> resolved file of every library the executable loads (ldd), loader included."""
    out = subprocess.run(["ldd", str(executable)], capture_output=True, text=True)
    if out.returncode != 0:
        raise LayerError(f"ldd {executable} failed: {out.stderr.strip() or out.stdout.strip()}")
    found: dict[str, Path] = {}
    for line in out.stdout.splitlines():
        if "not found" in line:
            raise LayerError(f"{executable}: {line.strip()} (install the package that provides it)")
        match = _LDD_LINE.match(line)
        if not match:
            continue  # linux-vdso.so.1 (the kernel's, never a file)
        name, path = (match.group(1), match.group(2)) if match.group(1) else (None, match.group(3))
        resolved = Path(path).resolve()
        found[name or Path(path).name] = resolved
    return found


def write_wrapper(path: Path, tool: str) -> None:
    path.write_text(WRAPPER.format(tool=tool, loader=LOADER), encoding="ascii")
    path.chmod(0o755)


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def assemble(name: str, packages: Iterable[str], root: Path) -> Built:
    """The layer's tree under `root` (replaced if present)."""
    if root.exists():
        shutil.rmtree(root)
    for sub in ("bin", "libexec", "lib"):
        (root / sub).mkdir(parents=True)
    built = Built(name, root)
    libraries: dict[str, Path] = {}
    for package in packages:
        for exe in package_executables(package):
            if not is_elf(exe):
                built.skipped.append(exe.name)
                continue
            shutil.copy2(exe, root / "libexec" / exe.name)
            write_wrapper(root / "bin" / exe.name, exe.name)
            built.tools.append(exe.name)
            libraries.update(shared_libraries(exe))
    if not built.tools:
        raise LayerError(f"layer {name}: packages {list(packages)} have no executables")
    if LOADER not in libraries:
        raise LayerError(f"layer {name}: ldd named no {LOADER}; only x86-64 glibc binaries are supported")
    for soname, source in sorted(libraries.items()):
        shutil.copy2(source, root / "lib" / soname)
    built.unzipped_bytes = tree_bytes(root)
    if built.unzipped_bytes > UNZIPPED_MAX:
        raise LayerError(f"layer {name} is {built.unzipped_bytes / 1e6:.1f} MB unzipped; Lambda allows "
                         f"{UNZIPPED_MAX / 1e6:.1f} MB for a function and all its layers")
    return built


def write_zip(root: Path, dest: Path) -> int:
    """A deterministic zip of `root`'s contents (paths relative to it, modes kept)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_TIME)
            info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as f:
                z.writestr(info, f.read())
    tmp.replace(dest)
    return dest.stat().st_size


def build(names: Iterable[str], out: Path, work: Path) -> list[Built]:
    names = list(names)
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise LayerError(f"unknown layer(s) {unknown}; known: {sorted(LAYERS)}")
    results = []
    for name in names:
        built = assemble(name, LAYERS[name], work / name)
        built.zip_path = out / f"{name}.zip"
        built.zip_bytes = write_zip(built.root, built.zip_path)
        results.append(built)
    total = sum(b.unzipped_bytes for b in results)
    if total > UNZIPPED_MAX:
        raise LayerError(f"layers {names} are {total / 1e6:.1f} MB unzipped together, over Lambda's "
                         f"{UNZIPPED_MAX / 1e6:.1f} MB for one function: give them to different functions")
    return results


def report(results: list[Built]) -> str:
    lines = []
    for b in results:
        via = "direct upload" if b.zip_bytes <= ZIP_DIRECT_MAX else "published from S3"
        lines.append(f"{b.name}: {len(b.tools)} tools, {b.unzipped_bytes / 1e6:.1f} MB unzipped, "
                     f"{b.zip_bytes / 1e6:.1f} MB zipped ({via}) -> {b.zip_path}")
        if b.skipped:
            lines.append(f"  not carried (scripts, not ELF): {', '.join(sorted(b.skipped))}")
    total = sum(b.unzipped_bytes for b in results)
    lines.append(f"together: {total / 1e6:.1f} MB of the {UNZIPPED_MAX / 1e6:.1f} MB a function may unzip")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="layers/build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layers", nargs="*", default=sorted(LAYERS), help=f"layers to build ({', '.join(LAYERS)})")
    parser.add_argument("--out", type=Path, default=DIST, help="where the zips go (default layers/dist)")
    parser.add_argument("--work", type=Path, default=None, help="where the unpacked trees go (default <out>/tree)")
    args = parser.parse_args(argv)
    try:
        results = build(args.layers, args.out, args.work or args.out / "tree")
    except LayerError as exc:
        print(f"layers/build: {exc}", file=sys.stderr)
        return 1
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
