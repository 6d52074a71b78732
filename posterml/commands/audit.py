"""``posterml audit DATASET``: the posters whose genres look wrong, as a csv to review."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from posterml.evaluation.audit import AuditSettings

DESCRIPTION = "list the posters whose genres look wrong, as a csv the review page opens"
HELP = """Judge every poster of the folder dataset DATASET with the recipe's model trained
without it (EfficientNet-Lite0 features, balanced RBF SVMs, --folds folds, calibrated as
the decision layer does) and list those whose labels confident learning (cleanlab) doubts,
worst first. The csv (default DATASET/audit.csv) has the review page's columns: `genres`
is the proposed label (given genres less `suspect_genres`, plus `missing_genres`), `maybe`
the genres in dispute, `review_priority` 1 - `label_quality`; `given_genres` is what the
dataset says now. Review it with `posterml review CSV --to FIXES` (a new folder; the page
serves images under the csv's folder only), then `posterml add FIXES --to DATASET
--replace`; or edit `genres` in a spreadsheet, write yes in `reviewed` and `posterml add
CSV --to DATASET --replace`. Unreadable images are reported and skipped. About 1.5 minutes
for 5,500 posters whose features are cached (2 CPU cores)."""


def run_audit(args: argparse.Namespace) -> int:
    """0 when the csv is written, 1 when the dataset cannot be audited."""
    from posterml.data.dataset import DatasetError, load_folder
    from posterml.evaluation.audit import (
        AuditError,
        audit_dataset,
        audit_frame,
        genre_counts,
        write_audit_csv,
    )
    from posterml.progress import hide_library_bars

    if args.no_progress:
        hide_library_bars()
    root = Path(args.dataset).expanduser()
    out = Path(args.out) if args.out else root / "audit.csv"
    settings = AuditSettings(
        backbone=args.backbone,
        C=args.C,
        gamma_scale=args.gamma_scale,
        folds=args.folds,
        seed=args.seed,
    )
    try:
        audit = audit_dataset(load_folder(root), settings, progress=not args.no_progress)
    except (DatasetError, AuditError) as exc:
        print(f"posterml audit: {exc}", file=sys.stderr)
        return 1
    table = audit_frame(audit, out.parent, args.top)
    write_audit_csv(table, out)
    n = len(audit.dataset)
    print(
        f"{audit.n_flagged} of {n} poster(s) flagged ({audit.n_flagged / n:.0%}); "
        f"{len(table)} written to {out}, worst first"
    )
    if audit.failures:
        print(f"{len(audit.failures)} unreadable image(s) skipped (listed above)")
    for what, mask in (("suspect", audit.suspects.suspect), ("missing", audit.suspects.missing)):
        counts = genre_counts(mask[audit.suspects.flagged])
        shown = ", ".join(f"{g} {c}" for g, c in list(counts.items())[:6])
        print(f"most often {what}: {shown or 'none'}")
    if not out.resolve().is_relative_to(root.resolve()):
        print(
            f"note: the review page serves only images under the csv's folder: write the csv "
            f"inside {root} (the default) to review it there"
        )
    else:
        # Into a folder of its own: every poster is in DATASET already, so the page would
        # count them all as reviewed and tick the old genres instead of the proposed ones.
        fixes = root.with_name(root.name + "-fixes")
        print(f"review them: posterml review {out} --to {fixes}")
        print(f"then relabel: posterml add {fixes} --to {root} --replace")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("audit", help=DESCRIPTION, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="a folder with labels.csv and images")
    parser.add_argument("--out", default="", help="the csv to write (default DATASET/audit.csv)")
    parser.add_argument(
        "--top", type=int, default=0, help="write only the N worst posters (default: all flagged)"
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=AuditSettings.folds,
        help=f"out-of-fold folds (default {AuditSettings.folds})",
    )
    parser.add_argument("--backbone", default=AuditSettings.backbone)
    parser.add_argument(
        "--C", type=float, default=AuditSettings.C, help=f"SVM C (default {AuditSettings.C})"
    )
    parser.add_argument(
        "--gamma-scale",
        type=float,
        default=AuditSettings.gamma_scale,
        help=f"RBF gamma as a multiple of sklearn's 'scale' (default {AuditSettings.gamma_scale})",
    )
    parser.add_argument("--seed", type=int, default=AuditSettings.seed)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_audit)
    return parser
