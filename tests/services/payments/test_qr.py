"""QR images: PNG and SVG with segno, the docs' images made by this code."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityos.services.payments import qr
from cityos.services.payments.errors import PayloadError
from cityos.services.payments.schemes.examples import examples

DOCS = Path(__file__).resolve().parents[3] / "docs" / "services" / "payments-qr"


def test_png_and_svg(tmp_path: Path) -> None:
    payload = examples()["promptpay"]
    data = qr.png(payload, tmp_path / "pp.png")
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and (tmp_path / "pp.png").read_bytes() == data
    assert qr.png(payload) == data  # the same bytes every time
    image = qr.svg(payload)
    assert image.startswith("<svg") and image.rstrip().endswith("</svg>")
    assert 'xmlns="http://www.w3.org/2000/svg"' in image


def test_a_bad_payload_is_not_drawn() -> None:
    payload = examples()["vietqr"]
    broken = payload[:-4] + ("0000" if payload[-4:] != "0000" else "1111")
    with pytest.raises(PayloadError, match="tag 63"):
        qr.png(broken)
    with pytest.raises(PayloadError, match="tag 63"):
        qr.svg(broken)
    assert qr.svg(broken, check=False).startswith("<svg")


def test_a_khmer_name_is_drawn_as_utf8() -> None:
    from cityos.services.payments.schemes import khqr

    payload = khqr("a@b", "Shop", alt_language="km", alt_name="ហាង")
    assert qr.png(payload).startswith(b"\x89PNG")


def test_the_docs_images_are_this_code_s_output(tmp_path: Path) -> None:
    """docs/services/payments-qr/ holds exactly what write_examples writes; regenerate with
    ``.venv/bin/python -c "from cityos.services.payments import qr;
    qr.write_examples('docs/services/payments-qr')"``."""
    written = qr.write_examples(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{scheme}.{kind}" for scheme in examples() for kind in ("png", "svg")
    )
    for path in written:
        assert (DOCS / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("scheme", sorted(examples()) + ["khqr-khmer"])
def test_images_scan_back_to_the_payload(scheme: str) -> None:
    """OpenCV (a CityOS dependency) reads each PNG back to the exact payload, UTF-8 too."""
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
    import numpy as np

    from cityos.services.payments.schemes import khqr

    if scheme == "khqr-khmer":
        payload = khqr("a@b", "Shop", alt_language="km", alt_name="ហាង", alt_city="ភ្នំពេញ")
    else:
        payload = examples()[scheme]
    image = cv2.imdecode(np.frombuffer(qr.png(payload), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert cv2.QRCodeDetectorAruco().detectAndDecode(image)[0] == payload
