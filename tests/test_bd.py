"""Bjøntegaard deltas (rapidinr.study.bd): known values, and "not enough overlap" as an answer."""
import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from rapidinr.study.bd import NOT_ENOUGH, bd, pareto

# FAU-LMS/bjontegaard's example (libx265 presets): kbps and PSNR
RATE_A = [9487.76, 4593.60, 2486.44, 1358.24]
PSNR_A = [40.037, 38.615, 36.845, 34.851]
RATE_T = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR_T = [40.121, 38.651, 36.970, 34.987]


def test_exact_values_where_the_answer_is_known():
    # the same curve at 80% of the rate: BD-rate is exactly -20% whatever the interpolation
    assert bd(RATE_A, PSNR_A, [0.8 * r for r in RATE_A], PSNR_A)["bd_rate_percent"] == pytest.approx(-20.0, abs=1e-6)
    # the same curve 0.5 dB higher: BD-PSNR is exactly +0.5 dB
    assert bd(RATE_A, PSNR_A, RATE_A, [p + 0.5 for p in PSNR_A])["bd_psnr_db"] == pytest.approx(0.5, abs=1e-6)
    same = bd(RATE_A, PSNR_A, RATE_A, PSNR_A)
    assert same["bd_rate_percent"] == pytest.approx(0) and same["bd_psnr_db"] == pytest.approx(0)


def test_pchip_value_matches_the_ctc_definition_computed_independently():
    """JCT-VC/JVET CTC BD-rate: PCHIP of log rate over PSNR, mean difference over the PSNR overlap."""
    out = bd(RATE_A, PSNR_A, RATE_T, PSNR_T)
    fa = PchipInterpolator(PSNR_A[::-1], np.log(RATE_A[::-1]))
    ft = PchipInterpolator(PSNR_T[::-1], np.log(RATE_T[::-1]))
    lo, hi = max(min(PSNR_A), min(PSNR_T)), min(max(PSNR_A), max(PSNR_T))
    expected = (np.exp((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)) - 1) * 100
    assert out["bd_rate_percent"] == pytest.approx(expected, abs=1e-3)
    assert out["bd_rate_percent"] == pytest.approx(-4.4175, abs=1e-3)  # the test codec saves ~4.4%
    assert out["bd_psnr_db"] > 0


def test_no_overlap_is_an_answer_never_an_extrapolated_number():
    far = bd(RATE_A, PSNR_A, [r * 100 for r in RATE_A], [p + 20 for p in PSNR_A])
    assert far["bd_rate_percent"] is None and far["bd_psnr_db"] is None and far["note"].startswith(NOT_ENOUGH)
    one = bd(RATE_A, PSNR_A, [5000.0], [39.0])
    assert one["bd_rate_percent"] is None and "fewer than 2 points" in one["note"]
    unmet = bd([100, 200, None], [20, 25, None], [150, 250], [21, 26])  # an unmet cap point is skipped
    assert unmet["points"] == [2, 2] and unmet["bd_rate_percent"] is not None


def test_pareto_front_keeps_only_points_better_than_every_cheaper_one():
    rates, psnrs = pareto([100, 200, 300, 400], [20, 19, 25, 25])
    assert rates.tolist() == [100, 300] and psnrs.tolist() == [20, 25]
