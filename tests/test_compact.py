"""The compact store (rapidinr.codec.compact), its encode pipeline and `encode --preset compact`."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidinr.cli import main
from rapidinr.codec import fileformat
from rapidinr.codec.compact import MAX_EXP, CompactStore
from rapidinr.codec.inrset import INRSet, load
from rapidinr.codec.store import DenseStore
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.allocation import allocate_bits, image_step_exponents
from rapidinr.encoding.compress import PRESETS, CompactConfig, compact_store
from rapidinr.encoding.learned_init import load_init, shipped_inits

ARCH = Arch.parse("2x8", 3)


def weights(n=6, seed=0):
    return siren.init_params(ARCH, list(range(seed, seed + n))) * 1.5  # (n, P): something like fitted weights


def test_file_round_trip_is_exact_and_device_codes_stay_integers(tmp_path):
    store = CompactStore.from_params(weights(), ARCH, [10, 12, 6, 9, 4, 8])
    before = store.dense()
    INRSet(store, ARCH, 5, 4).save(tmp_path / "c.rinr")
    back = load(tmp_path / "c.rinr")
    assert back.store.encoding == "compact-v1"
    assert torch.equal(back.store.codes, store.codes)
    assert torch.equal(back.dense_params(), before)
    assert back.store.narrow.dtype == torch.int8 and back.store.wide.dtype == torch.int16
    assert torch.equal(back.store.gather(torch.tensor([4, 1])), before[[4, 1]])


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_per_image_steps_round_trip_bit_exactly(tmp_path_factory, data):
    n = data.draw(st.integers(1, 5))
    exps = torch.tensor(data.draw(st.lists(st.integers(-MAX_EXP, MAX_EXP), min_size=n, max_size=n)), dtype=torch.int8)
    bits = data.draw(st.lists(st.integers(2, 16), min_size=6, max_size=6))
    init = siren.init_params(ARCH, [50])[0] if data.draw(st.booleans()) else None
    store = CompactStore.from_params(weights(n, seed=data.draw(st.integers(0, 99))), ARCH, bits, init=init,
                                     image_exps=exps)
    path = tmp_path_factory.mktemp("steps") / "s.rinr"
    INRSet(store, ARCH, 5, 4).save(path)
    back = load(path).store
    assert torch.equal(back.image_exps, exps) and torch.equal(back.codes, store.codes)
    assert torch.equal(back.dense(), store.dense())
    assert torch.equal(back.gather(torch.tensor([n - 1, 0])), store.dense()[[n - 1, 0]])


def test_per_image_steps_quantize_each_image_on_its_own_grid():
    params = weights()
    exps = torch.tensor([0, -4, -8, 0, 4, -1], dtype=torch.int8)
    store = CompactStore.from_params(params, ARCH, 8, image_exps=exps)
    step = store.step * torch.exp2(exps.float() / 4)[:, None]  # (N, P): every image's own step
    assert bool(((store.dense() - params).abs() <= step / 2 + 1e-6).all())
    assert int(store.codes.abs().max()) <= 127  # no clipping: the group steps make room for the finest grid
    error = (store.dense() - params).abs().amax(dim=1)  # (N,)
    assert error[2] < error[0] < error[4]  # a finer step, a smaller error


def test_image_steps_cost_one_float_per_image_on_the_device_and_nothing_without_them():
    params = weights()
    plain = CompactStore.from_params(params, ARCH, 8)
    stepped = CompactStore.from_params(params, ARCH, 8, image_exps=torch.zeros(6, dtype=torch.int8))
    assert plain.image_step is None and stepped.nbytes == plain.nbytes + 4 * 6
    assert torch.equal(stepped.dense(), plain.dense())  # all exponents zero: the one set-wide step


def test_image_step_exponents_follow_each_images_own_peak_in_the_int8_layers():
    arch = Arch.parse("3x8", 3)
    init = siren.init_params(arch, [9])[0]  # (P,)
    delta = 0.01 * torch.randn(4, arch.n_params, generator=torch.Generator().manual_seed(3))  # (4, P)
    delta[1] *= 0.5
    delta[2] *= 0.2
    delta[3] = 0  # an image equal to the init
    exps = image_step_exponents(init + delta, arch, init)
    assert exps.dtype == torch.int8 and exps.tolist()[3] == -MAX_EXP
    assert exps[0] >= exps[1] >= exps[2] and exps[2] <= -8 and int(exps.max()) <= 0
    store = CompactStore.from_params(init + delta, arch, [16, 16, 8, 16, 8, 16, 16, 16], init=init, image_exps=exps)
    assert int(store.narrow.abs().max()) <= 127  # the hidden matrices' codes still fit int8


def test_compact_store_with_image_steps_fine_tunes_chunk_by_chunk_like_the_whole_set():
    """The straight-through fine-tuning quantizes each chunk with its own rows' steps."""
    images = (torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    cfg = CompactConfig(bits=6, finetune_steps=3, image_steps=True)
    params = weights(5)
    whole, chunked = (compact_store(images, params, ARCH, cfg, FitConfig(steps=3, chunk_size=size), "cpu",
                                    progress=False) for size in (5, 2))
    assert whole.image_exps is not None and torch.equal(whole.image_exps, chunked.image_exps)
    assert torch.allclose(whole.dense(), chunked.dense(), atol=1e-6)


def test_quantization_error_is_within_half_a_step():
    params = weights()
    store = CompactStore.from_params(params, ARCH, 8)
    error = (store.dense() - params).abs()
    assert bool((error <= store.step / 2 + 1e-6).all())


def test_init_relative_decode_equals_the_dense_decode(tmp_path):
    init = siren.init_params(ARCH, [99])[0]  # (P,)
    params = init + 0.01 * torch.randn(6, ARCH.n_params, generator=torch.Generator().manual_seed(0))
    relative = CompactStore.from_params(params, ARCH, 6, init=init, store_init=True)
    INRSet(relative, ARCH, 5, 4).save(tmp_path / "r.rinr")
    loaded = load(tmp_path / "r.rinr")
    dense = INRSet(DenseStore(relative.dense()), ARCH, 5, 4)
    assert torch.equal(loaded.decode(), dense.decode())
    absolute = CompactStore.from_params(params, ARCH, 6)  # the same bits on w itself: a coarser grid
    assert (relative.dense() - params).abs().max() < (absolute.dense() - params).abs().max()


# Every shipped init's weights, by file: a compact .rinr pins its init by this hash, so a shipped
# init must never change or go (a file pinned to it could no longer be decoded). Add, never edit.
SHIPPED_INIT_SHA256 = {
    "init-cifar10-3x10-32x32.safetensors": "9249afed68fc12ed6e439ccdd0042b0ff34a613f29c92bea527a386d4d25d02e",
    "init-cifar10-3x15-32x32.safetensors": "f7f0eaadfe0b62e5b6ca83d954122b7550868b1461b21a93b77d50a611a13767",
    "init-cifar10-3x20-32x32.safetensors": "6acba43eb3807ddab5e8cdae8809614d8ba99999bcd1f90b0fbefbed0113a36e",
    "init-cifar10-3x25-32x32.safetensors": "a3b397ab2ff1c36e2a11ab14175514a8ce56e05e9e76e2c07465a2b749053607",
    "init-default-3x15-28x28.safetensors": "d52c47aa2f0eeaadba0cfe99804b844eb89913f5fd55613a1494a3ae6e49baf5",
    "init-default-3x15-32x32.safetensors": "bb445fcefc9834353c68a73f943706d516c138350f903332c6bcbd66c5c9f85d",
    "init-kodak-3x10-32x32.safetensors": "e7bed2b5788be322a8a22efa24d24918cc0d729456ddf23213ad300401a1778e",
    "init-kodak-3x15-32x32.safetensors": "b8247417201248f777386cb66bfeb15a19c04e7eabe4542c5656249c9840c377",
    "init-kodak-3x20-32x32.safetensors": "d8474425e01031451309145bf367f55f305c1ad45957c050262f81d60652f7b6",
    "init-kodak-3x25-32x32.safetensors": "27f35d3aea1b45fe19325a1fd35fe7e89f0dbe215edceea9a91d30fda3342c2c",
}


def test_shipped_inits_never_change_or_go():
    shipped = {p.name: load_init(p).sha256 for p in shipped_inits()}
    assert {name: shipped.get(name) for name in SHIPPED_INIT_SHA256} == SHIPPED_INIT_SHA256


@pytest.mark.parametrize("name", [n for n in SHIPPED_INIT_SHA256 if "-default-" not in n])
def test_init_pinned_by_hash_to_a_shipped_init(tmp_path, name):
    learned = next(load_init(p) for p in shipped_inits() if p.name == name)
    arch = learned.arch
    params = learned.params + 0.02 * torch.randn(4, arch.n_params, generator=torch.Generator().manual_seed(1))
    store = CompactStore.from_params(params, arch, 8, init=learned.params, store_init=False)
    INRSet(store, arch, 4, 4).save(tmp_path / "p.rinr")
    assert "init" not in fileformat.read(tmp_path / "p.rinr")[1]  # pinned, not carried
    assert torch.equal(load(tmp_path / "p.rinr").dense_params(), store.dense())


def test_unknown_init_hash_without_a_stored_init_is_refused(tmp_path):
    init = siren.init_params(ARCH, [7])[0]
    store = CompactStore.from_params(weights(), ARCH, 8, init=init, store_init=False)
    INRSet(store, ARCH, 5, 4).save(tmp_path / "u.rinr")
    with pytest.raises(UserError, match=r"u.rinr: weights are stored relative to init .* no learned init"):
        load(tmp_path / "u.rinr")


def _rewrite(path, change):
    """Apply ``change(header, tensors)`` and write the file again with a valid checksum."""
    header, tensors, _ = fileformat.read(path)
    change(header, tensors)
    fileformat.write(path, {k: v for k, v in header.items()
                            if k not in ("format", "format_version", "payload_sha256", "file_sha256")},
                     tensors)


@pytest.mark.parametrize("damage, needle", [
    (lambda h, t: t.__setitem__("stream", t["stream"][:-1].clone()), "entropy-coded weights are corrupt"),
    (lambda h, t: t.__setitem__("stream", t["stream"] ^ 4), "entropy-coded weights are corrupt"),
    (lambda h, t: h["compact"].__setitem__("bits", [1] * 6), "bits must be integers in 2..16"),
    (lambda h, t: h["compact"].__setitem__("steps", [0.0] * 6), "step sizes must be positive"),
    (lambda h, t: t.pop("stream"), "entropy-coded weights missing"),
    (lambda h, t: t.__setitem__("init", t["init"] * 2), "stored init does not match its sha256"),
])
def test_corrupt_compact_files_are_refused_with_one_line(tmp_path, damage, needle):
    init = siren.init_params(ARCH, [3])[0]
    INRSet(CompactStore.from_params(weights(), ARCH, 8, init=init), ARCH, 5, 4).save(tmp_path / "c.rinr")
    _rewrite(tmp_path / "c.rinr", damage)
    with pytest.raises(UserError, match=needle) as err:
        load(tmp_path / "c.rinr")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("damage, needle", [
    (lambda h, t: t.pop("image_exps"), "image step exponents missing or malformed"),
    (lambda h, t: t.__setitem__("image_exps", t["image_exps"].to(torch.int16)), "image step exponents missing"),
    (lambda h, t: t.__setitem__("image_exps", t["image_exps"][:-1].clone()), "image step exponents missing"),
    (lambda h, t: t.__setitem__("image_exps", torch.full((6,), MAX_EXP + 1, dtype=torch.int8)), "within"),
    (lambda h, t: t.__setitem__("image_exps", t["image_exps"] + 1), "entropy-coded weights are corrupt"),
    (lambda h, t: h["compact"].__setitem__("image_steps_per_octave", 8), "image_steps_per_octave' must be 4"),
    (lambda h, t: h["compact"].pop("image_steps_per_octave"), "tensor 'image_exps' without header field"),
])
def test_corrupt_image_steps_are_refused_with_one_line(tmp_path, damage, needle):
    exps = torch.tensor([0, -2, -5, 1, 0, -3], dtype=torch.int8)
    INRSet(CompactStore.from_params(weights(), ARCH, 8, image_exps=exps), ARCH, 5, 4).save(tmp_path / "s.rinr")
    _rewrite(tmp_path / "s.rinr", damage)
    with pytest.raises(UserError, match=needle) as err:
        load(tmp_path / "s.rinr")
    assert "s.rinr" in str(err.value) and "\n" not in str(err.value)


def test_truncated_compact_file_is_refused(tmp_path):
    INRSet(CompactStore.from_params(weights(), ARCH, 8), ARCH, 5, 4).save(tmp_path / "t.rinr")
    data = (tmp_path / "t.rinr").read_bytes()
    (tmp_path / "t.rinr").write_bytes(data[:-6])
    with pytest.raises(UserError, match="t.rinr"):
        load(tmp_path / "t.rinr")


@pytest.mark.parametrize("bits", [1, 17, [8] * 5])
def test_bits_outside_2_to_16_are_refused(bits):
    with pytest.raises(UserError, match="--compact-bits"):
        CompactStore.from_params(weights(), ARCH, bits)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


FAST = ["--steps", "30", "--quiet", "--arch", "2x8", "--size", "8x8", "--limit", "4"]


def test_preset_compact_is_recorded_and_reproduced(tmp_path, capsys):
    first, second = tmp_path / "a.rinr", tmp_path / "b.rinr"
    for out in (first, second):
        code, _, err = run(["encode", "samples", "-o", out, *FAST, "--preset", "compact"], capsys)
        assert code == 0, err
    code, text, _ = run(["info", first, "--json"], capsys)
    info = json.loads(text)
    assert info["preset"] == "compact" and info["param_encoding"] == "compact-v1"
    a, b = load(first), load(second)
    assert a.meta["compression"]["compact"] == PRESETS["compact"].to_json()
    assert a.store.bits == b.store.bits and torch.equal(a.dense_params(), b.dense_params())
    assert a.store.image_exps is not None and torch.equal(a.store.image_exps, b.store.image_exps)


@pytest.mark.parametrize("options, needle", [
    (["--preset", "smallest"], "--preset: expected one of compact"),
    (["--preset", "compact", "--compact-bits", "1"], "--compact-bits: bits must be integers in 2..16"),
    (["--preset", "compact", "--compact-bits", "17"], "--compact-bits: bits must be integers in 2..16"),
    (["--preset", "compact", "--init-relative"], "--init-relative: needs a learned init"),
    (["--compact-bits", "6"], "need --preset compact"),
    (["--preset", "compact", "--quant-bits", "8"], "compact store quantizes and entropy-codes on its own"),
])
def test_bad_compact_options_fail_with_one_line_and_no_output(tmp_path, capsys, options, needle):
    out = tmp_path / "x.rinr"
    code, _, err = run(["encode", "samples", "-o", out, *FAST, *options], capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_preset_starts_from_the_shipped_rgb_init_and_pins_it_by_hash(tmp_path, capsys):
    out = tmp_path / "l.rinr"
    code, _, err = run(["encode", "samples-crops", "-o", out, "--limit", "4", "--steps", "20", "--quiet",
                        "--arch", "3x15", "--preset", "compact"], capsys)
    assert code == 0, err
    inrs = load(out)
    assert inrs.meta["init"]["kind"] == "learned" and inrs.store.relative
    header = fileformat.read(out)[0]
    assert header["compact"]["init"] == {"sha256": inrs.meta["init"]["sha256"], "stored": False}
    code, _, err = run(["encode", "samples-crops", "-o", tmp_path / "r.rinr", "--limit", "4", "--steps", "20",
                        "--quiet", "--arch", "3x15", "--preset", "compact", "--init", "random"], capsys)
    assert code == 0, err
    assert not load(tmp_path / "r.rinr").store.relative


def test_rd_allocation_spends_bits_where_they_pay_and_keeps_hidden_weights_int8():
    arch = Arch.parse("3x8", 3)
    params = siren.init_params(arch, list(range(6))) * 1.5  # (6, P)
    images = (torch.rand(6, 3, 6, 6, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    cheap, rich = (allocate_bits(images, params, arch, None, lam) for lam in (0.05, 5.0))
    assert all(a <= b for a, b in zip(cheap, rich)) and sum(cheap) < sum(rich)
    assert [rich[g] for g in (2, 4)] == [min(rich[2], 8), min(rich[4], 8)]  # hidden weight matrices: at most 8
    store = CompactStore.from_params(params, arch, rich)
    assert store.narrow.shape[1] >= 2 * 8 * 8  # both hidden matrices on the device as int8


def test_the_allocations_set_psnr_in_micro_batches_equals_one_whole_set_decode():
    """set_psnr decodes a cache-sized slice at a time (a whole-set pass page-faulted gigabytes per
    call at 10k images); the mean PSNR must be the whole-set one."""
    from rapidinr.core import siren
    from rapidinr.encoding import allocation
    from rapidinr.encoding.fit import images_to_targets, psnr_from_mse

    g = torch.Generator().manual_seed(0)
    arch = Arch.parse("3x15", 3)
    params = torch.randn(300, arch.n_params, generator=g) * 0.1  # (N, P)
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=g)
    assert siren.micro_batch_for(arch, 32 * 32, 300, "cpu") < 300 or torch.get_num_threads() > 1
    with torch.no_grad():
        out = siren.forward(params, arch, siren.coordinate_grid(32, 32))  # (N, HW, C)
    whole = float(psnr_from_mse((out - images_to_targets(images)).square().mean(dim=(1, 2))).mean())
    assert allocation.set_psnr(params, arch, images) == pytest.approx(whole, abs=1e-5)


def test_the_bit_search_measures_a_sample_of_a_large_set_with_the_whole_sets_steps(monkeypatch):
    """Past ALLOCATION_SAMPLE images the search decodes an evenly spaced sample (its cost stops
    growing with the set); the steps stay the whole set's, as the store will use them."""
    from rapidinr.codec import compact
    from rapidinr.encoding import allocation

    arch = Arch.parse("2x6", 1)
    params = siren.init_params(arch, list(range(40)))  # (40, P)
    params[37] *= 3  # the set's largest weights sit in an image the sample does not hold
    images = (torch.rand(40, 1, 5, 5, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    rows = allocation.sample_rows(40, 8)
    assert rows.tolist() == [0, 6, 11, 17, 22, 28, 33, 39] and allocation.sample_rows(40, 40) is None
    seen, steps_used = [], []
    real_psnr, real_quant = allocation.set_psnr, allocation.fake_quantize
    monkeypatch.setattr(allocation, "set_psnr", lambda p, a, im: seen.append(len(im)) or real_psnr(p, a, im))
    monkeypatch.setattr(allocation, "fake_quantize",
                        lambda p, a, b, s, *r: steps_used.append((list(b), s)) or real_quant(p, a, b, s, *r))
    bits = allocation.allocate_bits(images, params, arch, None, 0.5, sample=8)
    assert set(seen) == {8}
    for b, s in steps_used:
        assert s == compact.default_steps(params, arch, b)  # from all 40 images, image 37 included
    assert len(bits) == len(compact.groups(arch))
    # no larger than the sample: the search is the whole-set one
    assert allocation.allocate_bits(images, params, arch, None, 0.5, sample=40) == \
        allocation.allocate_bits(images, params, arch, None, 0.5, sample=1000)
