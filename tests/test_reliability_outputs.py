"""Nothing overwritten, nothing half-written, and one clear line for each careless input.

decode: a non-empty folder needs --overwrite; a planted symlink is replaced, never written
through; a failure leaves the folder as it was. The API refuses what it could not load back.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from rapidinr import INRSet, UserError, encode, load
from rapidinr.cli import main
from rapidinr.cli.decode import parse_indices
from rapidinr.core.config import Arch, FitConfig
from rapidinr.encoding import runner
from rapidinr.encoding.runner import encode_to_file
from rapidinr.sources.datasets import ImageSet

ROOT = Path(__file__).resolve().parent.parent


def one_line(capsys, code: int, *words: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("rapidinr: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def small(tiny_set, tmp_path) -> Path:
    path = tmp_path / "small.rinr"
    tiny_set.save(path)
    return path


# -- decode: nothing overwritten, nothing half-written -----------------------------------------------

def test_decode_refuses_a_non_empty_folder_without_overwrite(small, tmp_path, capsys):
    out = tmp_path / "pngs"
    out.mkdir()
    (out / "000000.png").write_bytes(b"the user's own picture")
    one_line(capsys, main(["decode", str(small), "-o", str(out)]), "not empty", "--overwrite")
    assert (out / "000000.png").read_bytes() == b"the user's own picture"
    assert sorted(p.name for p in out.iterdir()) == ["000000.png"]
    assert main(["decode", str(small), "-o", str(out), "--overwrite"]) == 0
    assert Image.open(out / "000000.png").size == (10, 12)


def test_decode_never_writes_through_a_symlink(small, tmp_path):
    out = tmp_path / "pngs"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_bytes(b"keep me")
    (out / "000000.png").symlink_to(target)
    assert main(["decode", str(small), "-o", str(out), "--overwrite", "--indices", "0"]) == 0
    assert target.read_bytes() == b"keep me"
    assert not (out / "000000.png").is_symlink() and Image.open(out / "000000.png").size == (10, 12)


def test_decode_refuses_a_symlinked_output_folder(small, tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    one_line(capsys, main(["decode", str(small), "-o", str(tmp_path / "link")]), "symbolic link")


def test_a_failing_decode_leaves_nothing_behind(small, tmp_path, capsys, monkeypatch):
    saved = []
    real = Image.Image.save

    def save(self, path, *args, **kwargs):
        if len(saved) == 3:
            raise OSError(28, "No space left on device")
        saved.append(path)
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    one_line(capsys, main(["decode", str(small), "-o", str(tmp_path / "new")]), "No space left")
    assert not (tmp_path / "new").exists()  # the folder it made is gone again
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "000001.png").write_bytes(b"old")
    saved.clear()
    one_line(capsys, main(["decode", str(small), "-o", str(existing), "--overwrite"]), "No space left")
    assert sorted(p.name for p in existing.iterdir()) == ["000001.png"]  # as it was, no temporaries
    assert (existing / "000001.png").read_bytes() == b"old"


def test_write_failure_under_a_file_size_limit_leaves_no_truncated_png(small, tmp_path):
    """``ulimit -f`` in a child: the write fails; no PNG (truncated or whole) is left."""
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300)); "
              "from rapidinr.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", script, "decode", str(small), "-o", str(tmp_path / "d"),
                           "--size", "40x40"], check=False, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "PYTHONDONTWRITEBYTECODE": "1"})  # no .pyc cut short by the limit
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot write PNG" in proc.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("text,says", [
    ("0_1", "expected comma-separated"), ("\u0663", "expected comma-separated"), ("", "expected comma-separated"),
    ("1,1,1", "more than once"), ("1,,2", "expected comma-separated"), ("-1", "expected comma-separated"),
    ("8", "out of range"),
])
def test_indices_are_strict(text, says):
    with pytest.raises(UserError, match=says):
        parse_indices(text, 8)


def test_indices_accept_plain_lists():
    assert parse_indices(" 3, 0,7 ", 8) == [3, 0, 7] and parse_indices(None, 8) is None


def test_decode_memory_flag_checked(small, tmp_path, capsys):
    one_line(capsys, main(["decode", str(small), "-o", str(tmp_path / "d"), "--memory-mb", "nan"]), "--memory-mb")
    assert not (tmp_path / "d").exists()


# -- the API: one clear UserError ------------------------------------------------------------------

@pytest.mark.parametrize("budget", [float("nan"), float("inf"), 0, -1])
def test_decode_budget_must_be_finite(tiny_set, budget):
    with pytest.raises(UserError, match="memory_budget_mb"):
        tiny_set.decode(memory_budget_mb=budget)


def test_encode_of_an_empty_image_is_refused():
    with pytest.raises(UserError, match="H, W >= 1"):
        encode(torch.zeros(2, 3, 0, 8, dtype=torch.uint8), steps=1, progress=False)


@pytest.mark.parametrize("height,width", [(0, 4), (4, 0), (-1, 4), (4, 10**6)])
def test_inrset_size_is_checked(height, width):
    arch = Arch(1, 2, 1)
    with pytest.raises(UserError, match="must be an integer"):
        INRSet(torch.zeros(1, arch.n_params), arch, height, width)


@pytest.mark.parametrize("device,says", [("bogus", "unknown device"), ("cpux", "unknown device"),
                                         ("meta", "not supported")]
                         + ([] if torch.cuda.is_available() else [("cuda", "CUDA is not available")]))
def test_load_device_is_checked(small, device, says):
    with pytest.raises(UserError, match=says):
        load(small, device=device)


@pytest.mark.parametrize("labels,names,says", [
    (torch.arange(9) % 4, ["a", "b", "c", "d"], "9 labels for 8 images"),
    (torch.tensor([-1, 0, 1, 2, 3, 0, 1, 2]), ["a", "b", "c", "d"], "labels must be in 0..3"),
    (torch.tensor([4, 0, 1, 2, 3, 0, 1, 2]), ["a", "b", "c", "d"], "labels must be in 0..3"),
    ((torch.arange(8) % 4)[:, None], ["a", "b", "c", "d"], "shape"),
    (torch.arange(8) % 4, ["a", "b", 3, "d"], "string"),
    ([0, 1, 2, 3, 0, 1, 2, 3], ["a", "b", "c", "d"], "torch.tensor"),
    (torch.arange(8) % 4, "abcd", "list of strings"),
])
def test_encode_refuses_labels_it_could_not_load_back_before_fitting(tiny_images, labels, names, says, monkeypatch):
    monkeypatch.setattr(runner, "fit", lambda *a, **k: pytest.fail("fitted before checking the labels"))
    with pytest.raises(UserError, match=says):
        encode(tiny_images, arch="1x2", steps=1, device="cpu", labels=labels, class_names=names, progress=False)


def test_save_refuses_labels_load_would_refuse(tiny_set, tmp_path):
    copy = INRSet(tiny_set.dense_params(), tiny_set.arch, tiny_set.height, tiny_set.width, tiny_set.labels,
                  tiny_set.class_names, tiny_set.psnr)  # the session's set stays as it is
    copy.labels = torch.full((len(copy),), 7)  # set after construction, which would refuse it
    with pytest.raises(UserError, match="labels must be in 0..3"):
        copy.save(tmp_path / "bad.rinr")
    assert not (tmp_path / "bad.rinr").exists()


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path, capsys):
    path = tmp_path / "two\nlines\r.rinr"
    path.write_bytes(b"not a set")
    err = one_line(capsys, main(["info", str(path)]))
    assert "two\\nlines\\r.rinr" in err


# -- --resume fingerprints each chunk ----------------------------------------------------------------

def test_resume_refits_chunks_whose_images_changed(tiny_images, tmp_path, monkeypatch):
    arch, cfg = Arch(1, 4, 3), FitConfig(steps=20, chunk_size=2)
    images = tiny_images.clone()
    names = [f"{i}.png" for i in range(8)]
    fresh = encode_to_file(ImageSet(images, names=names), tmp_path / "fresh.rinr", arch, cfg, "cpu", progress=False)
    monkeypatch.setattr(runner.Checkpoint, "remove", lambda self: None)  # as if killed before the end
    encode_to_file(ImageSet(images, names=names), tmp_path / "set.rinr", arch, cfg, "cpu", progress=False)
    (tmp_path / "set.rinr").unlink()
    for chunk in sorted((tmp_path / "set.rinr.partial").glob("chunk-*"))[3:]:
        chunk.unlink()  # three chunks finished before the kill
    swapped = images.clone()
    swapped[[2, 3]] = images[[3, 2]]  # two images of chunk 1 trade contents (names stay)
    monkeypatch.undo()
    resumed = encode_to_file(ImageSet(swapped, names=names), tmp_path / "set.rinr", arch, cfg, "cpu", progress=False,
                             resume=True)
    # chunks 0 and 2 kept (each chunk is checked on its own); chunk 1 changed, so it alone is refitted
    assert resumed.meta["resumed_chunks"] == 2
    again = encode_to_file(ImageSet(swapped, names=names), tmp_path / "again.rinr", arch, cfg, "cpu", progress=False)
    assert torch.equal(resumed.dense_params(), again.dense_params())  # exactly what a fresh encode of these images gives
    assert torch.equal(resumed.dense_params()[:2], fresh.dense_params()[:2])
    assert not torch.equal(resumed.dense_params()[2:4], fresh.dense_params()[2:4])
    decoded = (resumed.decode(torch.tensor([2, 3])) * 255).round()
    error = (decoded - swapped[[2, 3]].float()).abs().mean()
    wrong = (decoded - images[[2, 3]].float()).abs().mean()
    assert error < wrong


# -- train: mismatches found before training starts ----------------------------------------------------

def test_train_rgb_set_against_a_gray_test_set_fails_before_training(small, capsys, monkeypatch):
    from rapidinr.training import loop

    monkeypatch.setattr(loop, "resnet18", lambda *a, **k: pytest.fail("training started"))
    code = main(["train", "--data", str(small), "--pipeline", "inr", "--test", "default", "--test-limit", "8",
                 "--epochs", "1", "--device", "cpu", "--quiet"])
    one_line(capsys, code, "--test default", "channels", "(3; the test set has 1)")


def test_train_test_limit_zero_names_its_own_option(small, capsys):
    code = main(["train", "--data", str(small), "--pipeline", "inr", "--test", "default", "--test-limit", "0",
                 "--epochs", "1", "--device", "cpu", "--quiet"])
    one_line(capsys, code, "--test-limit")


def test_train_on_an_empty_labelled_set(tmp_path, capsys):
    arch = Arch(1, 2, 1)
    empty = INRSet(torch.zeros(0, arch.n_params), arch, 28, 28, torch.zeros(0, dtype=torch.long), ["a"],
                   torch.zeros(0), {"source": "default"})
    empty.save(tmp_path / "empty.rinr")
    code = main(["train", "--data", str(tmp_path / "empty.rinr"), "--pipeline", "inr", "--test", "default",
                 "--test-limit", "8", "--epochs", "1", "--device", "cpu", "--quiet"])
    one_line(capsys, code, "no images")
