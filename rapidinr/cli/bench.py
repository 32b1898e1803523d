"""`rapidinr bench pipelines`: the Fig. 8 grid (pipelines × worker counts × datasets) → one results JSON."""
from __future__ import annotations

from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.core.results import results_document, write_results
from rapidinr.study.grid import GridConfig, run_pipeline_grid
from rapidinr.training.loaders import PIPELINES, check_workers


def add(sub):
    p = sub.add_parser("bench", help="benchmarks (bench pipelines: the Fig. 8 training-time grid)")
    what = p.add_subparsers(dest="bench", required=True)  # parser class inherited: errors exit 2
    g = what.add_parser("pipelines", help="time ResNet-18 training through every pipeline, worker count and dataset")
    g.add_argument("--data", action="append", help="SOURCE[@HxW][#ARCH], repeatable (default: default@28x28); "
                   "'photos@32x32' are crops of the bundled photos labelled by photo")
    g.add_argument("--pipelines", default="inr,tensor,jpeg,dali,nvjpeg", help="comma-separated (default: all)")
    g.add_argument("--workers", default="1,2", help="worker counts for jpeg and dali (default 1,2)")
    g.add_argument("--epochs", type=int, default=1)
    g.add_argument("--limit", type=int, default=1024, help="training images per dataset (default 1024)")
    g.add_argument("--test-limit", type=int, default=500)
    g.add_argument("--encode-steps", type=int, default=100, help="fit steps when the grid encodes the INR itself")
    g.add_argument("--rinr", action="append", default=[], help="ENTRY=FILE.rinr: use this set for the inr pipeline")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--jpeg-quality", type=int, default=90)
    g.add_argument("--device", default=None)
    g.add_argument("-o", "--output", required=True, help="the results JSON to write")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(run=run)


def run(args) -> int:
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    bad = [p for p in pipelines if p not in PIPELINES]
    if bad or not pipelines:
        raise UserError(f"--pipelines: unknown pipeline {bad[0] if bad else '(none)'!r} "
                        f"(choose from {', '.join(PIPELINES)})")
    try:
        workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        raise UserError(f"--workers: expected comma-separated integers, got {args.workers!r}") from None
    for w in workers:
        check_workers("jpeg", w)
    rinr = {}
    for item in args.rinr:
        entry, eq, path = item.rpartition("=")
        if not eq:
            raise UserError(f"--rinr {item!r}: expected ENTRY=FILE.rinr")
        rinr[entry] = path
    if args.epochs < 1 or args.limit < 1:
        raise UserError("--epochs and --limit must be >= 1")
    device = resolve_device(args.device)
    entries = args.data or ["default@28x28"]
    grid = GridConfig(tuple(pipelines), tuple(workers), args.epochs, args.limit, args.test_limit,
                      args.encode_steps, args.batch_size, args.jpeg_quality)
    out = run_pipeline_grid(entries, grid, device, rinr, not args.quiet)
    settings = {"data": entries, **grid.to_json(), "device": str(device)}
    write_results(args.output, results_document("pipelines", "Fig. 8: training time per pipeline", settings, out))
    print(f"wrote {args.output}: {len(out['rows'])} runs, {len(out['skipped'])} skipped")
    return 0
