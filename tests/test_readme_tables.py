"""The README's result tables are the committed results JSON, printed by benchmarks/readme_tables.py."""
from __future__ import annotations

from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", ["rd-32", "rd-64", "rd-128", "compact-32", "compact-64"])
def test_readme_tables_equal_what_the_committed_results_print(benchmark_script, capsys, name):
    """The README's tables (rd-32, compact-32) and every BD / gain line are the script's output."""
    module = benchmark_script("readme_tables")
    assert module.main([name]) == 0
    printed = capsys.readouterr().out.split("\n\n")
    table, claims = printed[1].strip(), printed[2].strip()  # after the "### name (file)" line: the table, its BD line
    assert table.startswith("| ") and table.count("\n") >= 5 and claims.startswith("BD-rate")
    readme = README.read_text()
    if name in ("rd-32", "compact-32"):
        assert table in readme, f"README's {name} table differs from `python benchmarks/readme_tables.py {name}`"
    assert claims in " ".join(readme.split()), f"README's {name} BD line differs from `python benchmarks/readme_tables.py {name}`"


def test_an_inr_row_shows_its_largest_network_within_the_cap(benchmark_script):
    module = benchmark_script("readme_tables")
    entry = {"bytes": [300.0, 600.0, 900.0], "psnr": [30.0, 33.0, 36.0]}
    assert [module._cell(entry, k, cap) for k, cap in enumerate([200, 640, 1200])] == ["–", "33.00 (600)",
                                                                                          "36.00 (900)"]
    codec = {"cap": [320, 640], "psnr": [None, 35.5], "bytes": [None, 612.4]}
    assert [module._cell(codec, k, cap) for k, cap in enumerate([320, 640])] == ["unmet", "35.50 (612)"]
