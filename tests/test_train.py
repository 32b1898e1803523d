"""ResNet-18, the training loop and its timing, `rapidinr train` / `rapidinr bench pipelines`, the figures."""
from __future__ import annotations

import json

import pytest
import torch

from rapidinr import encode
from rapidinr.cli import main
from rapidinr.sources.datasets import load_default
from rapidinr.training.loop import TrainConfig, TrainData, run_training
from rapidinr.training.models import resnet18


@pytest.fixture(scope="module")
def small():
    train = load_default("train").subset(0, 16)
    test = load_default("test").subset(0, 16)
    return TrainData(train.labels, 10, 1, test.images, test.labels, train.images, None, "default[:16]")


@pytest.fixture(scope="module")
def small_rinr(tmp_path_factory, small):
    inrs = encode(small.images, "3x15", steps=20, labels=small.labels, class_names=[str(i) for i in range(10)],
                  progress=False)
    inrs.meta["source"] = "default:train"
    path = tmp_path_factory.mktemp("rinr") / "small.rinr"
    inrs.save(path)
    return path


def test_resnet18_stems():
    small = resnet18(10, channels=1, image_size=(28, 28))
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)
    assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    large = resnet18(5, channels=3, image_size=(96, 96))
    assert large.conv1.kernel_size == (7, 7) and isinstance(large.maxpool, torch.nn.MaxPool2d)
    assert large(torch.zeros(1, 3, 96, 96)).shape == (1, 5)


def test_training_reports_time_and_accuracy(small):
    cfg = TrainConfig(epochs=1, batch_size=8, warmup_batches=1, target_accuracy=0.0)
    out = run_training("tensor", small, cfg, (12, 12), "cpu", progress=False)
    epoch = out["epochs"][0]
    assert epoch["batches"] == 2 and epoch["images"] == 16
    assert 0 <= out["final_test_accuracy"] <= 1 and out["time_to_target_s"] == epoch["elapsed_s"]
    assert epoch["wall_s"] >= epoch["step_s"] > 0 and epoch["data_s"] >= 0
    assert abs(epoch["wall_s"] - epoch["data_s"] - epoch["step_s"]) < 0.05 * epoch["wall_s"] + 0.05
    assert epoch["cpu_core_s"] > 0 and out["model"]["stem"].startswith("3x3")
    assert out["settings"]["augment"]["mode"] == "pad-crop" and out["settings"]["train"]["lr"] == 0.01


