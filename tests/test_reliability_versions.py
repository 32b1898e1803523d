"""Format versions: a file of another .rinr version is refused with its version and what to do."""
from __future__ import annotations

import pytest

from rapidinr import UserError, load
from rapidinr.cli import main
from rapidinr.codec import fileformat
from rapidinr.encoding.runner import Checkpoint


def write_as(path, inrs, **changes) -> None:
    """A copy of a valid file with header fields changed (``None`` deletes the field)."""
    header = {"format": fileformat.MAGIC_KEY, "format_version": fileformat.FORMAT_VERSION, **inrs.header()}
    for key, value in changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    fileformat.write_atomic(path, fileformat._serialize(inrs.tensors(), header))


def test_current_version_reads(tiny_set, tmp_path):
    write_as(tmp_path / "now.rinr", tiny_set)
    assert len(load(tmp_path / "now.rinr")) == len(tiny_set)
    assert fileformat.FORMAT_VERSION == 2


def test_version_1_reads_with_a_warning(tiny_set, tmp_path):
    write_as(tmp_path / "old.rinr", tiny_set, format_version=1)
    with pytest.warns(fileformat.FormatWarning, match="header is not covered by the checksum"):
        assert len(load(tmp_path / "old.rinr")) == len(tiny_set)


@pytest.mark.parametrize("version,says", [
    (0, ["format version 0", "reads versions 1 and 2", "re-encode", "rapidinr encode"]),
    (3, ["format version 3", "reads versions 1 and 2", "upgrade rapidinr"]),
    (None, ["no format version", "re-encode"]),
    ("1", ["format version '1'", "re-encode"]),
    (True, ["format version True"]),
])
def test_other_versions_are_refused_with_what_to_do(tiny_set, tmp_path, capsys, version, says):
    path = tmp_path / "other.rinr"
    write_as(path, tiny_set, format_version=version)  # None: no version field at all
    with pytest.raises(UserError) as info:
        load(path)
    for text in says:
        assert text in str(info.value)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other.rinr" in err and says[0] in err


def test_an_older_checkpoint_chunk_is_refitted_not_mixed_in(tiny_set, tmp_path):
    out = tmp_path / "set.rinr"
    checkpoint = Checkpoint(out, {"images": 8})
    checkpoint.start(resume=False)
    header = {"format": fileformat.MAGIC_KEY, "format_version": 0, "chunk": 0, "refits": 0, "fingerprint": "f"}
    old = checkpoint.dir / "chunk-000000.rinrchunk"
    params = tiny_set.dense_params()
    fileformat.write_atomic(old, fileformat._serialize({"params": params, "psnr": tiny_set.psnr}, header))
    checkpoint.start(resume=True)
    assert checkpoint.fitted(0, "f", *params.shape) is None
    assert not old.exists()
    checkpoint.remove()
