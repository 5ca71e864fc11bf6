"""Reader: RapidOCR (PP-OCR ONNX models shipped inside the `rapidocr-onnxruntime` wheel) reads the
brand and name printed on the packaging; rapidfuzz matches the text to the catalog.
"""

from __future__ import annotations

from collections.abc import Sequence

from flywheel.label.prelabelers.base import FrameInput, Prelabeler, Product, Vote, abstain, vote_each

MIN_NAME_SCORE = 80.0  # rapidfuzz partial ratio (0..100) of the product name, below it no match
BRAND_WEIGHT = 0.25  # the brand helps rank but never decides (one brand has many products)
MIN_TEXT = 3  # letters in a line before it counts
LARGE_TEXT = 0.6  # lines at least this share of the tallest line's height: the held item's, not
#                   the smaller print of items lying further away in the basket
DET_SIDE = 480  # short side the text detector works at
UPSCALE_BELOW = 480  # smaller frames are upscaled 2x: PP-OCR reads ~32 px text lines best


class ReaderLabeler(Prelabeler):
    name = "reader"
    # OCR costs ~1 s a frame: it reads only frames nothing else decided (a barcode read, a load-cell
    # step only one catalog product fits, a sure teacher)
    skip_when = {"barcode": 0.9, "weight": 0.5, "teacher": 0.9}

    def __init__(self, products: Sequence[Product], engine=None) -> None:  # noqa: ANN001
        named = [p for p in products if p.text]
        self.skipped = len(products) - len(named)  # products without a name or brand: never matched
        self.choices = {p.ean: p.text.lower() for p in named}
        self.names = {p.ean: (p.name or "").lower() for p in named}
        self.brands = {p.ean: (p.brand or "").lower() for p in named}
        self._engine = engine
        import rapidocr_onnxruntime

        self.version = f"rapidocr-{getattr(rapidocr_onnxruntime, '__version__', '1')}"

    @property
    def engine(self):  # noqa: ANN201
        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            # detection at the frame's own scale (the default upsizes its short side to 736 px:
            # 4x the work on a 240 px frame, for text that is legible at 2x)
            self._engine = RapidOCR(det_limit_side_len=DET_SIDE, det_limit_type="min")
        return self._engine

    def read(self, rgb) -> list[tuple[str, float]]:  # noqa: ANN001
        """(text, score) of the large lines on the frame (the held item's print)."""
        import cv2

        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if max(bgr.shape[:2]) < UPSCALE_BELOW:
            bgr = cv2.resize(bgr, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        result, _ = self.engine(bgr, use_cls=False)  # packaging text is upright or turned by 90
        lines = []
        for box, text, score in result or []:
            ys = [p[1] for p in box]
            if sum(c.isalpha() for c in str(text)) >= MIN_TEXT:
                lines.append((max(ys) - min(ys), str(text), float(score)))
        top = max((h for h, _, _ in lines), default=0.0)
        return [(t, s) for h, t, s in lines if h >= LARGE_TEXT * top]

    def match(self, texts: Sequence[str]) -> tuple[str, float] | None:
        """(ean, score 0..100) of the product whose name is best read in `texts`, or None. The
        name decides (partial ratio, so a read cut at the frame edge still counts); the brand
        breaks ties between products of similar names."""
        from rapidfuzz import fuzz

        best = None
        lowered = [t.lower() for t in texts]
        if len(lowered) > 1:
            lowered.append(" ".join(lowered))  # a name printed over two lines
        for ean, name in self.names.items():
            if not name:
                continue
            # whole-name similarity; a partial match only for reads about as long as the name
            ns = max(max(fuzz.ratio(name, t), fuzz.partial_ratio(name, t) if len(t) >= 0.7 * len(name)
                          else 0.0) for t in lowered)
            if ns < MIN_NAME_SCORE:
                continue
            bs = max(fuzz.partial_ratio(self.brands[ean], t) for t in lowered) if self.brands[ean] else 0.0
            score = (1 - BRAND_WEIGHT) * ns + BRAND_WEIGHT * bs
            if best is None or score > best[1]:
                best = (ean, score)
        return best

    def label(self, frames: Sequence[FrameInput]) -> list[Vote]:
        return vote_each(frames, self._one, "ocr_error")

    def _one(self, f: FrameInput) -> Vote:
        reads = self.read(f.rgb)
        if not reads:
            return abstain("no_text")
        text = " ".join(t for t, _ in reads)
        hit = self.match([t for t, _ in reads])
        if hit is None:
            return abstain("no_catalog_match", repr(text[:60]))
        ean, score = hit
        ocr = sum(s for _, s in reads) / len(reads)
        return Vote(ean, round(score / 100.0 * ocr, 4),
                    f"read {text[:60]!r} ~ {self.choices[ean]!r} ({score:.0f})")