def test_warmup_is_undone(small):
    """Warm-up steps leave no trace: the first epoch's loss is the same with and without them."""
    losses = []
    for warmup in (0, 2):
        cfg = TrainConfig(epochs=1, batch_size=8, warmup_batches=warmup)
        losses.append(run_training("tensor", small, cfg, (8, 8), "cpu", progress=False)["epochs"][0]["train_loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_train_cli_inr_writes_results(small_rinr, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["train", "--data", str(small_rinr), "--pipeline", "inr", "--epochs", "1", "--batch-size", "8",
                 "--test-limit", "16", "--size", "12x12", "--warmup", "1", "--results", str(out), "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["pipeline"] == "inr" and doc["settings"]["size"] == [12, 12]
    assert doc["hardware"]["torch"] and doc["results"]["epochs"][0]["images"] == 16
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--pipeline", "bogus", "--data", "default"], "invalid choice"),
    (["--pipeline", "jpeg", "--data", "default", "--workers", "100000"], "CPU cores"),
    (["--pipeline", "inr", "--data", "default", "--workers", "2"], "no CPU workers"),
    (["--pipeline", "inr", "--data", "default", "--limit", "8"], "needs a .rinr"),
    (["--pipeline", "nvjpeg", "--data", "default", "--device", "cpu"], "CUDA GPU"),
    (["--pipeline", "tensor", "--data", "missing.rinr"], "no such file"),
])
def test_train_cli_bad_input(argv, message, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_train_cli_unlabelled_rinr(tiny_images, tmp_path, capsys):
    path = tmp_path / "nolabels.rinr"
    encode(tiny_images, "2x8", steps=2, progress=False).save(path)
    assert main(["train", "--data", str(path), "--pipeline", "inr", "--epochs", "1"]) == 2
    assert "holds no labels" in capsys.readouterr().err


def test_train_cli_dali_missing_says_how_to_install(monkeypatch, capsys):
    import rapidinr.training.loaders as loaders

    monkeypatch.setattr(loaders, "dali_available", lambda: False)
    assert main(["train", "--data", "default", "--pipeline", "dali", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "pip install" in err and "nvidia-dali" in err


@pytest.mark.slow
def test_bench_pipelines_grid_and_figures(tmp_path):
    from rapidinr.study.figures.training import pipeline_table, save_figures

    out = tmp_path / "grid.json"
    code = main(["bench", "pipelines", "--data", "default@8x8", "--pipelines", "inr,tensor,jpeg,dali,nvjpeg",
                 "--workers", "1", "--limit", "16", "--test-limit", "16", "--encode-steps", "5", "--epochs", "1",
                 "--batch-size", "8", "--device", "cpu", "-o", str(out), "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    ran = {(r["pipeline"], r["workers"]) for r in doc["results"]["rows"]}
    assert {("inr", 0), ("tensor", 0), ("jpeg", 1)} <= ran
    assert any(s["pipeline"] == "nvjpeg" for s in doc["results"]["skipped"])  # no GPU here
    assert all(r["total_wall_s"] > 0 and r["images_per_s"] > 0 for r in doc["results"]["rows"])
    assert list(pipeline_table(doc)) == ["default@8x8"]
    fig7 = {"results": {"variants": [
        {"label": "original", "kind": "original", "bytes_per_image": 784, "accuracy": 0.8, "psnr": None},
        {"label": "3x15", "kind": "inr", "bytes_per_image": 2200, "accuracy": 0.78, "psnr": 28.0},
        {"label": "q50", "kind": "jpeg", "bytes_per_image": 600, "accuracy": 0.75, "psnr": 27.0}]}}
    written = save_figures(fig7, doc, tmp_path / "figs")
    assert [p.name for p in written] == ["fig7-accuracy.png", "fig8-pipelines.png"]
    assert all(p.stat().st_size > 5000 for p in written)


def test_bench_bad_pipeline(capsys):
    assert main(["bench", "pipelines", "--pipelines", "inr,nope", "-o", "x.json"]) == 2
    assert "unknown pipeline 'nope'" in capsys.readouterr().err


def test_a_cifar10_folder_and_a_set_encoded_from_it_find_their_test_split(tmp_path):
    """`rapidinr train` on a cifar10-folder source, or on a .rinr encoded from its train split, tests on
    DIR/test without --test (the set records cifar10-folder:DIR/train as its source)."""
    from PIL import Image

    from rapidinr.sources.datasets import load_source
    from rapidinr.training.loop import load_train_data, test_source_for

    for split, n in (("train", 3), ("test", 2)):
        for label, cls in enumerate(("airplane", "automobile")):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (label * 100, i * 50, 10)).save(tmp_path / split / cls / f"{i:04d}.png")
    spec = f"cifar10-folder:{tmp_path}"
    assert test_source_for(f"{spec}/train") == spec and test_source_for(spec) == spec
    from_source = load_train_data(spec)
    assert len(from_source.labels) == 6 and from_source.test_labels.tolist() == [0, 0, 1, 1]
    train = load_source(spec, split="train")
    inrs = encode(train.images, "1x8", steps=2, labels=train.labels, class_names=train.class_names, progress=False)
    inrs.meta["source"] = train.source
    inrs.save(tmp_path / "train.rinr")
    from_set = load_train_data(str(tmp_path / "train.rinr"))
    assert from_set.test_images.shape == (4, 3, 8, 8) and from_set.test_labels.tolist() == [0, 0, 1, 1]
