"""Print the README's result tables as Markdown, computed from the committed results JSON.

The README's rate–distortion and compact-store tables are pasted from this script's output, so
every number in them can be traced to (and regenerated from) a file in ``benchmarks/results``:

    python benchmarks/readme_tables.py            # every table
    python benchmarks/readme_tables.py rd-32      # one: rd-32, rd-64, rd-128, compact-32, compact-64
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# README row label → results entry name, in the README's order
RD_ROWS = {
    "JPEG, Pillow defaults (4:2:0)": "jpeg",
    "JPEG, optimized 4:4:4": "jpeg-opt",
    "WebP (method 6)": "webp",
    "AVIF": "avif",
    "JPEG 2000": "jp2",
    "JPEG XL (`[jxl]` extra)": "jxl",
    "best classical (envelope)": "best classical (envelope)",
    "INR, 8-bit hidden layers (the paper's store)": "INR 8-bit layer-wise",
    "INR, 8-bit all layers": "INR 8-bit all layers",
    "INR, `--preset compact` (random init)": "INR compact",
    "INR, `--preset compact` (learned init, the default)": "INR compact, learned init",
}


def _cell(entry: dict, k: int, cap: float) -> str:
    """One cap's cell: a codec's mean PSNR (mean bytes) at the cap, or an INR variant's largest
    architecture whose mean bytes fit it; "unmet" / "–" where nothing fits."""
    if "cap" in entry:
        if entry["psnr"][k] is None:
            return "unmet"
        return f"{entry['psnr'][k]:.2f} ({entry['bytes'][k]:.0f})"
    fits = [(b, p) for b, p in zip(entry["bytes"], entry["psnr"]) if b is not None and b <= cap]
    if not fits:
        return "–"
    b, p = max(fits)
    return f"{p:.2f} ({b:.0f})"


def rd_table(doc: dict) -> str:
    """The cap table of one rd-study results file, plus the BD line of its best INR variant."""
    caps = doc["settings"]["caps"]
    lines = ["| codec / variant | " + " | ".join(f"{c:g} B" for c in caps) + " |",
             "|---" * (len(caps) + 1) + "|"]
    for label, name in RD_ROWS.items():
        entry = doc["results"].get(name)
        if entry is not None:
            lines.append(f"| {label} | " + " | ".join(_cell(entry, k, c) for k, c in enumerate(caps)) + " |")
    best = (doc.get("best_inr_bd") or [{}])[0].get("test", "none")
    anchors = [r["anchor"] for r in doc.get("best_inr_bd") or []]
    paper = [r for a in anchors for r in doc.get("bd", []) if r["test"] == PAPER_STORE and r["anchor"] == a]
    return "\n".join(lines) + (f"\n\nBD-rate (BD-PSNR) of the best INR variant ({best}): "
                               + _bd_cells(doc.get("best_inr_bd") or [])
                               + f"; of the paper's store ({PAPER_STORE}): " + _bd_cells(paper))


PAPER_STORE = "INR 8-bit layer-wise"


def _bd_cells(rows: list[dict]) -> str:
    def cell(r: dict) -> str:
        psnr = "n/a" if r["bd_psnr_db"] is None else f"{r['bd_psnr_db']:+.2f} dB"
        return (f"{r['anchor']} {r['bd_rate_percent']:+.1f} % ({psnr})" if r["bd_rate_percent"] is not None
                else f"{r['anchor']} not enough overlap ({psnr} BD-PSNR)")
    return "; ".join(cell(r) for r in rows) or "none"


def compact_table(doc: dict) -> str:
    """The ablation table of a compact-store results file and its BD-rates."""
    res = doc["results"]
    lines = ["| store | B/image | PSNR dB | device B/image | decode speed |", "|---|---|---|---|---|"]
    for row in res["ablation"]:
        if row.get("bytes_per_image") is None:
            lines.append(f"| {row['row']} | {row.get('note', 'not measured')} | | | |")
            continue
        lines.append(f"| {row['row']} | {row['bytes_per_image']:.1f} | {row['psnr']:.2f} | "
                     f"{row['device_bytes_per_image']:.1f} | {row['decode_vs_today']:.2f}× |")
    def fmt(key: str) -> str:
        value = res[key].get(preset)
        return "n/a" if value is None else f"{value:+.1f} %"

    preset = res["preset_curve"]
    if res["bd_rate_vs_today_pct"].get(preset) is None:  # no learned init at this size: the preset from random
        preset = "compact, random init"
    key = "gain_over_jpeg_db" if preset == res["preset_curve"] else "random_init_gain_over_jpeg_db"
    gains = ", ".join("n/a" if c.get(key) is None else f"{c[key]:+.2f} dB at {c['cap']} B" + (
        f" ({c['jpeg444_over_cap']} JPEGs over the cap)" if c.get("jpeg444_over_cap") else "") for c in res["classic"])
    met = all(c.get(key) is not None and c[key] >= 1.0 for c in res["classic"])
    return "\n".join(lines) + (f"\n\nBD-rate of `{preset}`: {fmt('bd_rate_vs_today_pct')} against today's 8-bit "
                               f"store, {fmt('bd_rate_vs_jpeg444_pct')} against optimized 4:4:4 JPEG, "
                               f"{fmt('bd_rate_vs_webp_pct')} against WebP. Gain over optimized 4:4:4 JPEG at the "
                               f"JPEG's mean bytes: {gains}: at least 1 dB at every cap: "
                               f"{'yes' if met else 'no'}.")


TABLES = {
    "rd-32": ("rd-study-32x32-cpu.json", rd_table),
    "rd-64": ("rd-study-64x64-cpu.json", rd_table),
    "rd-128": ("rd-study-128x128-cpu.json", rd_table),
    "compact-32": ("compact_store-cpu.json", compact_table),
    "compact-64": ("compact_store-64x64-cpu.json", compact_table),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tables", nargs="*", choices=[[], *TABLES], help="which tables (default: all)")
    args = p.parse_args(argv)
    for name in args.tables or TABLES:
        file, make = TABLES[name]
        print(f"### {name} ({file})\n\n{make(json.loads((RESULTS / file).read_text()))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
