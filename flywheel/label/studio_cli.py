"""`flywheel label push|pull|audit`: the day's review batch in Label Studio, and the label audit.

    flywheel label push --day 2026-11-24     create/update the day's project, import open tasks + suspects
    flywheel label pull --day 2026-11-24     land new annotations in landing/corrections/ (the
                                             corrections sensor merges them)
    flywheel label audit --day 2026-11-24    rank likely wrong merged labels (never changes one)

The server and token come from --url/--api-key or LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from flywheel.depot.cli import lake_from


def register(lsub: argparse._SubParsersAction) -> None:
    for name, help_, func in (
            ("push", "create or update the day's Label Studio project and import its tasks", run_push),
            ("pull", "bring the day's submitted Label Studio annotations back as corrections", run_pull)):
        p = lsub.add_parser(name, help=help_)
        p.add_argument("--lake", help="lake path or URI (default: the local deployment's lake)")
        p.add_argument("--day", required=True, help="capture day, YYYY-MM-DD")
        p.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", "http://127.0.0.1:8080"),
                       help="Label Studio base URL (default: $LABEL_STUDIO_URL or http://127.0.0.1:8080)")
        p.add_argument("--api-key", default=None, help="API token (default: $LABEL_STUDIO_API_KEY)")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)
    a = lsub.add_parser("audit", help="find likely wrong merged labels of a day (cleanlab, barcode, weight)")
    a.add_argument("--lake", help="lake path or URI (default: the local deployment's lake)")
    a.add_argument("--day", required=True, help="capture day, YYYY-MM-DD")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=run_audit)


def _client(args: argparse.Namespace):  # noqa: ANN202 - label_studio_sdk.LabelStudio
    from flywheel.label.studio import connect

    key = args.api_key or os.environ.get("LABEL_STUDIO_API_KEY")
    if not key:
        raise SystemExit("no Label Studio token: pass --api-key or set LABEL_STUDIO_API_KEY")
    return connect(args.url, key)


def _print(args: argparse.Namespace, out: dict, text: str) -> None:
    print(json.dumps(out) if args.json else text)


def run_push(args: argparse.Namespace) -> int:
    from flywheel.label.studio import StudioError, StudioUnavailable, day_catalog, push_day

    lake = lake_from(args.lake)
    try:
        r = push_day(lake, args.day, _client(args), day_catalog(lake, args.day))
    except (StudioError, StudioUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = vars(r)
    _print(args, out, f"project {r.project_id} ({'created' if r.created else 'updated'}): "
                      f"{r.imported} task(s) imported ({r.suspects} suspects, {r.recreated} re-created), "
                      f"{r.already} already there")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from flywheel.depot.index import frame_tables
    from flywheel.label.corrections import index_frame_days
    from flywheel.label.studio import StudioError, StudioUnavailable, day_catalog, pull_day

    lake = lake_from(args.lake)
    try:
        days = index_frame_days(frame_tables(lake))
        r = pull_day(lake, args.day, _client(args), day_catalog(lake, args.day), days)
    except (StudioError, StudioUnavailable, LookupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = vars(r)
    _print(args, out, f"{r.annotations} annotation(s) landed -> {r.batch_key or 'nothing new'}; quarantined "
                      f"{r.quarantined or 'none'}; tasks gone from Label Studio: {len(r.missing_tasks)}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from flywheel.label.audit import audit_day

    r = audit_day(lake_from(args.lake), args.day)
    out = {"frames": r.frames, "suspects": len(r.suspects), "estimated_error_rate": r.estimated_error_rate,
           "reasons": r.reasons, "model": r.model, "top": r.suspects[:10]}
    _print(args, out, f"{len(r.suspects)} suspect(s) of {r.frames} label(s) (estimated error rate "
                      f"{r.estimated_error_rate:.1%}; {r.reasons}); {r.model}")
    return 0
