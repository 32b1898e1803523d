"""Bjøntegaard deltas between two rate–distortion curves: BD-rate (% bytes at equal PSNR) and
BD-PSNR (dB at equal bytes), through the ``bjontegaard`` package (FAU-LMS) with PCHIP
interpolation, the JCT-VC/JVET common-test-conditions method.

Both deltas integrate only over the interval where the two curves overlap (PSNR for BD-rate,
log-rate for BD-PSNR); nothing is extrapolated. Where a curve has fewer than two points, or the
curves do not overlap, the answer is ``None`` with ``note = "not enough overlap"``, never a
number. Each curve is first reduced to its Pareto front (points sorted by bytes, each one
better in PSNR than every cheaper one), which PCHIP needs and which is the best the method or
codec achieves at each rate.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

NOT_ENOUGH = "not enough overlap"


def pareto(rates, psnrs) -> tuple[np.ndarray, np.ndarray]:
    """Points (rate, PSNR), dropping missing ones (None / non-finite) and any not better in PSNR
    than a cheaper point; returned sorted by rate."""
    pts = sorted((float(r), float(p)) for r, p in zip(rates, psnrs)
                 if r is not None and p is not None and math.isfinite(float(r)) and math.isfinite(float(p))
                 and float(r) > 0)
    keep: list[tuple[float, float]] = []
    for r, p in pts:
        if keep and r == keep[-1][0]:
            if p > keep[-1][1]:
                keep[-1] = (r, p)
            continue
        if not keep or p > keep[-1][1]:
            keep.append((r, p))
    # a point tying an earlier rate with a better PSNR can leave the front non-increasing: drop those
    out: list[tuple[float, float]] = []
    for r, p in keep:
        while out and out[-1][1] >= p:
            out.pop()
        out.append((r, p))
    return np.array([r for r, _ in out]), np.array([p for _, p in out])


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the joint range of ``a`` and ``b`` that both cover (0: none)."""
    total = max(a.max(), b.max()) - min(a.min(), b.min())
    both = min(a.max(), b.max()) - max(a.min(), b.min())
    return max(both, 0.0) / total if total > 0 else 0.0


def bd(anchor_rates, anchor_psnrs, test_rates, test_psnrs) -> dict:
    """BD-rate and BD-PSNR of a test curve against an anchor curve (rates in any unit: bytes, bpp).

    Returns {"bd_rate_percent": float | None (negative: the test needs fewer bytes),
    "bd_psnr_db": float | None (positive: the test is better), "overlap_psnr", "overlap_log_rate"
    (fractions of the joint ranges both curves cover), "points": [anchor, test], "note"}."""
    import bjontegaard  # heavy: it imports matplotlib.pyplot

    ra, pa = pareto(anchor_rates, anchor_psnrs)
    rt, pt = pareto(test_rates, test_psnrs)
    out = {"bd_rate_percent": None, "bd_psnr_db": None, "overlap_psnr": 0.0, "overlap_log_rate": 0.0,
           "points": [int(ra.size), int(rt.size)], "note": ""}
    if ra.size < 2 or rt.size < 2:
        out["note"] = f"{NOT_ENOUGH}: a curve has fewer than 2 points"
        return out
    out["overlap_psnr"] = round(float(_overlap(pa, pt)), 4)
    out["overlap_log_rate"] = round(float(_overlap(np.log(ra), np.log(rt))), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns below its own overlap threshold; we report overlap
        if out["overlap_psnr"] > 0:
            out["bd_rate_percent"] = round(float(bjontegaard.bd_rate(ra, pa, rt, pt, method="pchip",
                                                                     require_matching_points=False,
                                                                     min_overlap=0)), 4)
        if out["overlap_log_rate"] > 0:
            out["bd_psnr_db"] = round(float(bjontegaard.bd_psnr(ra, pa, rt, pt, method="pchip",
                                                                require_matching_points=False,
                                                                min_overlap=0)), 4)
    if out["bd_rate_percent"] is None or out["bd_psnr_db"] is None:
        which = [k for k in ("bd_rate_percent", "bd_psnr_db") if out[k] is None]
        out["note"] = f"{NOT_ENOUGH} for {' and '.join(which)}"
    return out
