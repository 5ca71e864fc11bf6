"""`flywheel label review`: the review queue from the command line.

    flywheel label review --day 2026-11-24                 open tasks of the day, in queue order
    flywheel label review --day 2026-11-24 --simulate      answer them with the simulated annotator
                                                           (ground truth of a simulated fleet day),
                                                           landing a CorrectionBatchV1 file
"""

from __future__ import annotations

import argparse
import json

from flywheel.defaults import default_of
from flywheel.depot.cli import lake_from
from flywheel.label.annotator import AnnotatorConfig


def register(sub: argparse._SubParsersAction) -> None:
    label = sub.add_parser("label", help="the Label stage: review tasks and corrections")
    lsub = label.add_subparsers(dest="label_command", required=True)
    r = lsub.add_parser("review", help="list open review tasks, or answer them with --simulate")
    r.add_argument("--lake", help="lake path or URI (default: the local deployment's lake)")
    r.add_argument("--day", required=True, help="capture day, YYYY-MM-DD")
    r.add_argument("--simulate", action="store_true",
                   help="answer the open tasks from simulator ground truth (demo, benchmarks)")
    r.add_argument("--error-rate", type=float, default=default_of(AnnotatorConfig, "error_rate"),
                   help="share of wrong answers (default 2 %%)")
    r.add_argument("--annotator", default=default_of(AnnotatorConfig, "annotator"),
                   help="annotator id in the corrections")
    r.add_argument("--seed", type=int, default=0, help="the fleet simulation's seed (and the error draw)")
    r.add_argument("--stores", type=int, default=3, help="stores of the simulated world")
    r.add_argument("--carts", type=int, help="carts of the fleet run (default: from the device ids)")
    r.add_argument("--minutes", type=float, help="minutes of the fleet run (default: from the frames)")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=run_review)
    from flywheel.label.studio_cli import register as register_studio

    register_studio(lsub)  # push, pull, audit


def run_review(args: argparse.Namespace) -> int:
    from flywheel.label.annotator import answered_task_ids
    from flywheel.label.review_tasks import read_tasks

    lake = lake_from(args.lake)
    tasks = read_tasks(lake, args.day)
    done = answered_task_ids(lake, args.day)
    open_tasks = [t for t in tasks if t.task_id not in done]
    if not args.simulate:
        rows = [{"task_id": t.task_id, "kind": t.kind, "reason": t.reason, "frames": len(t.frame_ids),
                 "proposed": t.proposed_label, "confidence": t.confidence} for t in open_tasks]
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"{len(open_tasks)} open of {len(tasks)} tasks on {args.day}")
            for x in rows:
                print(f"  {x['task_id']}  {x['kind']:<8} {x['frames']:>3} frame(s)  {x['proposed']}  "
                      f"({x['reason']})")
        return 0
    from flywheel.label.annotator import fleet_truth_lookup, simulate_review
    from flywheel.learner.reference_sets import catalog_skus

    ids = sorted({f for t in open_tasks for f in t.frame_ids})  # the annotator sees every frame
    truth = fleet_truth_lookup(lake, args.day, ids, seed=args.seed, stores=args.stores,
                               carts=args.carts, minutes=args.minutes)
    config = AnnotatorConfig(error_rate=args.error_rate, seed=args.seed, annotator=args.annotator)
    report = simulate_review(lake, args.day, open_tasks, sorted(catalog_skus(lake)), truth, config)
    out = {"tasks_answered": report.tasks_answered, "frames_answered": report.frames_answered,
           "tasks_without_truth": report.tasks_without_truth, "wrong_answers": report.wrong_answers,
           "human_seconds": round(report.seconds, 1), "batch": report.batch_key}
    print(json.dumps(out) if args.json else
          f"answered {out['tasks_answered']} task(s) ({out['frames_answered']} frames) in "
          f"{out['human_seconds']} s of simulated human time -> {out['batch'] or 'nothing to land'}")
    return 0
