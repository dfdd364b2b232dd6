"""QR images of payment payloads, with ``segno``: PNG for screens and tickets, SVG for print.

A payload is decoded before it is drawn, so no image carries a code a wallet would refuse.
Error correction is M (15% of the symbol can be lost); ``segno`` writes the same bytes for
the same payload, so images are reproducible.
"""

from __future__ import annotations

import io
from pathlib import Path

import segno

from .schemes import decode
from .schemes.examples import examples

SCALE = 5  # pixels per module: about 300 px for a typical payload
BORDER = 4  # the quiet zone the QR standard asks for, in modules


def _symbol(payload: str, check: bool) -> segno.QRCode:
    if check:
        decode(payload)
    # UTF-8 (a tag-64 name in Khmer or Thai) is announced with an ECI header, which strict
    # readers need (QR's default byte encoding is Latin-1); plain ASCII goes without one
    eci = not payload.isascii()
    return segno.make_qr(payload, error="m", boost_error=False, encoding="utf-8", eci=eci)


def png(
    payload: str, path: str | Path | None = None, *, scale: int = SCALE, check: bool = True
) -> bytes:
    """The PNG of ``payload`` (written to ``path`` too when given)."""
    out = io.BytesIO()
    _symbol(payload, check).save(out, kind="png", scale=scale, border=BORDER)
    data = out.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def svg(payload: str, *, scale: int = SCALE, check: bool = True) -> str:
    """The SVG of ``payload`` as text (no XML declaration, so it can be inlined in HTML)."""
    out = io.BytesIO()
    _symbol(payload, check).save(
        out, kind="svg", scale=scale, border=BORDER, xmldecl=False, svgns=True, nl=False
    )
    return out.getvalue().decode("utf-8")


def write_examples(folder: str | Path, *, scale: int = 4) -> list[Path]:
    """Write ``<scheme>.png`` and ``<scheme>.svg`` of each scheme's example payload (for
    docs/services/payments-qr/); returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for scheme, payload in examples().items():
        written.append(folder / f"{scheme}.png")
        png(payload, written[-1], scale=scale)
        written.append(folder / f"{scheme}.svg")
        written[-1].write_text(svg(payload, scale=scale) + "\n", encoding="utf-8")
    return written
