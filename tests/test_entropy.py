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
