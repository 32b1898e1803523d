"""`rapidinr figures`: regenerate every figure headless (PNG, SVG and the JSON data behind each)."""
from __future__ import annotations

from rapidinr.core.devices import resolve_device
from rapidinr.core.errors import UserError
from rapidinr.study.figures import producers, write_figures


def add(sub):
    p = sub.add_parser("figures", help="regenerate the paper's figures (PNG, SVG, JSON) headless")
    p.add_argument("-o", "--output", help="folder to write NAME.png, NAME.svg, NAME.json into (required)")
    p.add_argument("--quick", action="store_true", help="small grids that run in seconds on a CPU")
    p.add_argument("--only", help="comma-separated figure names (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered figures and exit")
    p.add_argument("--results", help="folder of full-size results JSON (default: benchmarks/results)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.list:
        for p in producers():
            print(f"{p.name:<24} {p.paper:<8} {p.title}")
        return 0
    if not args.output:
        raise UserError("figures: -o/--output DIR is required")
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    device = resolve_device(args.device)
    print(f"rapidinr figures: {'quick' if args.quick else 'full-size'} figures on {device} into {args.output}")
    if not args.quick and device.type == "cpu":
        print("  note: full-size figures without committed results fit the paper's settings, which takes "
              "hours on a CPU; --quick runs in under a minute")
    done = write_figures(args.output, quick=args.quick, device=str(device), only=only,
                         results_dir=args.results, progress=not args.quick)
    failed = [d for d in done if "error" in d]
    print(f"  wrote {len(done) - len(failed)} figure(s); {len(failed)} skipped")
    return 2 if failed else 0
