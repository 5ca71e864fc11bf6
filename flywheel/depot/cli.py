"""`flywheel search`, `flywheel sql`, `flywheel replay`: the Depot from the command line.

The lake is `--lake` (a path, file:// or s3:// URI), else FLYWHEEL_LAKE_URI, else FLYWHEEL_LAKE_ROOT,
else var/lake under the repo (the local deployment's lake). S3 credentials come from AWS_* variables.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edge_agent.lake import Lake, S3Options, open_lake

REPO_ROOT = Path(__file__).resolve().parents[2]


def lake_from(arg: str | None) -> Lake:
    uri = arg or os.environ.get("FLYWHEEL_LAKE_URI") or os.environ.get("FLYWHEEL_LAKE_ROOT") \
        or str(REPO_ROOT / "var" / "lake")
    return open_lake(uri, S3Options() if uri.startswith("s3://") else None)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("search", help="search captured frames (filters, similarity, text)")
    s.add_argument("--lake", help="lake path or URI (default: the local deployment's lake)")
    s.add_argument("--store")
    s.add_argument("--device")
    s.add_argument("--from", dest="date_from", help="first capture day, YYYY-MM-DD")
    s.add_argument("--to", dest="date_to", help="last capture day, YYYY-MM-DD")
    s.add_argument("--trigger", help="trigger rule name (clips it captured)")
    s.add_argument("--trigger-frames", action="store_true", help="only frames where a trigger fired")
    s.add_argument("--min-confidence", type=float)
    s.add_argument("--max-confidence", type=float)
    s.add_argument("--model-version")
    s.add_argument("--label", help="device model's top-1 label; 'none' = predicted nothing")
    s.add_argument("--like-clip", help="clip id: frames like this clip")
    s.add_argument("--like-frame", help="frame id: frames like this frame")
    s.add_argument("--like-image", help="image file: frames like it")
    s.add_argument("--text", help="text query (needs a CLIP index)")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true", help="print JSON lines")
    s.set_defaults(func=run_search)

    q = sub.add_parser("sql", help="DuckDB SQL over the depot (views: frames, fleet, quarantine)")
    q.add_argument("query")
    q.add_argument("--lake")
    q.set_defaults(func=run_sql)

    r = sub.add_parser("replay", help="render a clip as video + timeline and a PNG contact sheet")
    r.add_argument("clip_id")
    r.add_argument("--lake")
    r.add_argument("--day", help="capture day, when known (faster lookup)")
    r.add_argument("--out", type=Path, default=Path("."), help="directory for <clip>.mp4/.png")
    r.set_defaults(func=run_replay)


def run_search(args: argparse.Namespace) -> int:
    from flywheel.depot.search import SearchQuery, search

    q = SearchQuery(store=args.store, device=args.device, date_from=args.date_from, date_to=args.date_to,
                    trigger=args.trigger, trigger_frames_only=args.trigger_frames,
                    min_confidence=args.min_confidence, max_confidence=args.max_confidence,
                    model_version=args.model_version, label=args.label, like_clip=args.like_clip,
                    like_frame=args.like_frame, like_image=args.like_image, text=args.text,
                    limit=args.limit)
    hits = search(lake_from(args.lake), q)
    if args.json:
        for h in hits:
            print(json.dumps(h.as_dict()))
        return 0
    print(f"{'clip_id':32}  {'frame':>5}  {'captured_at':25}  {'store':10} {'device':10} "
          f"{'prediction':14} {'conf':>5} {'dist':>6}  thumbnail")
    for h in hits:
        dist = f"{h.distance:6.3f}" if h.distance is not None else "     -"
        print(f"{h.clip_id:32}  {h.frame_index:5d}  {str(h.captured_at)[:25]:25}  {h.store_id:10.10} "
              f"{h.device_id:10.10} {str(h.prediction or '-'):14.14} {h.confidence:5.2f} {dist}  "
              f"{h.thumbnail}")
    print(f"{len(hits)} frames")
    return 0


def run_sql(args: argparse.Namespace) -> int:
    from flywheel.depot.sql import run_sql as sql

    cols, rows = sql(lake_from(args.lake), args.query)
    print("\t".join(cols))
    for row in rows:
        print("\t".join("" if v is None else str(v) for v in row))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from flywheel.depot.replay import render_replay

    rep = render_replay(lake_from(args.lake), args.clip_id, day=args.day, out_dir=args.out)
    print(f"replay: {rep.video_path} ({rep.frames} frames)\ncontact sheet: {rep.sheet_path}")
    return 0
