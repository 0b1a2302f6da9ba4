"""Which command-line tools an example needs are missing, and the one command that installs them."""

from __future__ import annotations

import shutil

# Debian package providing each tool the examples use.
PACKAGE_OF = {
    "mMakeImg": "montage", "mPutHdr": "montage", "mImgtbl": "montage", "mOverlaps": "montage",
    "mProjectPP": "montage", "mDiff": "montage", "mFitplane": "montage", "mBgModel": "montage",
    "mBackground": "montage", "mAdd": "montage", "mShrink": "montage", "mViewer": "montage",
    "makeblastdb": "ncbi-blast+", "blastn": "ncbi-blast+",
    "bwa": "bwa", "samtools": "samtools",
}


def missing_tools(tools: tuple[str, ...] | list[str]) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def install_hint(tools: tuple[str, ...] | list[str]) -> str:
    packages = sorted({PACKAGE_OF.get(t, t) for t in tools})
    return f"scripts/install-tools (or, as root: apt-get install -y {' '.join(packages)})"
