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
from rapidinr.core.errors import UserError
from rapidinr.encoding.compress import CompressConfig
from rapidinr.encoding.learned_init import resolve_init
from rapidinr.encoding.runner import encode_to_file, resolve_device
from rapidinr.sources.datasets import load_default
from rapidinr.study.figures import write_figures


def png_bytes(images: torch.Tensor) -> list[int]:
    """Size of each uint8 image (N, C, H, W) as an optimized PNG file."""
    sizes = []
    for image in images:
        array = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", optimize=True)
        sizes.append(buffer.tell())
    return sizes


def demo(out_dir: Path, images: int = 512, steps: int = 1000, arch: str = "3x15", device=None,
         figures: bool = True) -> dict:
    """Encode the first ``images`` of the embedded Fashion-MNIST subset and print what happened."""
    if not 1 <= images <= 4000:
        raise UserError(f"--images must be 1..4000 (the embedded set holds 4000), got {images}")
    data = load_default("train")
    subset = data.subset(0, images)
    dev = resolve_device(device)
    arch_obj = Arch.parse(arch, channels=1)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out_dir}: cannot create folder ({err.strerror or err})") from None
    target = out_dir / "demo.rinr"
    try:  # the learned init shipped in data/ when one fits this architecture, else SIREN's random init
        init = resolve_init("learned", arch_obj, 28, 28)
    except UserError:
        init = None
    print(f"rapidinr demo: encoding {images} Fashion-MNIST images (28x28 gray, embedded in data/) "
          f"with one {arch_obj.name} SIREN each ({arch_obj.n_params} parameters), {steps} Adam steps "
          f"from a {'learned' if init is not None else 'random'} init, on {dev}")
    start = time.perf_counter()
    # The paper's storage: hidden layers as 8-bit codes, first and last layers float32 (Sec. IV-B);
    # hidden biases at 16 bits, which halves the quantization loss for ~30 bytes an image.
    quant = CompressConfig(quant=QuantConfig(bits=8, layers="hidden", bias_bits=16))
    inrs = encode_to_file(subset.images, target, arch_obj, FitConfig(steps=steps), dev, subset.labels,
                          subset.class_names, subset.source, overwrite=True, compression=quant,
                          init=init)
    seconds = time.perf_counter() - start
    info = inrs.info()
    dense = INRSet(inrs.params.cpu(), arch_obj, 28, 28, subset.labels, subset.class_names, inrs.psnr).info()
    raw = subset.images[0].numel()
    png = sum(png_bytes(subset.images)) / images
    print(f"  images          {images} in {seconds:.1f} s ({images / seconds:.1f} images/s)")
    print(f"  PSNR            mean {info['psnr_mean']:.2f} dB, worst {info['psnr_min']:.2f} dB (8-bit hidden layers)")
    print(f"  bytes per image {info['bytes_per_image']:.0f} in the .rinr (8-bit hidden layers; "
          f"{dense['bytes_per_image']:.0f} as float32) against {raw} raw pixels and {png:.0f} as PNG")
    if info["bytes_per_image"] > png:
        print("                  (tiny gray images are where INRs lose: PNG is smaller; see notebooks/01)")
    print(f"  file            {target} ({info['file_bytes']} bytes)")
    print(f"  next            rapidinr info {target} --json; rapidinr decode {target} -o {out_dir / 'png'}")
    if figures:
        figure_dir = out_dir / "figures"
        print(f"rapidinr demo: quick figures (PNG, SVG and the JSON behind each) into {figure_dir}")
        write_figures(figure_dir, quick=True, device=str(dev))
        print(f"  figures         {figure_dir} (full size: rapidinr figures -o DIR)")
    return info
