"""``rapidinr demo``: the main job on the embedded default, on the CPU, in a few minutes."""
from __future__ import annotations

import io
import time
from pathlib import Path

import torch
from PIL import Image

from rapidinr.codec.inrset import INRSet
from rapidinr.codec.quantize import QuantConfig
from rapidinr.core.config import Arch, FitConfig
from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.core.files import make_folder
from rapidinr.encoding.compress import CompressConfig
from rapidinr.encoding.learned_init import resolve_init
from rapidinr.encoding.runner import encode_to_file
from rapidinr.sources.datasets import load_default, load_sample_crops
from rapidinr.study import baselines
from rapidinr.study.figures import write_figures

DEFAULT_STEPS = 1000  # Adam steps per image where neither --steps nor a learned init's recommendation sets them
# The paper's storage: hidden layers as 8-bit codes, first and last layers float32 (Sec. IV-B);
# hidden biases at 16 bits, which halves the quantization loss for ~30 bytes an image.
STORAGE = CompressConfig(quant=QuantConfig(bits=8, layers="hidden", bias_bits=16))


def png_bytes(images: torch.Tensor) -> list[int]:
    """Size of each uint8 image (N, C, H, W) as an optimized PNG file."""
    sizes = []
    for image in images:
        array = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", optimize=True)
        sizes.append(buffer.tell())
    return sizes


CROP_SIZE = (32, 32)  # CIFAR-sized crops of scikit-image's photos (load_sample_crops)
QUICK = {"images": 64, "crops": 8, "crop_steps": 300, "figures": False}  # rapidinr demo --quick


def demo(out_dir: Path, images: int = 512, steps: int | None = None, arch: str = "3x15", device=None,
         figures: bool = True, crops: int = 32, crop_steps: int | None = None) -> dict:
    """Encode the first ``images`` of the embedded Fashion-MNIST subset, then ``crops`` RGB photo
    crops, and print what each store costs against raw pixels, PNG and JPEG.

    ``steps``: Adam steps per image; None: the shipped learned init's recommended fit for the
    Fashion-MNIST part (500 steps at lr 5e-3 for 3x15) or 1000 from a random init, and 1000 for
    the crops (a random init, the paper's store); ``crop_steps`` sets the crops' alone. Returns the Fashion-MNIST store's ``info()`` with the crops'
    comparison under ``"photo_crops"`` (absent when ``crops`` is 0).
    """
    if not 1 <= images <= 4000:
        raise UserError(f"--images must be 1..4000 (the embedded set holds 4000), got {images}")
    if not 0 <= crops <= 4096:
        raise UserError(f"--crops must be 0..4096, got {crops}")
    for name, value in (("steps", steps), ("crop_steps", crop_steps)):
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    data = load_default("train")
    subset = data.subset(0, images)
    dev = resolve_device(device)
    arch_obj = Arch.parse(arch, channels=1)
    make_folder(out_dir)
    target = out_dir / "demo.rinr"
    try:  # the learned init shipped in data/ when one fits this architecture, else SIREN's random init
        init = resolve_init("learned", arch_obj, 28, 28)
    except UserError:
        init = None
    print(f"rapidinr demo: encoding {images} Fashion-MNIST images (28x28 gray, embedded in data/) "
          f"with one {arch_obj.name} SIREN each ({arch_obj.n_params} parameters) "
          f"from a {'learned' if init is not None else 'random'} init, on {dev}")
    start = time.perf_counter()
    # steps=None: encode_to_file takes the learned init's recommended steps and rate where it has one
    inrs = encode_to_file(subset, target, arch_obj, FitConfig(steps=steps or DEFAULT_STEPS), dev, overwrite=True,
                          compression=STORAGE, init=init, steps=steps)
    seconds = time.perf_counter() - start
    info = inrs.info()
    fit_used = inrs.meta["fit"]
    dense = INRSet(inrs.dense_params().cpu(), arch_obj, 28, 28, subset.labels, subset.class_names, inrs.psnr).info()
    raw = subset.images[0].numel()
    png = sum(png_bytes(subset.images)) / images
    print(f"  images          {images} in {seconds:.1f} s ({images / seconds:.1f} images/s), "
          f"{fit_used['steps']} Adam steps at lr {fit_used['lr']:g}"
          + (" (the learned init's recommendation)" if steps is None and init is not None and init.recommended_fit
             else ""))
    print(f"  PSNR            mean {info['psnr_mean']:.2f} dB, worst {info['psnr_min']:.2f} dB (8-bit hidden layers)")
    print(f"  bytes per image {info['bytes_per_image']:.0f} in the .rinr (8-bit hidden layers; "
          f"{dense['bytes_per_image']:.0f} as float32) against {raw} raw pixels and {png:.0f} as PNG")
    if info["bytes_per_image"] > png:
        print("                  (tiny gray images are where INRs lose: PNG is smaller; see notebooks/01)")
    print(f"  file            {target} ({info['file_bytes']} bytes)")
    print(f"  next            rapidinr info {target} --json; rapidinr decode {target} -o {out_dir / 'png'}")
    if crops:
        info["photo_crops"] = photo_crops(out_dir, crops, crop_steps or steps or DEFAULT_STEPS, arch, dev)
    if figures:
        figure_dir = out_dir / "figures"
        print(f"rapidinr demo: quick figures (PNG, SVG and the JSON behind each) into {figure_dir}")
        write_figures(figure_dir, quick=True, device=str(dev))
        print(f"  figures         {figure_dir} (full size: rapidinr figures -o DIR)")
    return info


