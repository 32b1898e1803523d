"""Entropy coding of quantized codes (rapidinr.codec.entropy): bit-exact round trips, corrupt streams refused."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidinr.codec import entropy
from rapidinr.core.errors import UserError


@st.composite
def coded_groups(draw):
    """1-4 groups of integer codes, each within its own bit width (2..16), any distribution."""
    groups = []
    for _ in range(draw(st.integers(1, 4))):
        bits = draw(st.integers(2, 16))
        limit = 2 ** (bits - 1) - 1
        values = draw(st.lists(st.integers(-limit, limit), min_size=0, max_size=200))
        groups.append((np.array(values, dtype=np.int32), limit))
    return groups


@settings(max_examples=60, deadline=None)
@given(coded_groups())
def test_round_trip_is_bit_exact(groups):
    codes = [c for c, _ in groups]
    models = [entropy.fit_model(c, limit) for c, limit in groups]
    words = entropy.encode(codes, models)
    back = entropy.decode("set.rinr", words, models, [c.size for c in codes], entropy.digest(codes))
    assert all(np.array_equal(a, b) for a, b in zip(codes, back))


@st.composite
def scaled_groups(draw):
    """1-3 groups of codes of n images each, every image's codes on its own scale (factor 2**(-e/4))."""
    n = draw(st.integers(1, 5))
    exps = np.array(draw(st.lists(st.integers(-32, 32), min_size=n, max_size=n)))
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        bits, size = draw(st.integers(2, 16)), draw(st.integers(0, 30))
        limit = 2 ** (bits - 1) - 1
        values = draw(st.lists(st.integers(-limit, limit), min_size=n * size, max_size=n * size))
        groups.append((np.array(values, dtype=np.int32), limit, np.repeat(np.exp2(-exps / 4), size)))
    return groups


@settings(max_examples=60, deadline=None)
@given(scaled_groups())
def test_round_trip_with_per_image_factors_is_bit_exact(groups):
    codes = [c for c, _, _ in groups]
    factors = [f for _, _, f in groups]
    models = [entropy.fit_model(c, limit, f) for c, limit, f in groups]
    words = entropy.encode(codes, models, factors)
    back = entropy.decode("set.rinr", words, models, [c.size for c in codes], entropy.digest(codes), factors)
    assert all(np.array_equal(a, b) for a, b in zip(codes, back))


def test_per_image_factors_code_images_of_different_spread_in_fewer_bits():
    rng = np.random.default_rng(2)
    spread = np.repeat(np.exp2(np.arange(-8, 8) / 4), 500)  # 16 images, 500 codes each, 16x apart in scale
    codes = np.clip(np.round(rng.laplace(0, 6 * spread)), -127, 127).astype(np.int32)
    factors = spread
    one = entropy.fit_model(codes, 127)
    scaled = entropy.fit_model(codes, 127, factors)
    bits_one, bits_scaled = entropy.ideal_bits(codes, one), entropy.ideal_bits(codes, scaled, factors)
    assert bits_scaled < 0.95 * bits_one
    words = entropy.encode([codes], [scaled], [factors])
    assert abs(32 * words.size - bits_scaled) <= 16 * 8  # the stream is the model's length within a few words
    with pytest.raises(UserError, match="entropy-coded weights are corrupt"):  # other factors: not these codes
        entropy.decode("set.rinr", words, [scaled], [codes.size], entropy.digest([codes]), [factors[::-1].copy()])


def test_ideal_bits_predict_the_stream_and_beat_raw_bytes():
    rng = np.random.default_rng(0)
    codes = [np.clip(np.round(rng.normal(0, s, 4000)), -127, 127).astype(np.int32) for s in (3.0, 12.0)]
    models = [entropy.fit_model(c, 127) for c in codes]
    words = entropy.encode(codes, models)
    ideal = sum(entropy.ideal_bits(c, m) for c, m in zip(codes, models)) / 8
    assert abs(4 * words.size - ideal) <= 16  # the coder is within a few words of the model's length
    assert 4 * words.size < 0.7 * sum(c.size for c in codes)  # Gaussian codes: far below one byte each


@pytest.fixture()
def stream():
    rng = np.random.default_rng(1)
    codes = [np.clip(np.round(rng.laplace(0, 5, 500)), -127, 127).astype(np.int32),
             rng.integers(-7, 8, 60).astype(np.int32)]
    models = [entropy.fit_model(codes[0], 127), entropy.fit_model(codes[1], 7)]
    return codes, models, entropy.encode(codes, models)


@pytest.mark.parametrize("damage", ["truncate", "extend", "flip", "empty"])
def test_corrupt_or_truncated_stream_is_refused(stream, damage):
    codes, models, words = stream
    bad = {"truncate": words[:-2], "extend": np.concatenate([words, words[:3]]),
           "flip": words ^ np.uint32(1 << 7), "empty": words[:0]}[damage]
    with pytest.raises(UserError, match="set.rinr: entropy-coded weights are corrupt"):
        entropy.decode("set.rinr", bad, models, [c.size for c in codes], entropy.digest(codes))


@pytest.mark.parametrize("entry", [["cauchy", 0, 1, 7], ["gaussian", 0, -1, 7], ["laplace", 0, 1, 0],
                                   ["gaussian", float("nan"), 1, 7], ["gaussian", 0, 1], "x"])
def test_malformed_model_entries_are_refused(entry):
    with pytest.raises(UserError, match="set.rinr: entropy model entry"):
        entropy.GroupModel.from_json("set.rinr", entry)
