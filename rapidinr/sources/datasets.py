"""Image sources: a folder, the embedded default, scikit-image's photos, torchvision datasets.

Every source becomes an :class:`ImageSet`: uint8 images N×C×H×W with labels where it has them.
Named sources (``NAME`` or ``NAME:ROOT``):

- ``default`` / ``default:test``: the embedded Fashion-MNIST subset in ``data/`` (4,000 train,
  1,000 test, 28×28 gray), no network;
- ``samples``: scikit-image's bundled colour photos (mixed sizes: give ``size``);
- ``samples-crops``: random crops of those photos, ``size`` each (default 32×32), ``limit`` many;
- ``cifar10:ROOT``, ``flowers102:ROOT``, ``fashion-mnist:ROOT``: torchvision datasets under ROOT
  (downloaded only when ``download=True``);
- ``kodak:DIR`` / ``kodak/F:DIR``: the 24 Kodak photos (kodim01..24.png, RGB), downscaled F×
  first; with ``size``, ``limit`` random crops of that size (seeded), else the photos themselves;
  ``kodak@A-B:DIR`` / ``kodak/F@A-B:DIR``: only photos kodimA..kodimB (e.g. a learned init trained
  on ``@1-16`` and measured on ``@17-24``, photos it never saw);
- ``cifar10-folder:DIR``: CIFAR-10 as files, ``DIR/{train,test}/<class>/*.jpg``, labelled by class;
- ``imagefolder:ROOT`` or a plain path: a folder of images, classes from first-level subfolders.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

from rapidinr.core.errors import UserError
from rapidinr.sources.images import IMAGE_SUFFIXES, read_image, read_images, resize_images, stack_images


def package_data_dir() -> Path:
    """Where the package's data lives: ``rapidinr/data`` inside an installed wheel (the top-level
    ``data/`` copied in at build time, pyproject.toml's package-dir mapping), found through
    :mod:`importlib.resources`; in a source checkout, the top-level ``data/`` itself."""
    installed = resources.files("rapidinr") / "data"
    if installed.is_dir():  # a wheel install unpacks to real files: a Traversable that is a Path
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "data"


DATA_DIR = package_data_dir()
DEFAULT_DIR = DATA_DIR / "fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SAMPLE_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
                 "immunohistochemistry", "retina", "hubble_deep_field"]
NAMED = ("default", "samples", "samples-crops", "cifar10", "flowers102", "fashion-mnist", "imagefolder", "kodak",
         "cifar10-folder")
KODAK_FILES = tuple(f"kodim{i:02d}.png" for i in range(1, 25))


@dataclass
class ImageSet:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor | None = None  # (N,) int64, or None
    class_names: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # one per image: a relative path or an id
    source: str = ""
    skipped: list[str] = field(default_factory=list)  # "path: reason" for files skipped as bad

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, start: int, stop: int) -> "ImageSet":
        labels = self.labels[start:stop] if self.labels is not None else None
        return ImageSet(self.images[start:stop], labels, self.class_names, self.names[start:stop],
                        self.source, self.skipped)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``HxW`` (or a single ``S`` for S×S) → (H, W); a clear error otherwise."""
    if text is None:
        return None
    parts = str(text).lower().split("x")
    # ASCII digits only: int() would also take "0_1" and other scripts' digits
    dims = [int(p) for p in parts] if all(p.isascii() and p.isdigit() for p in parts) else []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or not all(1 <= d <= 16384 for d in dims):
        raise UserError(f"--size: expected HxW with 1..16384 pixels a side, got {text!r}")
    return dims[0], dims[1]


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file, the MNIST format: a magic number, dimensions, uint8 data."""
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise UserError(f"{path}: IDX header says {dims} but holds {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_default(split: str = "train", size=None) -> ImageSet:
    """The embedded Fashion-MNIST subset: 4,000 train or 1,000 test images, 28×28 gray."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx(DEFAULT_DIR / f"{prefix}-images-idx3-ubyte.gz")  # (N, 28, 28)
    labels = read_idx(DEFAULT_DIR / f"{prefix}-labels-idx1-ubyte.gz")  # (N,)
    tensor = resize_images(torch.from_numpy(images.copy())[:, None], size)  # (N, 1, H, W)
    names = [f"{split}/{i:05d}" for i in range(len(labels))]
    return ImageSet(tensor, torch.from_numpy(labels.astype(np.int64)), FASHION_CLASSES, names, f"default:{split}")