def photo_crops(out_dir: Path, count: int, steps: int, arch: str, dev) -> dict:
    """Encode ``count`` 32×32 RGB crops of scikit-image's photos (where an INR store is smaller
    than the pixels) and print its bytes and PSNR beside raw, PNG and JPEG: JPEG both at the INR's
    own bytes per image (the highest quality that fits) and at quality 75."""
    crops = load_sample_crops(count, CROP_SIZE, seed=1)
    arch_obj = Arch.parse(arch, channels=3)
    target = out_dir / "demo-photo-crops.rinr"
    print(f"rapidinr demo: encoding {count} RGB photo crops ({CROP_SIZE[0]}x{CROP_SIZE[1]}, of scikit-image's "
          f"sample photos) with one {arch_obj.name} SIREN each ({arch_obj.n_params} parameters), "
          f"{steps} Adam steps from a random init, stored as the paper stores it "
          f"(encode --preset compact starts from the shipped CIFAR-10 RGB init instead)")
    start = time.perf_counter()
    inrs = encode_to_file(crops, target, arch_obj, FitConfig(steps=steps), dev, overwrite=True, compression=STORAGE)
    seconds = time.perf_counter() - start
    info = inrs.info()
    inr_bytes, inr_psnr = info["bytes_per_image"], info["psnr_mean"]
    raw = crops.images[0].numel()
    png = sum(png_bytes(crops.images)) / count
    same = baselines.jpeg_at_budget(crops.images, inr_bytes).summary()
    q75 = baselines.jpeg(crops.images, 75).summary()
    print(f"  images          {count} in {seconds:.1f} s ({count / seconds:.1f} images/s)")
    print(f"  {'store':<32}{'bytes/image':>12}{'PSNR dB':>9}")
    fits = same["psnr_mean"] is not None  # JPEG's headers alone may not fit a tiny INR's bytes
    same_row = ((f"JPEG at the INR's bytes (q~{same['quality_mean']:.0f})", same["bytes_mean"], same["psnr_mean"])
                if fits else (f"JPEG at the INR's bytes: {same['unmet']}/{count} cannot fit", None, None))
    rows = [("INR .rinr (8-bit hidden layers)", inr_bytes, inr_psnr), ("raw pixels", raw, "lossless"),
            ("PNG (lossless)", png, "lossless"), same_row, ("JPEG quality 75", q75["bytes_mean"], q75["psnr_mean"])]
    for name, size, quality in rows:
        size_text = "-" if size is None else f"{size:.0f}"
        quality_text = "-" if quality is None else quality if isinstance(quality, str) else f"{quality:.2f}"
        print(f"  {name:<32}{size_text:>12}{quality_text:>9}")
    if not fits:
        verdict = f"JPEG cannot make files this small for {same['unmet']} of {count} crops"
    elif same["psnr_mean"] > inr_psnr:
        verdict = f"JPEG is {same['psnr_mean'] - inr_psnr:.1f} dB better at the same bytes"
    else:
        verdict = f"the INR is {inr_psnr - same['psnr_mean']:.1f} dB better than JPEG at the same bytes"
    print(f"  so              the INR store is {raw / inr_bytes:.1f}x smaller than raw pixels and "
          f"{png / inr_bytes:.1f}x smaller than PNG; {verdict} (an INR's gain is decoding on the GPU "
          f"while training, paper Sec. III)")
    print(f"  file            {target} ({info['file_bytes']} bytes)")
    return {"images": count, "steps": steps, "inr_bytes": inr_bytes, "inr_psnr": inr_psnr, "raw_bytes": raw,
            "png_bytes": png, "jpeg_same_bytes": same, "jpeg_q75": q75, "seconds": round(seconds, 3)}
