"""Retail barcodes a catalog may carry: EAN-13 and UPC-A, check digit verified (python-stdnum)."""

from __future__ import annotations

from stdnum import ean


def check_barcode(value: str) -> tuple[str | None, str | None]:
    """(normalised barcode, None) or (None, reason). UPC-A (12 digits) stays as written: it is the
    code a scanner reads on a US package; EAN-13 is checked the same way with its own length."""
    code = value.strip().replace(" ", "").replace("-", "")
    if not code.isdigit():
        return None, f"barcode {value!r} is not all digits"
    if len(code) not in (12, 13):
        return None, f"barcode {value!r} has {len(code)} digits (EAN-13 has 13, UPC-A 12)"
    kind = "EAN-13" if len(code) == 13 else "UPC-A"
    if not ean.is_valid(code):
        return None, (f"barcode {value!r} fails the {kind} check digit "
                      f"(expected {ean.calc_check_digit(code[:-1])}, got {code[-1]})")
    return code, None
