"""Pruning, quantization, the packed store and the three-round pipeline (tiny, CPU)."""
import os

import pytest
import torch

from rapidinr.codec.inrset import INRSet, load
from rapidinr.codec.measure import measure_weights
from rapidinr.codec.prune import (
    PRESETS,
    PruneConfig,
    Schedule,
    l1_mask,
    pack_mask,
    parse_schedule,
    unpack_mask,
    weight_positions,
    weight_sparsity,
)
from rapidinr.codec.quantize import Layout, QuantConfig, dequantize, fake_quantize, quantize
from rapidinr.codec.store import DenseStore, PackedStore
from rapidinr.core import siren
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.errors import UserError
from rapidinr.encoding.compress import CompressConfig, compress, finetune_quantized

ARCH = Arch.parse("3x15", 3)


def random_images(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 200
    ramp = torch.linspace(0, 50, size).view(1, 1, 1, size)
    return (base + ramp + torch.rand(n, 3, size, size, generator=g) * 5).clamp(0, 255).to(torch.uint8)


# -- schedules ------------------------------------------------------------------------------------
def test_presets_follow_the_paper_equations():
    cifar = PRESETS["cifar10"]
    psnr = torch.tensor([20.0, 30.0, 32.0, 35.0, 50.0])
    expected = torch.tensor([0.0, 0.0, 0.05 * 32 - 1.5, 0.25, 0.25])
    assert torch.allclose(cifar.ratio(psnr), expected, atol=1e-6)
    for name in ("flowers102", "mini-imagenet"):
        got = PRESETS[name].ratio(torch.tensor([30.0, 37.5, 41.0]))
        assert torch.allclose(got, torch.tensor([0.2, 0.04 * 37.5 - 1.2, 0.4]), atol=1e-6)


def test_user_schedule_and_bad_schedules():
    s = parse_schedule("20:0.1,30:0.3,40:0.5")
    assert torch.allclose(s.ratio(torch.tensor([10.0, 25.0, 35.0, 99.0])), torch.tensor([0.1, 0.2, 0.4, 0.5]))
    for bad in ["30:0,30:0.2", "35:0,30:0.2", "30:1.0", "30:-0.1", "abc", "30", "30:0.1:2", "nan:0.1"]:
        with pytest.raises(UserError):
            parse_schedule(bad)
    with pytest.raises(UserError):
        PruneConfig(l1_ratio=1.0)
    with pytest.raises(UserError):
        Schedule(())


# -- masks ----------------------------------------------------------------------------------------
def test_l1_mask_prunes_the_smallest_weights_exactly():
    params = siren.init_params(ARCH, range(4))
    ratios = torch.tensor([0.0, 0.1, 0.25, 0.5])
    mask = l1_mask(params, ARCH, ratios)
    weights = torch.cat(weight_positions(ARCH))
    n_weights = weights.numel()
    assert ((mask == 0).sum(dim=1) == (ratios.double() * n_weights).round().long()).all()
    biases = torch.ones(ARCH.n_params, dtype=torch.bool)
    biases[weights] = False
    assert (mask[:, biases] == 1).all()  # biases are never pruned
    for i in range(4):  # every pruned weight is no larger than every kept weight
        w, m = params[i, weights].abs(), mask[i, weights]
        if (m == 0).any():
            assert w[m == 0].max() <= w[m == 1].min()
    # a later, larger ratio keeps the earlier zeros
    more = l1_mask(params * mask, ARCH, 0.3, mask=mask)
    assert (more[mask == 0] == 0).all()
    assert torch.allclose(weight_sparsity(more, ARCH), torch.tensor([0.3, 0.3, 0.3, 0.5]), atol=2e-3)


def test_layer_scope_matches_torch_l1_unstructured():
    prune_utils = pytest.importorskip("torch.nn.utils.prune")
    params = siren.init_params(ARCH, [7])
    mask = l1_mask(params, ARCH, 0.2, scope="layer")
    for (w, _), (mw, _) in zip(siren.layer_views(params, ARCH), siren.layer_views(mask, ARCH)):
        linear = torch.nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            linear.weight.copy_(w[0].t())
        prune_utils.l1_unstructured(linear, "weight", amount=0.2)
        assert torch.equal(linear.weight_mask.t(), mw[0])


@pytest.mark.parametrize("zeros", [0, 1, 3, 80, 200, 525])
def test_mask_coding_round_trips_and_is_never_larger_than_a_bitmask(zeros):
    g = torch.Generator().manual_seed(zeros)
    nonzero = torch.ones(5, 525, dtype=torch.bool)
    for row in range(5):
        nonzero[row, torch.randperm(525, generator=g)[:zeros]] = False
    nonzero[0, 0] = nonzero[4, 524] = zeros == 0  # zeros at the very first and last positions
    coding, tensors = pack_mask(nonzero)
    assert (coding == "none") == (zeros == 0)
    assert sum(t.numel() * t.element_size() for t in tensors.values()) <= 5 * 66
    assert torch.equal(unpack_mask(coding, tensors, 5, 525), nonzero)
    with pytest.raises(UserError):
        unpack_mask("bitmask", {}, 5, 525)


def test_rice_coding_is_chosen_at_pruning_sparsity_and_beats_the_bitmask():
    g = torch.Generator().manual_seed(1)
    nonzero = torch.rand(64, 525, generator=g) > 0.15
    coding, tensors = pack_mask(nonzero)
    assert coding.startswith("rice")
    assert sum(t.numel() for t in tensors.values()) < 0.7 * 64 * 66
    assert torch.equal(unpack_mask(coding, tensors, 64, 525), nonzero)
    broken = dict(tensors, mask_remainders=tensors["mask_remainders"][:-1])
    with pytest.raises(UserError):
        unpack_mask(coding, broken, 64, 525)


# -- quantization ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bits,layers", [(8, "hidden"), (8, "all"), (16, "hidden")])
def test_quantization_error_bound_zero_and_untouched_layers(bits, layers):
    params = siren.init_params(ARCH, range(3))
    params[:, 100] = 0.0  # a "pruned" hidden weight
    layout = Layout(ARCH, layers, bits)
    codes, wide, scales, full = quantize(params, layout)
    assert wide.numel() == 0
    assert codes.dtype == (torch.int8 if bits == 8 else torch.int16)
    assert scales.shape == (3, layout.groups) and layout.groups == (4 if layers == "hidden" else 8)
    back = dequantize(codes, wide, scales, full, layout)
    err = (back - params).abs()[:, layout.quantized]
    assert (err <= scales[:, layout.group] / 2 + 1e-7).all()
    assert back[:, 100].eq(0).all()
    assert torch.equal(back[:, layout.full], params[:, layout.full])  # float layers exactly kept
    kinds = siren.layer_kinds(ARCH)
    if layers == "hidden":
        assert set(kinds[layout.full].tolist()) == {0, 2} and set(kinds[layout.quantized].tolist()) == {1}
    with pytest.raises(UserError):
        QuantConfig(bits=4)
    with pytest.raises(UserError):
        QuantConfig(bits=16, bias_bits=8)
    with pytest.raises(UserError):
        QuantConfig(layers="first")


def test_sixteen_bit_biases_shrink_the_bias_error():
    params = siren.init_params(ARCH, range(3))
    plain, fine = Layout(ARCH, "hidden", 8), Layout(ARCH, "hidden", 8, 16)
    assert fine.wide.numel() == 30 and fine.quantized.numel() == 450 and fine.groups == plain.groups == 4
    err_plain = (fake_quantize(params, plain) - params).abs()[:, fine.wide]
    err_fine = (fake_quantize(params, fine) - params).abs()[:, fine.wide]
    assert err_fine.max() < err_plain.max() / 100
    as_float = Layout(ARCH, "hidden", 8, 32)
    assert torch.equal(fake_quantize(params, as_float)[:, fine.wide], params[:, fine.wide])


# -- the packed store and its file ------------------------------------------------------------------
@pytest.mark.parametrize("bits,layers,lossless,bias_bits", [(32, "hidden", None, None), (8, "hidden", None, None),
                                                           (8, "all", "zstd", None), (16, "hidden", "zstd", None),
                                                           (8, "hidden", None, 16), (8, "all", "zstd", 32)])
def test_packed_store_file_round_trip_decodes_like_dense(tmp_path, bits, layers, lossless, bias_bits):
    params = siren.init_params(ARCH, range(6))
    params = params * l1_mask(params, ARCH, torch.tensor([0.0, 0.05, 0.1, 0.2, 0.3, 0.6]))
    store = PackedStore.from_params(params, ARCH, bits, layers, lossless, bias_bits)
    if bias_bits == 16:
        assert store.wide.dtype == torch.int16 and store.wide.shape == (6, 30)
    if bits == 8:
        assert store.codes.dtype == torch.int8  # 8-bit codes stay 8-bit in memory
    s = INRSet(store, ARCH, 8, 8, psnr=torch.zeros(6))
    path = tmp_path / "x.rinr"
    size = s.save(path)
    assert size == os.path.getsize(path)
    back = load(path)
    assert isinstance(back.store, PackedStore) and back.store.codes.dtype == store.codes.dtype
    dense = INRSet(DenseStore(store.dense()), ARCH, 8, 8)
    assert torch.equal(back.dense_params(), store.dense())
    assert torch.equal(back.decode(), dense.decode())
    info = back.info()
    assert info["file_bytes"] == os.path.getsize(path)
    assert info["quant_bits"] == bits and info["quant_layers"] == ("none" if bits == 32 else layers)
    assert info["sparsity"] == pytest.approx(float((store.dense() == 0).float().mean()), abs=1e-5)
    assert info["device_bytes"] < DenseStore(params).nbytes + 8 * 3 * ARCH.n_params
    dense_size = INRSet(params, ARCH, 8, 8, psnr=torch.zeros(6)).save(tmp_path / "d.rinr")
    assert size < dense_size  # pruned weights cost only their mask


def test_packed_store_rejects_corrupt_payload(tmp_path):
    from rapidinr.codec import fileformat

    params = siren.init_params(ARCH, range(2))
    s = INRSet(PackedStore.from_params(params * l1_mask(params, ARCH, 0.3), ARCH, 8), ARCH, 8, 8,
               psnr=torch.zeros(2))
    header, tensors = s.header(), s.tensors()
    tensors["codes"] = tensors["codes"][:-1]
    fileformat.write(tmp_path / "bad.rinr", header, tensors)
    with pytest.raises(UserError, match="malformed"):
        load(tmp_path / "bad.rinr")


# -- the pipeline ---------------------------------------------------------------------------------
def test_three_rounds_keep_pruned_weights_zero_and_quantize():
    images = random_images()
    fit_cfg = FitConfig(steps=60, lr=1e-3)
    schedule = Schedule(((5.0, 0.3), (80.0, 0.5)))
    cfg = CompressConfig(PruneConfig(l1_ratio=0.2, schedule=schedule, retrain_steps=20, retrain_lr=2e-4),
                         QuantConfig(8, "hidden"))
    inrs = compress(images, ARCH, fit_cfg, cfg, progress=False)
    rounds = [r["round"] for r in inrs.meta["compression"]["rounds"]]
    assert rounds == ["fit", "l1-prune", "dynamic-prune", "quantize-8-hidden"]
    sparsity = weight_sparsity(inrs.dense_params(), ARCH)
    assert (sparsity >= 0.3 - 2e-3).all()  # the schedule's floor, after retraining
    assert inrs.store.codes.dtype == torch.int8
    assert torch.allclose(inrs.psnr, measure_weights(inrs.dense_params(), ARCH, images, "cpu"))


def test_l1_round_is_skipped_for_small_images_when_asked():
    images = random_images(n=2)
    cfg = CompressConfig(PruneConfig(l1_ratio=0.2, l1_min_side=32, retrain_steps=5))
    inrs = compress(images, ARCH, FitConfig(steps=10), cfg, progress=False)
    assert [r["round"] for r in inrs.meta["compression"]["rounds"]] == ["fit"]


def test_quantization_aware_finetuning_never_hurts():
    images = random_images(n=3)
    params = compress(images, ARCH, FitConfig(steps=80), CompressConfig(), progress=False).dense_params()
    quant = QuantConfig(8, "all", finetune_steps=15, finetune_lr=1e-4)
    layout = quant.layout(ARCH)
    before = measure_weights(fake_quantize(params, layout), ARCH, images, "cpu")
    tuned = finetune_quantized(images, params, ARCH, quant, FitConfig(steps=80), "cpu", progress=False)
    after = measure_weights(fake_quantize(tuned, layout), ARCH, images, "cpu")
    assert (after >= before - 0.05).all()  # best-kept on the float loss, measured on 8-bit PSNR
    assert (tuned[params == 0] == 0).all()  # pruned weights stay pruned


def test_public_encode_takes_a_compression_config():
    from rapidinr import encode

    images = random_images(n=3)
    inrs = encode(images, arch="2x8", steps=20, progress=False,
                  compression=CompressConfig(quant=QuantConfig(16, "all"), lossless="zstd"))
    assert isinstance(inrs.store, PackedStore) and inrs.store.codes.dtype == torch.int16
    assert inrs.info()["quant_bits"] == 16 and inrs.info()["quant_layers"] == "all"
    plain = encode(images, arch="2x8", steps=20, progress=False)
    assert isinstance(plain.store, DenseStore)


@pytest.mark.gpu
def test_packed_store_on_the_gpu_decodes_like_the_cpu():
    params = siren.init_params(ARCH, range(4))
    params = params * l1_mask(params, ARCH, 0.2)
    cpu = INRSet(PackedStore.from_params(params, ARCH, 8, "hidden"), ARCH, 16, 16)
    gpu = cpu.to("cuda")
    assert gpu.store.codes.dtype == torch.int8 and gpu.store.codes.is_cuda
    assert torch.equal(gpu.dense_params().cpu(), cpu.dense_params())
    assert torch.allclose(gpu.decode().cpu(), cpu.decode(), atol=1e-4)
    inrs = compress(random_images(n=4), ARCH, FitConfig(steps=20),
                    CompressConfig(PruneConfig(l1_ratio=0.2, retrain_steps=10), QuantConfig(8)), device="cuda",
                    progress=False)
    assert inrs.device.type == "cuda" and (weight_sparsity(inrs.dense_params(), ARCH) >= 0.199).all()


def test_rounds_merged_per_shard_then_weighted_equal_the_rounds_of_all_chunks():
    """A sharded encode's merge weights each shard's merged rounds by its images (RoundTotals.add_merged):
    the same means as one process summing every chunk's per-image statistics."""
    from rapidinr.encoding.compress import RoundTotals

    g = torch.Generator().manual_seed(0)

    def chunk(n):
        return [{"round": "fit", "seconds": 1.0, "reused": False, "_psnr": torch.rand(n, generator=g) * 40,
                 "_sparsity": torch.rand(n, generator=g)},
                {"round": "dynamic-prune", "seconds": 2.0, "schedule": "cifar10", "_psnr": torch.rand(n, generator=g),
                 "_sparsity": torch.rand(n, generator=g), "_ratio": torch.rand(n, generator=g)}]

    shards = [[chunk(5), chunk(3)], [chunk(7)]]
    whole = RoundTotals()
    for shard in shards:
        for rounds in shard:
            whole.add(rounds)
    merged = RoundTotals()
    for shard in shards:
        one = RoundTotals()
        for rounds in shard:
            one.add(rounds)
        merged.add_merged(one.merged(), sum(len(r[0]["_psnr"]) for r in shard))
    a, b = whole.merged(), merged.merged()
    assert [r.keys() for r in a] == [r.keys() for r in b] and a[1]["schedule"] == "cifar10"
    for ra, rb in zip(a, b):
        assert ra == pytest.approx(rb)