def _sample_photos() -> list[tuple[str, np.ndarray]]:
    left, right, _ = skdata.stereo_motorcycle()
    loaders = {"motorcycle_left": lambda: left, "motorcycle_right": lambda: right}
    photos = []
    for name in SAMPLE_PHOTOS:
        array = loaders[name]() if name in loaders else getattr(skdata, name)()
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        photos.append((name, np.ascontiguousarray(array[..., :3]).astype(np.uint8)))
    return photos


def load_samples(size=None) -> ImageSet:
    """scikit-image's bundled colour photos, resized to ``size`` (they differ in size)."""
    photos = _sample_photos()
    arrays = []
    for name, array in photos:
        image = Image.fromarray(array)
        if size is not None:
            image = image.resize((size[1], size[0]), Image.Resampling.BICUBIC)
        arrays.append(np.asarray(image))
    names = [name for name, _ in photos]
    return ImageSet(stack_images(arrays, [False] * len(arrays), names), None, [], names, "samples")


def load_sample_crops(count: int = 256, size=(32, 32), seed: int = 0, downscale: int = 4) -> ImageSet:
    """``count`` random ``size`` crops of the sample photos, each photo first shrunk ``downscale``×.

    Shrinking first makes a 32×32 crop hold a CIFAR-like amount of detail rather than a flat patch.
    A photo too small for the crop once shrunk is shrunk less (down to not at all), so larger crops
    (96×96, 128×128) come from the same photos; a crop larger than the smallest photo is refused.
    """
    smallest = min(min(array.shape[:2]) for _, array in _sample_photos())
    if not (1 <= size[0] <= smallest and 1 <= size[1] <= smallest):
        raise UserError(f"samples-crops: crop size {size[0]}x{size[1]} is larger than the smallest sample photo "
                        f"({smallest} px); use at most {smallest}x{smallest}, or a folder of larger images")
    rng = np.random.default_rng(seed)
    shrunk = []
    for name, array in _sample_photos():
        image = Image.fromarray(array)
        factor = max(downscale, 1)
        while factor > 1 and min(image.height // factor - size[0], image.width // factor - size[1]) < 0:
            factor -= 1  # this photo shrunk ``downscale``x is smaller than the crop
        w, h = image.width // factor, image.height // factor
        shrunk.append((name, np.asarray(image.resize((w, h), Image.Resampling.BICUBIC)) if factor > 1 else array))
    crops, names = [], []
    for i in range(count):
        name, photo = shrunk[i % len(shrunk)]
        top = int(rng.integers(0, photo.shape[0] - size[0] + 1))
        left = int(rng.integers(0, photo.shape[1] - size[1] + 1))
        crops.append(photo[top : top + size[0], left : left + size[1]].transpose(2, 0, 1))
        names.append(f"{name}@{top},{left}")
    return ImageSet(torch.from_numpy(np.stack(crops)), None, [], names, f"samples-crops:{size[0]}x{size[1]}")


def parse_photo_range(text: str) -> tuple[int, int]:
    """``A-B`` (1 <= A <= B <= 24) → (A, B): the Kodak photos kodimA..kodimB, both included."""
    first, dash, last = text.partition("-")
    if not (dash and first.isdigit() and last.isdigit() and 1 <= int(first) <= int(last) <= len(KODAK_FILES)):
        raise UserError(f"kodak@{text}: the photo range must be A-B with 1 <= A <= B <= {len(KODAK_FILES)} "
                        "(e.g. kodak/4@1-16:DIR for kodim01..kodim16)")
    return int(first), int(last)


def load_kodak(root: Path, size=None, downscale: int = 1, count: int | None = None, seed: int = 0,
               photos: tuple[int, int] = (1, len(KODAK_FILES))) -> ImageSet:
    """The Kodak set from ``root`` (files kodim``photos[0]``..kodim``photos[1]``, RGB; default all
    24), each first shrunk ``downscale``× (bicubic); with ``size``, ``count`` random crops of that
    size (photos taken in turn), else the photos (mixed orientations: 512×768 ones are rotated to
    768 wide, so they stack)."""
    if not root.is_dir():
        raise UserError(f"{root}: no such folder (the Kodak set: kodim01..kodim24.png)")
    files = KODAK_FILES[photos[0] - 1 : photos[1]]
    tag = (f"kodak/{downscale}" if downscale > 1 else "kodak") + (
        "" if len(files) == len(KODAK_FILES) else f"@{photos[0]}-{photos[1]}")
    loaded = []  # (file name, H×W×3 uint8) of each photo read
    for name in files:
        path = root / name
        if not path.is_file():
            raise UserError(f"{path}: missing (a Kodak folder holds kodim01..kodim24.png)")
        with Image.open(path) as image:
            if image.mode != "RGB":
                raise UserError(f"{path}: not an RGB image (mode {image.mode})")
            if image.height > image.width:
                image = image.transpose(Image.Transpose.ROTATE_90)
            if downscale > 1:
                image = image.resize((image.width // downscale, image.height // downscale), Image.Resampling.BICUBIC)
            loaded.append((name, np.asarray(image.convert("RGB"))))
    if size is None:
        arrays = [a.transpose(2, 0, 1) for _, a in loaded]
        return ImageSet(torch.from_numpy(np.stack(arrays)), None, [], list(files), f"{tag}:{root}")
    rng = np.random.default_rng(seed)
    crops, names = [], []
    for i in range(count or len(loaded)):
        name, photo = loaded[i % len(loaded)]
        if photo.shape[0] < size[0] or photo.shape[1] < size[1]:
            raise UserError(f"--size {size[0]}x{size[1]}: larger than the Kodak photos at 1/{downscale} scale")
        top = int(rng.integers(0, photo.shape[0] - size[0] + 1))
        left = int(rng.integers(0, photo.shape[1] - size[1] + 1))
        crops.append(photo[top : top + size[0], left : left + size[1]].transpose(2, 0, 1))
        names.append(f"{name}@{top},{left}")
    return ImageSet(torch.from_numpy(np.stack(crops)), None, [], names,
                    f"{tag}-crops:{size[0]}x{size[1]}:{root}")


def list_image_files(root: Path) -> list[Path]:
    """Image files under ``root``, in lexicographic order of their path relative to ``root``."""
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def load_folder(root: Path, size=None, skip_bad: bool = False, limit: int | None = None) -> ImageSet:
    """A folder of images; where every image lies in a first-level subfolder, that is its class.

    ``limit``: decode only the first ``limit`` readable images (in file order); the classes are
    still every first-level subfolder holding images, so labels mean the same with or without it."""
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    files = list_image_files(root)
    if not files:
        raise UserError(f"{root}: no image files found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    relative = [p.relative_to(root).as_posix() for p in files]
    all_classes = sorted({n.split("/", 1)[0] for n in relative}) if all("/" in n for n in relative) else []
    images, used, skipped = read_images(files, size, skip_bad, limit, names=relative)  # --limit before decoding
    if images is None or not used:
        raise UserError(f"{root}: no readable images (skipped {len(skipped)})")
    names = [relative[i] for i in used]
    labels, classes = None, []
    if all_classes:
        classes = all_classes
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[n.split("/", 1)[0]] for n in names], dtype=torch.int64)
    return ImageSet(images, labels, classes, names, f"imagefolder:{root}", skipped)


def load_torchvision(name: str, root: Path, split: str, size=None, download: bool = False,
                     limit: int | None = None) -> ImageSet:
    """CIFAR-10, Flowers102 or FashionMNIST from a local root (torchvision's own readers)."""
    import torchvision.datasets as tvd  # heavy: importing torchvision costs ~1 s

    train = split == "train"
    try:
        if name == "cifar10":
            ds = tvd.CIFAR10(str(root), train=train, download=download)
            images = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
            labels, classes = torch.tensor(ds.targets), list(ds.classes)
        elif name == "fashion-mnist":
            ds = tvd.FashionMNIST(str(root), train=train, download=download)
            images, labels, classes = ds.data[:, None].clone(), ds.targets.clone(), list(ds.classes)
        else:
            ds = tvd.Flowers102(str(root), split=split, download=download)
            if size is None:
                raise UserError("flowers102: images differ in size; pass --size HxW (e.g. 224x224)")
            arrays, grays, labels = [], [], []
            for path, label in list(zip(ds._image_files, ds._labels))[:limit]:  # --limit before decoding
                array, gray = read_image(Path(path), size)
                arrays.append(array)
                grays.append(gray)
                labels.append(label)
            images = stack_images(arrays, grays, [str(p) for p in ds._image_files])
            labels, classes = torch.tensor(labels), [str(i) for i in range(102)]
    except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
        hint = "" if download else " (pass --download to fetch it)"
        raise UserError(f"{name}:{root}: {str(err).splitlines()[0]}{hint}") from None
    images = resize_images(images, size)
    names = [f"{split}/{i:06d}" for i in range(images.shape[0])]
    return ImageSet(images, labels.long(), classes, names, f"{name}:{root}")


def load_source(spec: str, size=None, split: str = "train", download: bool = False,
                skip_bad: bool = False, limit: int | None = None, seed: int = 0) -> ImageSet:
    """Resolve a SOURCE string (see the module docstring) into an :class:`ImageSet`."""
    if split not in ("train", "test"):
        raise UserError(f"--split must be train or test, got {split!r}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    name, _, rest = str(spec).partition(":")
    if name == "default":
        out = load_default(rest or split, size) if (rest or split) in ("train", "test") else None
        if out is None:
            raise UserError(f"source {spec!r}: use default, default:train or default:test")
    elif name == "samples":
        out = load_samples(size)
    elif name == "samples-crops":
        out = load_sample_crops(limit or 256, size or (32, 32), seed)
    elif name in ("cifar10", "flowers102", "fashion-mnist"):
        if not rest:
            raise UserError(f"source {spec!r}: give the dataset's root folder, {name}:ROOT")
        out = load_torchvision(name, Path(rest), split, size, download, limit)
    elif name.partition("@")[0] == "kodak" or name.startswith("kodak/"):
        name, _, photo_range = name.partition("@")
        factor = name.partition("/")[2] or "1"
        if not rest or not factor.isdigit() or int(factor) < 1:
            raise UserError(f"source {spec!r}: use kodak:DIR, kodak/F:DIR or kodak/F@A-B:DIR (F: a downscale "
                            "factor >= 1; A-B: photos kodimA..kodimB)")
        photos = parse_photo_range(photo_range) if photo_range else (1, len(KODAK_FILES))
        out = load_kodak(Path(rest), size, int(factor), limit, seed, photos)
    elif name == "cifar10-folder":
        if not rest:
            raise UserError(f"source {spec!r}: give the folder, cifar10-folder:DIR (holding train/ and test/)")
        out = load_folder(Path(rest) / split, size, skip_bad)
        out.source = f"cifar10-folder:{rest}/{split}"
    elif name == "imagefolder":
        out = load_folder(Path(rest), size, skip_bad, limit)
    elif Path(spec).exists():
        if not Path(spec).is_dir():
            raise UserError(f"{spec}: SOURCE must be a folder of images or a named source, not a file")
        out = load_folder(Path(spec), size, skip_bad, limit)
    else:
        raise UserError(f"source {spec!r}: no such folder, and not one of {', '.join(NAMED)}")
    if len(out) == 0:
        raise UserError(f"source {spec!r}: holds no images")
    if limit is not None and name != "samples-crops" and not (name.startswith("kodak") and size is not None):
        out = out.subset(0, limit)  # the folder and Flowers102 readers applied it before decoding already
    return out
