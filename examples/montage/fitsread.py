"""A tiny FITS image reader (primary HDU, 2-D) in the standard library, for checks and tests.

FITS is simple: 2880-byte header blocks of 80-character cards ending with END, then the
pixels, big-endian, row by row from the bottom-left. Blank pixels are NaN.
"""

from __future__ import annotations

import array
import math
import sys
from dataclasses import dataclass

_BLOCK = 2880
_TYPECODES = {-64: "d", -32: "f", 32: "i", 16: "h"}


@dataclass(frozen=True)
class Image:
    header: dict[str, str]
    width: int
    height: int
    pixels: array.array  # row-major, pixels[(y - 1) * width + (x - 1)] for FITS pixel (x, y)

    def at(self, x: int, y: int) -> float:
        """The value at 1-based FITS pixel (x, y)."""
        return float(self.pixels[(y - 1) * self.width + (x - 1)])

    def number(self, key: str) -> float:
        return float(self.header[key])

    def region(self, x0: int, y0: int, x1: int, y1: int) -> list[float]:
        """Finite values in the 1-based inclusive box, clipped to the image."""
        x0, y0 = max(1, x0), max(1, y0)
        x1, y1 = min(self.width, x1), min(self.height, y1)
        out: list[float] = []
        for y in range(y0, y1 + 1):
            row = self.pixels[(y - 1) * self.width + x0 - 1:(y - 1) * self.width + x1]
            out.extend(v for v in row if math.isfinite(v))
        return out


def parse_header(raw: bytes) -> tuple[dict[str, str], int]:
    """Header keywords (string values unquoted) and the offset where the data starts."""
    header: dict[str, str] = {}
    offset = 0
    while offset + _BLOCK <= len(raw):
        block = raw[offset:offset + _BLOCK]
        offset += _BLOCK
        for i in range(0, _BLOCK, 80):
            card = block[i:i + 80].decode("ascii", errors="replace")
            key = card[:8].strip()
            if key == "END":
                return header, offset
            if card[8:10] == "= ":
                value = card[10:]
                value = value.split("'")[1] if value.lstrip().startswith("'") else value.split("/")[0]
                header[key] = value.strip()
    raise ValueError("no END card: not a FITS file")


def read(path: str) -> Image:
    with open(path, "rb") as fh:
        raw = fh.read()
    header, offset = parse_header(raw)
    if int(header.get("NAXIS", "0")) < 2:
        raise ValueError(f"{path}: not a 2-D image")
    bitpix = int(header["BITPIX"])
    if bitpix not in _TYPECODES:
        raise ValueError(f"{path}: BITPIX {bitpix} not supported")
    width, height = int(header["NAXIS1"]), int(header["NAXIS2"])
    pixels = array.array(_TYPECODES[bitpix])
    pixels.frombytes(raw[offset:offset + width * height * pixels.itemsize])
    if sys.byteorder == "little":
        pixels.byteswap()
    if len(pixels) != width * height:
        raise ValueError(f"{path}: truncated data ({len(pixels)} of {width * height} pixels)")
    return Image(header, width, height, pixels)
