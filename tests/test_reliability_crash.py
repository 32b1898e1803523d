"""Crash safety: kill -9 at random moments, ``--resume``, a full disk, a read-only target.

The kill test runs the real command (``python -m rapidinr encode``) in a subprocess and kills
it with SIGKILL at seeded random moments; the resumed file must equal an uninterrupted run's
bitwise for every image (each image's init is seeded by its global index).
"""
from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rapidinr import load
from rapidinr.cli import main
from rapidinr.codec import fileformat
from rapidinr.sources.datasets import ImageSet

N, BATCH = 128, 4  # 32 chunks, each a fraction of a second: enough for 6 kills on a fast machine
ENCODE = ["encode", "default", "--limit", str(N), "--batch-size", str(BATCH), "--steps", "60",
          "--arch", "2x8", "--quiet"]
QUICK = ["encode", "default", "--batch-size", str(BATCH), "--steps", "4", "--arch", "1x4", "--quiet"]


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def chunk_files(partial: Path) -> int:
    return len(list(partial.glob("chunk-*.rinrchunk"))) if partial.is_dir() else 0


def assert_same_set(a, b) -> None:
    assert len(a) == len(b) == N
    assert torch.equal(a.dense_params(), b.dense_params()), "a resumed chunk differs from the uninterrupted run"
    assert torch.equal(a.psnr, b.psnr)
    assert torch.equal(a.labels, b.labels)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in this process with the killed runs' single thread."""
    out = tmp_path_factory.mktemp("ref") / "ref.rinr"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*ENCODE, "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return load(out)


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.mark.slow
def test_kill_minus_9_at_random_moments_then_resume(tmp_path, reference):
    rng = random.Random(6)
    out = tmp_path / "set.rinr"
    partial = tmp_path / "set.rinr.partial"
    command = [sys.executable, "-m", "rapidinr", *ENCODE, "-o", str(out)]
    kills, log = 0, []
    for attempt in range(12):
        if kills == 6:
            break
        before = chunk_files(partial)
        proc = subprocess.Popen(command + (["--resume"] if attempt else []), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        if rng.random() < 0.2:  # now and then anywhere, start-up and checkpoint opening included
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # mostly after this run finished 1 or 2 chunks of its own: mid-fit or mid-write
            goal = before + rng.randint(1, 2)
            while chunk_files(partial) < goal and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        if out.exists() and not partial.exists():
            break  # the kill came after the file was complete, while the process was exiting
        kills += 1
        log.append(chunk_files(partial))
        assert not out.exists(), "a killed first run must not leave an output file"
    print(f"\n{kills} kills; chunks on disk after each: {log}")
    assert kills >= 5
    pending, on_disk = partial.exists() or not out.exists(), chunk_files(partial)
    finish = subprocess.run(command + ["--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    if pending:
        assert finish.returncode == 0, finish.stderr
        assert load(out).meta["resumed_chunks"] == on_disk  # every finished chunk was reused
    else:  # a kill landed after the run had finished: nothing to resume, and the file is not replaced
        assert finish.returncode == 2 and "no interrupted run" in finish.stderr
    result = load(out)
    assert_same_set(result, reference)
    assert all_files(tmp_path) == ["set.rinr"], "temporaries or checkpoints left behind"


def test_resume_cleans_a_temporary_left_by_a_kill_during_the_final_write(tmp_path):
    out = tmp_path / "set.rinr"
    stale = tmp_path / ".set.rinr.abc123.tmp"
    stale.write_bytes(b"half a file")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    other = tmp_path / ".other.rinr.abc123.tmp"  # another file's temporary: not ours to remove
    other.write_bytes(b"x")
    assert main([*QUICK, "-o", str(out), "--limit", "8", "--resume"]) == 0
    assert all_files(tmp_path) == [".other.rinr.abc123.tmp", "set.rinr"]


def test_a_damaged_checkpoint_chunk_is_refitted_not_trusted(tmp_path):
    out = tmp_path / "set.rinr"
    from rapidinr.core.config import Arch, FitConfig
    from rapidinr.encoding.runner import encode_to_file
    from rapidinr.sources.datasets import load_source

    data = load_source("default", limit=12)
    arch = Arch.parse("1x4", 1)
    cfg = FitConfig(steps=4, chunk_size=BATCH)
    calls = []

    class Stop(Exception):
        pass

    def save_then_maybe_stop(original):
        def wrapped(self, index, params, psnr, refits, fingerprint):
            original(self, index, params, psnr, refits, fingerprint)
            calls.append(index)
            if index == 1:
                raise Stop  # a crash right after chunk 1 reached the disk
        return wrapped

    from rapidinr.encoding import runner as encoder

    original = encoder.Checkpoint.save
    encoder.Checkpoint.save = save_then_maybe_stop(original)
    try:
        with pytest.raises(Stop):
            encode_to_file(ImageSet(data.images, data.labels), out, arch, cfg, "cpu", progress=False)
    finally:
        encoder.Checkpoint.save = original
    partial = tmp_path / "set.rinr.partial"
    chunk1 = partial / "chunk-000001.rinrchunk"
    raw = bytearray(chunk1.read_bytes())
    raw[-3] ^= 0xFF
    chunk1.write_bytes(bytes(raw))
    resumed = encode_to_file(ImageSet(data.images, data.labels), out, arch, cfg, "cpu", resume=True, progress=False)
    assert resumed.meta["resumed_chunks"] == 1  # chunk 0 kept, chunk 1 refitted
    fresh = encode_to_file(ImageSet(data.images, data.labels), tmp_path / "fresh.rinr", arch, cfg, "cpu", progress=False)
    assert torch.equal(resumed.dense_params(), fresh.dense_params())
    assert not partial.exists()


def test_resume_never_replaces_a_finished_file(tmp_path, capsys):
    out = tmp_path / "set.rinr"
    out.write_bytes(b"a finished file")
    assert main([*QUICK, "-o", str(out), "--limit", "4", "--resume"]) == 2
    assert "no interrupted run" in capsys.readouterr().err
    assert out.read_bytes() == b"a finished file" and all_files(tmp_path) == ["set.rinr"]


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "set.rinr"
    partial = tmp_path / "set.rinr.partial"
    partial.mkdir()
    fileformat.write_atomic(partial / "manifest.json", b'{"images": 3}')
    assert main([*QUICK, "-o", str(out), "--limit", "4"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*QUICK, "-o", str(out), "--limit", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "Traceback" not in err
    assert partial.is_dir() and not out.exists()


# -- full disk and read-only target ---------------------------------------------------------------

def _fail_after(monkeypatch, count: int, err: int):
    """Make ``fileformat.write_atomic``'s writes fail with ``err`` after ``count`` good ones."""
    real_fsync = os.fsync
    state = {"left": count}

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return real_fsync(fd)  # the folder's fsync after a rename: not a write of a file
        if state["left"] <= 0:
            raise OSError(err, os.strerror(err))
        state["left"] -= 1
        return real_fsync(fd)

    monkeypatch.setattr(fileformat.os, "fsync", fsync)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_disk_full_or_read_only_mid_run_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch, err):
    """Simulated by monkeypatching the fsync inside write_atomic (works unprivileged)."""
    out = tmp_path / "set.rinr"
    _fail_after(monkeypatch, 3, err)  # the manifest and two chunks reach the disk, then the disk fails
    assert main([*QUICK, "-o", str(out), "--limit", "16"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and os.strerror(err) in message and "chunk-000002" in message
    partial = tmp_path / "set.rinr.partial"
    assert all_files(tmp_path) == ["set.rinr.partial", "set.rinr.partial/chunk-000000.rinrchunk",
                                   "set.rinr.partial/chunk-000001.rinrchunk", "set.rinr.partial/manifest.json"]
    for chunk in partial.glob("chunk-*"):
        fileformat.read(chunk)  # intact
    monkeypatch.undo()
    assert main([*QUICK, "-o", str(out), "--limit", "16", "--resume"]) == 0
    assert load(out).meta["resumed_chunks"] == 2
    assert all_files(tmp_path) == ["set.rinr"]


def test_final_write_failing_keeps_the_checkpoint_and_the_old_file(tmp_path, capsys, monkeypatch):
    out = tmp_path / "set.rinr"
    out.write_bytes(b"the old file")
    _fail_after(monkeypatch, 1 + 16 // BATCH, errno.ENOSPC)  # manifest + all chunks, then the final file
    assert main([*QUICK, "-o", str(out), "--limit", "16", "--overwrite"]) == 2
    assert "set.rinr: cannot write" in capsys.readouterr().err
    assert out.read_bytes() == b"the old file"
    assert chunk_files(tmp_path / "set.rinr.partial") == 16 // BATCH
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 24 kB tmpfs (needs root and mount rights; skipped where there are none)."""
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=24k", "tmpfs", str(point)):
        pytest.skip("cannot mount a tmpfs here")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_real_full_disk_then_resume_after_space_is_freed(tiny_tmpfs, capsys):
    out = tiny_tmpfs / "set.rinr"
    assert main([*QUICK, "-o", str(out), "--limit", "40"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "No space left on device" in message
    chunks = chunk_files(tiny_tmpfs / "set.rinr.partial")
    assert chunks >= 1
    assert not out.exists() and not [p for p in tiny_tmpfs.rglob("*.tmp")]
    assert _mount("-o", "remount,size=1m", str(tiny_tmpfs))
    assert main([*QUICK, "-o", str(out), "--limit", "40", "--resume"]) == 0
    assert load(out).meta["resumed_chunks"] == chunks
    assert all_files(tiny_tmpfs) == ["set.rinr"]


def test_real_read_only_target(tiny_tmpfs, capsys):
    assert _mount("-o", "remount,ro", str(tiny_tmpfs))
    assert main([*QUICK, "-o", str(tiny_tmpfs / "set.rinr"), "--limit", "8"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "Read-only file system" in message
