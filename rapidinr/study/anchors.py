"""Published rate–distortion curves (the field's anchors), carried as the project's own small table
of points, one citation per curve, read from the authors' own results files (see
``../shared/anchors/README.md``). Mean PSNR (dB, RGB, 8-bit) against bits per pixel.

They are drawn beside our measurements labelled "published", only where the dataset matches
(:func:`for_dataset`): CIFAR-10 curves beside 32×32 CIFAR-10 results, Kodak curves beside Kodak.
They are never mixed into our measurements, and crops of Kodak are not Kodak: at 32×32 the
published Kodak curves (768×512 images) are not comparable and are not drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

from rapidinr.core.errors import UserError


@dataclass(frozen=True)
class Curve:
    citation: str
    points: list  # [[bpp, psnr dB], ...] sorted by bpp

    @property
    def bpp(self) -> list[float]:
        return [p[0] for p in self.points]

    @property
    def psnr(self) -> list[float]:
        return [p[1] for p in self.points]


# dataset → image size the curves were measured at (H, W): 32×32 CIFAR-10, 768×512 Kodak (either way)
SIZES = {"cifar10": ((32, 32),), "kodak": ((512, 768), (768, 512))}

CURVES: dict[str, dict[str, Curve]] = {
    "cifar10": {
        "COIN": Curve(
            "Dupont et al., COIN: COmpression with Implicit Neural representations, 2021 (arXiv:2103.03123); as collected in EmilienDupont/coinpp results/cifar10",
            [[3.60938, 25.7893], [4.64062, 27.4417], [5.79688, 29.0742], [7.07812, 30.6687], [8.48438, 32.3332], [10.01562, 34.01]]),
        "COIN++": Curve(
            "Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/cifar10",
            [[0.54848, 24.2198], [1.09853, 27.0335], [1.64732, 28.9042], [2.19521, 30.4488], [3.29432, 32.4213], [4.05707, 33.6919], [5.40599, 35.2645]]),
        "BPG 4:4:4": Curve(
            "BPG 0.9.8 (x265, 4:4:4), per image best quality under a byte cap; Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/cifar10",
            [[1.0, 27.112], [1.25, 28.7406], [1.875, 31.9736], [2.5, 34.5311], [3.75, 38.5664], [5.0, 41.734]]),
        "JPEG": Curve(
            "JPEG (Pillow 8.1.0), per image best quality under a byte cap; Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/cifar10",
            [[5.4, 22.8983], [5.8, 25.6514], [6.2, 27.4393], [6.6, 28.8006], [7.0, 29.9692], [7.4, 30.9929], [7.8, 31.923], [8.2, 32.7974], [8.6, 33.6299], [9.0, 34.4146], [9.4, 35.1276], [9.8, 35.763]]),
        "JPEG2000": Curve(
            "JPEG2000 (OpenJPEG 2.4.0), per image best quality under a byte cap; Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/cifar10",
            [[3.0, 24.8489], [3.8, 28.5082], [4.6, 31.4157], [5.4, 33.9221], [6.2, 36.0953], [7.0, 38.0266], [7.8, 39.7271]]),
        "BMS hyperprior (CompressAI)": Curve(
            "Ballé et al. 2018 (arXiv:1802.01436), CompressAI implementation; Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/cifar10",
            [[0.19, 19.203], [0.37, 22.577], [0.74646, 26.8265], [1.11199, 29.4962], [1.63093, 32.1259], [2.1128, 34.1165], [2.79074, 36.885], [3.23301, 38.333], [4.14434, 41.144], [4.83, 43.1849]]),
    },
    "kodak": {
        "COIN": Curve(
            "Dupont et al. 2021 (arXiv:2103.03123); points as collected in google-deepmind/c3_neural_compression baselines/kodak.py",
            [[0.0368, 22.408], [0.07361, 23.205], [0.1604, 24.6411], [0.3074, 26.4121], [0.6109, 28.408], [1.209, 30.644]]),
        "COIN++": Curve(
            "Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/kodak",
            [[0.06656, 23.6818], [0.13246, 24.9267], [0.2659, 26.1425], [0.39825, 27.032], [0.53659, 27.7981]]),
        "Strümpler et al. 2022 (meta-learned, 7-bit)": Curve(
            "Strümpler et al., Implicit Neural Representations for Image Compression, ECCV 2022 (arXiv:2112.04267); points from github.com/YannickStruempler/inr_based_compression results/KODAK",
            [[0.08316, 25.56], [0.15462, 27.0192], [0.24894, 28.2802], [0.78446, 32.1387]]),
        "C3": Curve(
            "Kim et al., C3: High-performance and low-complexity neural compression from a single image or video, CVPR 2024 (arXiv:2312.02753); points as collected in google-deepmind/c3_neural_compression baselines/kodak.py",
            [[0.09261, 27.0649], [0.13391, 28.45], [0.15319, 28.9589], [0.20255, 30.0321], [0.23175, 30.5941], [0.27607, 31.3358], [0.35065, 32.395], [0.5144, 34.3679], [0.5785, 35.0161], [0.72855, 36.3838], [0.80667, 37.0367], [0.91401, 37.8449], [1.07999, 38.9836], [1.40934, 40.8475]]),
        "COOL-CHICv2": Curve(
            "Leguay et al., Low-complexity overfitted neural image codec, 2023 (arXiv:2307.12706); points as collected in google-deepmind/c3_neural_compression baselines/kodak.py",
            [[0.0967, 26.3934], [0.26353, 30.0596], [0.59906, 33.9242], [0.92889, 36.8152], [1.60579, 40.9604]]),
        "RECOMBINER": Curve(
            "He et al., RECOMBINER: Robust and Enhanced Compression with Bayesian Implicit Neural Representations, ICLR 2024 (arXiv:2309.17182); points as collected in google-deepmind/c3_neural_compression baselines/kodak.py",
            [[0.07402, 26.1583], [0.12968, 27.6528], [0.17794, 28.5944], [0.31616, 30.4393], [0.48844, 31.9534], [0.97241, 34.54]]),
        "JPEG": Curve(
            "JPEG (Pillow 7.1.2); Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/kodak",
            [[0.22115, 23.7799], [0.32661, 26.5772], [0.42313, 28.0422], [0.50839, 29.0418], [0.58787, 29.7847], [0.66013, 30.3783], [0.72895, 30.9032], [0.78603, 31.3078], [0.84972, 31.7048], [0.906, 32.0587], [0.96438, 32.3993], [1.03721, 32.7899], [1.1274, 33.2347], [1.23985, 33.7926], [1.36883, 34.3943], [1.57181, 35.239], [1.85882, 36.3289], [2.3502, 37.9121], [3.40134, 40.5567]]),
        "JPEG2000": Curve(
            "JPEG2000 (ffmpeg 3.4.6); Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/kodak",
            [[0.1258, 26.4404], [0.13246, 26.5862], [0.14076, 26.7574], [0.14888, 26.9228], [0.15948, 27.1183], [0.17067, 27.317], [0.18444, 27.5545], [0.19917, 27.7966], [0.21757, 28.0992], [0.23941, 28.4166], [0.26573, 28.7742], [0.29856, 29.1917], [0.34184, 29.6961], [0.39862, 30.3008], [0.47929, 31.0746], [0.59883, 32.0897], [0.79828, 33.49], [1.19824, 35.6807], [2.39732, 39.792]]),
        "BPG 4:4:4": Curve(
            "BPG 0.9.8 (x265, 4:4:4); Dupont et al., COIN++: Neural Compression Across Modalities, TMLR 2022 (arXiv:2201.12904); points from github.com/EmilienDupont/coinpp results/kodak",
            [[0.06777, 26.1951], [0.16102, 28.6815], [0.35155, 31.5947], [0.6847, 34.8575], [1.19967, 38.2599], [1.92971, 41.4789], [3.05788, 44.7031], [4.70314, 47.6325], [7.39046, 50.8068], [9.68287, 52.9066]]),
        "VTM": Curve(
            "VVC reference software VTM (vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM); points as collected in google-deepmind/c3_neural_compression baselines/kodak.py",
            [[0.04824, 26.1448], [0.1125, 28.493], [0.24582, 31.1999], [0.49055, 34.2615], [0.87481, 37.4198], [1.43085, 40.4244], [2.32461, 43.5058], [3.63261, 46.5918]]),
    },
}


def for_dataset(dataset: str, size: tuple[int, int] | None = None) -> dict[str, Curve]:
    """The published curves of ``dataset`` ("cifar10" or "kodak"); with ``size`` (H, W), a clear
    error when our images are not the size the curves were measured at (another dataset)."""
    if dataset not in CURVES:
        raise UserError(f"--anchors: no published curves for {dataset!r}; use {' or '.join(CURVES)}")
    if size is not None and tuple(size) not in SIZES[dataset]:
        wanted = " or ".join(f"{h}x{w}" for h, w in SIZES[dataset])
        raise UserError(f"--anchors {dataset}: its published curves are of {wanted} images, these are "
                        f"{size[0]}x{size[1]} (another dataset: published curves are only drawn beside the same images)")
    return CURVES[dataset]


def to_results(dataset: str, size: tuple[int, int]) -> dict:
    """CompressAI-shaped entries ``{"published: NAME": {"bpp", "bytes", "psnr", "citation"}}`` at ``size``."""
    h, w = size
    return {f"published: {name}": {"description": "published", "citation": c.citation, "dataset": dataset,
                                   "bpp": c.bpp, "bytes": [round(b * h * w / 8, 2) for b in c.bpp], "psnr": c.psnr}
            for name, c in for_dataset(dataset, size).items()}
