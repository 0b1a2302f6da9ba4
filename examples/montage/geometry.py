"""Gnomonic (TAN) sky geometry and FITS header templates, in the standard library only.

mHdr would write the mosaic's header template, but it asks a name/location service on the
network; these templates are written here instead, with the same keywords Montage uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TanHeader:
    """A 2-D TAN image: its size, tangent point, reference pixel, scale and rotation.

    Pixel coordinates are FITS ones (the first pixel's centre is 1.0).
    """

    naxis1: int
    naxis2: int
    crval1: float
    crval2: float
    crpix1: float
    crpix2: float
    cdelt1: float
    cdelt2: float
    crota2: float = 0.0

    def text(self) -> str:
        """The header template as Montage reads it (one card a line, no padding needed)."""
        cards = [
            ("SIMPLE", "T"),
            ("BITPIX", "-64"),
            ("NAXIS", "2"),
            ("NAXIS1", str(self.naxis1)),
            ("NAXIS2", str(self.naxis2)),
            ("CTYPE1", "'RA---TAN'"),
            ("CTYPE2", "'DEC--TAN'"),
            ("EQUINOX", "2000"),
            ("CRVAL1", f"{self.crval1:.8f}"),
            ("CRVAL2", f"{self.crval2:.8f}"),
            ("CRPIX1", f"{self.crpix1:.4f}"),
            ("CRPIX2", f"{self.crpix2:.4f}"),
            ("CDELT1", f"{self.cdelt1:.10f}"),
            ("CDELT2", f"{self.cdelt2:.10f}"),
            ("CROTA2", f"{self.crota2:.6f}"),
        ]
        return "".join(f"{key:<8}= {value}\n" for key, value in cards) + "END\n"

    def shifted(self, dx: float, dy: float) -> TanHeader:
        """The same header with the reference pixel moved by (dx, dy) pixels."""
        return TanHeader(
            self.naxis1, self.naxis2, self.crval1, self.crval2,
            self.crpix1 + dx, self.crpix2 + dy, self.cdelt1, self.cdelt2, self.crota2,
        )

    def world_to_pixel(self, ra: float, dec: float) -> tuple[float, float]:
        xi, eta = tan_project(self.crval1, self.crval2, ra, dec)
        rho = math.radians(self.crota2)
        dx = (xi * math.cos(rho) + eta * math.sin(rho)) / self.cdelt1
        dy = (-xi * math.sin(rho) + eta * math.cos(rho)) / self.cdelt2
        return self.crpix1 + dx, self.crpix2 + dy

    def pixel_to_world(self, x: float, y: float) -> tuple[float, float]:
        rho = math.radians(self.crota2)
        px = (x - self.crpix1) * self.cdelt1
        py = (y - self.crpix2) * self.cdelt2
        xi = px * math.cos(rho) - py * math.sin(rho)
        eta = px * math.sin(rho) + py * math.cos(rho)
        return tan_deproject(self.crval1, self.crval2, xi, eta)


def tan_project(ra0: float, dec0: float, ra: float, dec: float) -> tuple[float, float]:
    """Standard coordinates (xi, eta), in degrees, of (ra, dec) about the tangent point."""
    a0, d0, a, d = (math.radians(v) for v in (ra0, dec0, ra, dec))
    cosc = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    if cosc <= 0:
        raise ValueError(f"({ra}, {dec}) is more than 90 degrees from ({ra0}, {dec0})")
    xi = math.cos(d) * math.sin(a - a0) / cosc
    eta = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cosc
    return math.degrees(xi), math.degrees(eta)


def tan_deproject(ra0: float, dec0: float, xi: float, eta: float) -> tuple[float, float]:
    """(ra, dec) in degrees of the standard coordinates (xi, eta) in degrees."""
    x, y = math.radians(xi), math.radians(eta)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    rho = math.hypot(x, y)
    if rho == 0:
        return ra0 % 360.0, dec0
    c = math.atan(rho)
    dec = math.asin(math.cos(c) * math.sin(d0) + y * math.sin(c) * math.cos(d0) / rho)
    ra = a0 + math.atan2(x * math.sin(c), rho * math.cos(d0) * math.cos(c) - y * math.sin(d0) * math.sin(c))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def square_header(ra: float, dec: float, degrees: float, pixel_deg: float, crota2: float = 0.0) -> TanHeader:
    """A square TAN image `degrees` wide centred on (ra, dec), north up, east left."""
    n = max(1, round(degrees / pixel_deg))
    centre = (n + 1) / 2.0
    return TanHeader(n, n, ra, dec, centre, centre, -pixel_deg, pixel_deg, crota2)
