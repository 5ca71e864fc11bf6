"""Image checks shared by the imports: fully decoded (a truncated file fails here, not in training),
and a perceptual hash for near-duplicate leaks between training sources and frozen test sets."""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageFile

NEAR_DUP_BITS = 6  # pHash (64 bits) distance at or below which two images are the same photo


class BadImage(ValueError):
    """The bytes are not an image PIL can decode completely."""


def inspect_image(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) after a full decode; BadImage with the reason otherwise."""
    if not data:
        raise BadImage("empty file")
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG must fail, not be padded with grey
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "?"
            im.load()
            w, h = im.size
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, DecompressionBomb...)
        raise BadImage(f"unreadable image ({type(e).__name__}: {e})") from None
    if w < 8 or h < 8:
        raise BadImage(f"image is {w}x{h} px (need at least 8x8)")
    return w, h, fmt


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def phash(data: bytes) -> int:
    """64-bit perceptual hash (imagehash's DCT pHash) as an int, robust to re-encoding and resizing."""
    import imagehash

    with Image.open(io.BytesIO(data)) as im:
        return int(str(imagehash.phash(im.convert("L"))), 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
