"""Routing rules on hand-built pre-label rows (unit); the LanceDB grouping and the Dagster asset are
exercised on a real fleet day in test_routing_fleet.py."""

from __future__ import annotations

import math

import pytest

from flywheel.label.routing import (
    AUDIT,
    AUTO,
    CONFLICT,
    DEFERRED,
    HUMAN,
    REVIEW,
    RoutingConfig,
    TimeModel,
    audit_sample_size,
    in_audit,
    route_day,
    wilson_interval,
)

DAY = "2026-11-24"
SKU_A, SKU_B = "4006381333931", "5012345678900"


def row(fid: str, label: str | None = SKU_A, conf: float = 0.99, *, dis: bool = False, mis: bool = False,
        clip: str = "c1") -> dict:
    return {"frame_id": fid, "clip_id": clip, "label": label, "confidence": conf, "disagreement": dis,
            "barcode_mismatch": mis}


def test_doubtful_go_first_most_doubtful_leading_and_confident_are_auto() -> None:
    rows = [row("f-ok1"), row("f-ok2"), row("f-low", conf=0.6),
            {**row("f-abst", None, 0.0), "candidates": [SKU_A, SKU_B]},  # the load cell narrowed it
            row("f-mis", conf=0.99, mis=True), row("f-dis", conf=0.98, dis=True)]
    r = route_day(DAY, rows, RoutingConfig(audit_rate=0.0))
    by = {x["frame_id"]: x for x in r.routes}
    assert by["f-ok1"]["route"] == AUTO and by["f-ok2"]["route"] == AUTO
    assert [t.frame_ids[0] for t in r.tasks] == ["f-abst", "f-mis", "f-low", "f-dis"]
    assert r.tasks[1].reason == "barcode_mismatch" and r.tasks[3].reason == "disagreement"
    assert all(by[f]["route"] == REVIEW and by[f]["task_id"] for f in ("f-low", "f-abst", "f-mis", "f-dis"))
    assert [t.rank for t in r.tasks] == [0, 1, 2, 3]


def test_budget_defers_the_rest_and_never_auto_accepts_them() -> None:
    tm = TimeModel()
    rows = [row(f"f{i}", conf=0.5) for i in range(10)]
    one = tm.expected_task_s(0.5, 30)
    r = route_day(DAY, rows, RoutingConfig(budget_s=3.5 * one, audit_rate=0.0))
    assert len(r.tasks) == 3 and math.isclose(r.planned_s, 3 * one, rel_tol=1e-6)
    assert r.count(DEFERRED) == 7 and r.count(AUTO) == 0


def test_expected_costs_follow_the_cited_time_model() -> None:
    tm = TimeModel()
    assert tm.verify_s == 1.6 and tm.box_s == 34.5 and tm.extreme_click_s == 7.0
    assert tm.pick_s(30) == 15.0
    assert tm.expected_task_s(None, 30) == 15.0  # nothing proposed: pick from scratch
    assert tm.expected_task_s(1.0, 30) == 1.6  # a sure proposal: one verification
    assert math.isclose(tm.expected_task_s(0.8, 30), 1.6 + 0.2 * 15.0)


def test_audit_sample_is_stable_about_the_rate_and_after_the_doubtful() -> None:
    ids = [f"frame-{i:05d}" for i in range(20000)]
    drawn = [f for f in ids if in_audit(f, 0.02, 0)]
    assert 0.017 < len(drawn) / len(ids) < 0.023
    assert drawn == [f for f in ids if in_audit(f, 0.02, 0)]  # the same frames on a re-run
    rows = [row(f) for f in ids[:2000]] + [row("zz-doubt", conf=0.1)]
    r = route_day(DAY, rows, RoutingConfig(audit_rate=0.02, budget_s=10_000))
    kinds = [t.kind for t in r.tasks]
    assert kinds[0] == REVIEW and set(kinds[1:]) == {AUDIT}
    assert r.count(AUDIT) == sum(in_audit(f, 0.02, 0) for f in ids[:2000])


def test_human_labelled_are_not_queued_again_and_conflicts_come_first() -> None:
    rows = [row("f1", conf=0.2), row("f2", conf=0.2), row("f3", conf=0.3)]
    r = route_day(DAY, rows, RoutingConfig(audit_rate=0.0), human_labelled={"f1"}, conflicts={"f3": SKU_B})
    by = {x["frame_id"]: x for x in r.routes}
    assert by["f1"]["route"] == HUMAN
    assert r.tasks[0].kind == CONFLICT and r.tasks[0].frame_ids == ["f3"]
    assert r.tasks[0].proposed_label == SKU_B and r.tasks[0].task_id.startswith("conflict-")
    assert by["f3"]["route"] == CONFLICT and by["f2"]["route"] == REVIEW


def test_a_group_is_one_task_labelled_through_its_most_doubtful_frame() -> None:
    rows = [row("a1", conf=0.7), row("a2", conf=0.4), row("a3", conf=0.8), row("b1", conf=0.5, clip="c2")]

    def group(doubtful: list[dict]) -> list[list[str]]:
        clips: dict[str, list[str]] = {}
        for d in doubtful:
            clips.setdefault(d["clip_id"], []).append(d["frame_id"])
        return list(clips.values())

    r = route_day(DAY, rows, RoutingConfig(audit_rate=0.0), group=group)
    assert [t.frame_ids for t in r.tasks] == [["a2", "a1", "a3"], ["b1"]]
    assert r.tasks[0].confidence == 0.4
    # same inputs, same task ids: a re-run rewrites the same queue
    again = route_day(DAY, rows, RoutingConfig(audit_rate=0.0), group=group)
    assert [t.task_id for t in again.tasks] == [t.task_id for t in r.tasks]


@pytest.mark.parametrize(("k", "n", "low", "high"), [(0, 50, 0.0, 0.0714), (2, 100, 0.0055, 0.0700),
                                                     (10, 10, 0.7225, 1.0)])
def test_wilson_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    rate, lo, hi = wilson_interval(k, n)
    assert rate == k / n
    assert lo == pytest.approx(low, abs=2e-4) and hi == pytest.approx(high, abs=2e-4)
    assert wilson_interval(0, 0) == (0.0, 0.0, 1.0)


def test_the_asset_config_takes_the_domain_defaults() -> None:
    from assets.label_review import ReviewConfig
    from flywheel.label.grouping import GroupingConfig

    cfg, dom = ReviewConfig(), RoutingConfig()
    assert (cfg.budget_s, cfg.accept_threshold, cfg.audit_rate, cfg.seed) == \
        (dom.budget_s, dom.accept_threshold, dom.audit_rate, dom.seed)
    assert (cfg.audit_half_width, cfg.class_quota) == (dom.audit_half_width, dom.class_quota)
    assert (cfg.max_review_tasks, cfg.trust_sensors) == (dom.max_review_tasks, dom.trust_sensors)
    assert cfg.near_duplicate_distance == GroupingConfig().max_distance


def test_trusting_a_human_calibration_accepts_flags_it_is_sure_about() -> None:
    human = '{"ensemble":"human-0a1b2c3d","teacher":"t1"}'
    default = '{"ensemble":"default-0a1b2c3d","teacher":"t1"}'
    rows = [{**row("f-sure", conf=0.99, mis=True), "labeler_versions": human},
            {**row("f-unsure", conf=0.8, dis=True), "labeler_versions": human},
            {**row("f-cold", conf=0.99, mis=True), "labeler_versions": default}]
    trusted = {r["frame_id"]: r["route"] for r in
               route_day(DAY, rows, RoutingConfig(audit_rate=0.0, trust_calibration=True)).routes}
    assert trusted == {"f-sure": AUTO, "f-unsure": REVIEW, "f-cold": REVIEW}
    strict = {r["frame_id"]: r["route"] for r in route_day(DAY, rows, RoutingConfig(audit_rate=0.0)).routes}
    assert strict == {"f-sure": REVIEW, "f-unsure": REVIEW, "f-cold": REVIEW}


def test_a_label_the_barcode_and_the_load_cell_both_vouch_for_is_accepted_whatever_vision_says() -> None:
    read = {"labeler": "barcode", "label": SKU_A, "confidence": 0.93}
    named = {"labeler": "weight", "label": SKU_A, "confidence": 0.6, "candidates": [SKU_A]}
    listed = {"labeler": "weight", "label": None, "confidence": 0.0, "candidates": [SKU_B, SKU_A]}
    elsewhere = {"labeler": "weight", "label": None, "confidence": 0.0, "candidates": [SKU_B]}
    teacher = {"labeler": "teacher", "label": SKU_B, "confidence": 0.4}
    rows = [{**row("f-named", mis=True, dis=True), "votes": [read, named, teacher]},
            {**row("f-listed", mis=True, dis=True), "votes": [read, listed, teacher]},
            {**row("f-read-only", mis=True, dis=True), "votes": [read, teacher]},  # one sensor: doubtful
            {**row("f-weight-out", mis=True, dis=True), "votes": [read, elsewhere, teacher]},
            {**row("f-unsure", conf=0.9, mis=True, dis=True), "votes": [read, named, teacher]}]
    routes = {r["frame_id"]: r["route"] for r in route_day(DAY, rows, RoutingConfig(audit_rate=0.0)).routes}
    assert routes == {"f-named": AUTO, "f-listed": AUTO, "f-read-only": REVIEW, "f-weight-out": REVIEW,
                      "f-unsure": REVIEW}
    off = route_day(DAY, rows, RoutingConfig(audit_rate=0.0, trust_sensors=False))
    assert off.count(AUTO) == 0


def test_a_short_list_makes_an_abstention_cheap() -> None:
    tm = TimeModel()
    assert tm.expected_task_s(None, 30, n_candidates=3) == 3.0  # scan three classes, not fifteen
    # answers: right proposal 1.6; the second candidate after rejecting the proposal 1.6 + 2 * 1.0;
    # not on the list: scan it, then pick from the catalog; "no product" is one look
    assert tm.answer_s(SKU_A, [SKU_A, "x", SKU_B], SKU_A, 30) == 1.6
    assert tm.answer_s(SKU_A, [SKU_A, "x", SKU_B], SKU_B, 30) == 1.6 + 2.0
    assert tm.answer_s(None, [SKU_B], SKU_B, 30) == 1.0
    assert tm.answer_s(None, [SKU_B], SKU_A, 30) == 1.0 + 15.0
    assert tm.answer_s(SKU_A, [], None, 30) == 1.6
    abst = {**row("f-abst", None, 0.0), "candidates": [SKU_A, SKU_B]}
    r = route_day(DAY, [abst], RoutingConfig(audit_rate=0))
    assert r.tasks[0].candidates == [SKU_A, SKU_B] and r.tasks[0].est_seconds == 2.0


def test_a_human_label_the_load_cell_rules_out_is_asked_again_once() -> None:
    from flywheel.label.routing import load_cell_rechecks

    weight = {"labeler": "weight", "label": None, "candidates": [SKU_A, "x"]}
    rows = [{**row(f, conf=0.2), "votes": [weight]} for f in ("f1", "f2", "f3", "f4")]
    human = {"f1": (SKU_A, "review-1"), "f2": (SKU_B, "review-2"), "f3": (SKU_B, "conflict-3"),
             "f4": (None, "review-4")}
    rechecks = load_cell_rechecks(rows, human)
    assert rechecks == {"f2": SKU_B}  # f1 fits, f3 was settled in a second look, f4 is "no product"
    r = route_day(DAY, rows, RoutingConfig(audit_rate=0.0), human_labelled=set(human), rechecks=rechecks)
    assert [(t.kind, t.frame_ids, t.proposed_label, t.reason) for t in r.tasks] == [
        (CONFLICT, ["f2"], SKU_B, "human vs load cell")]
    assert {x["frame_id"]: x["route"] for x in r.routes} == {"f1": HUMAN, "f2": CONFLICT, "f3": HUMAN,
                                                             "f4": HUMAN}


def test_the_audit_is_a_count_sized_for_the_interval_width() -> None:
    # Cochran: n0 = 1.96^2 * 0.02 * 0.98 / 0.05^2 = 30.1 -> 31; the finite population correction
    # audits fewer of a small day, and the count stops growing with the population
    assert audit_sample_size(10**6) == 31 and audit_sample_size(10_000) == 31
    assert audit_sample_size(36) == 17 and audit_sample_size(5) == 5 and audit_sample_size(0) == 0
    assert audit_sample_size(10**6, half_width=0.025) == 121  # half the width: four times the sample
    small = route_day(DAY, [row(f"s{i:05d}") for i in range(100)], RoutingConfig(budget_s=1e6))
    large = route_day(DAY, [row(f"s{i:05d}") for i in range(10_000)], RoutingConfig(budget_s=1e6))
    assert small.count(AUDIT) == audit_sample_size(100) == 24 and large.count(AUDIT) == 31
    again = route_day(DAY, [row(f"s{i:05d}") for i in range(10_000)], RoutingConfig(budget_s=1e6))
    assert {t.frame_ids[0] for t in again.tasks} == {t.frame_ids[0] for t in large.tasks}  # stable
    # frames audited in an earlier iteration of the day count towards the sample
    later = route_day(DAY, [row(f"s{i:05d}") for i in range(10_000)], RoutingConfig(budget_s=1e6), audited=25)
    assert later.count(AUDIT) == 6


def test_doubtful_work_is_a_quota_per_class_so_it_stays_flat_as_the_fleet_grows() -> None:
    skus = [f"400000000{k:04d}" for k in range(5)]

    def fleet(n_per_class: int) -> list[dict]:
        return [row(f"{k}-{i:04d}", sku, conf=0.3 + i / (10 * n_per_class), clip=f"c{k}-{i}")
                for k, sku in enumerate(skus) for i in range(n_per_class)]

    cfg = RoutingConfig(class_quota=4, audit_rate=0.0)
    one, ten = route_day(DAY, fleet(3), cfg), route_day(DAY, fleet(30), cfg)
    assert len(one.tasks) == 15 and len(ten.tasks) == 20  # 5 classes x min(n, 4): not 10x
    assert ten.count(DEFERRED) == 150 - 20 and ten.count(AUTO) == 0  # the rest wait, never auto
    # most doubtful first within a class, round-robin across classes (a budget cut stays fair)
    assert [t.frame_ids[0] for t in ten.tasks[:5]] == [f"{k}-0000" for k in range(5)]
    assert {r["reason"] for r in ten.routes if r["route"] == DEFERRED} == {"over the class quota (4)"}
    # a batch is a count too: the first 7 in round-robin order, the rest wait
    batch = route_day(DAY, fleet(30), RoutingConfig(class_quota=4, max_review_tasks=7, audit_rate=0.0))
    assert [t.frame_ids[0] for t in batch.tasks] == [*(f"{k}-0000" for k in range(5)), "0-0001", "1-0001"]
    assert sum(r["reason"] == "over the batch (7 tasks)" for r in batch.routes) == 20 - 7
    # the budget is a ceiling on top of the quota
    capped = route_day(DAY, fleet(30), RoutingConfig(class_quota=4, audit_rate=0.0, budget_s=30.0))
    assert capped.planned_s <= 30.0 and len(capped.tasks) < 20
    unlimited = route_day(DAY, fleet(30), RoutingConfig(class_quota=0, max_review_tasks=0, audit_rate=0.0,
                                                        budget_s=1e6))
    assert len(unlimited.tasks) == 150


def test_a_pick_from_the_catalog_waits_while_cheaper_doubtful_work_remains() -> None:
    cfg = RoutingConfig(audit_rate=0.0, max_task_s=8.0)
    cheap = {**row("f-cheap", conf=0.5), "candidates": [SKU_A, SKU_B]}  # verify, else a short list
    costly = row("f-costly", conf=0.2)  # probably wrong, nothing narrows it: 1.6 + 0.8 * 15 s
    first = route_day(DAY, [cheap, costly], cfg)
    assert [t.frame_ids for t in first.tasks] == [["f-cheap"]]
    (waits,) = [r for r in first.routes if r["frame_id"] == "f-costly"]
    assert waits["route"] == DEFERRED and waits["reason"].startswith("expected 13.6 s > 8 s")
    # the next run, once the cheap work is answered: nothing cheaper is left, so it is asked
    again = route_day(DAY, [cheap, costly], cfg, human_labelled={"f-cheap"})
    assert [t.frame_ids for t in again.tasks] == [["f-costly"]]
    assert route_day(DAY, [cheap, costly], RoutingConfig(audit_rate=0.0, max_task_s=0)).count(DEFERRED) == 0


def test_earlier_days_deferred_frames_go_first_within_the_same_batch_and_never_wait_again() -> None:
    """The backlog (flywheel.label.backlog.pending's rows): oldest day first, ahead of the day's own
    doubtful work, counted in the same batch; a pick from the catalog that waited once is asked now;
    its routes are kept apart from the day's own."""
    cfg = RoutingConfig(audit_rate=0.0, max_task_s=8.0, max_review_tasks=3)
    own = [{**row(f"f-own{i}", conf=0.5), "candidates": [SKU_A, SKU_B]} for i in range(3)]
    late = [{**row("f-old-costly", conf=0.2, clip="c0"), "origin_day": "2026-11-10",
             "deferred_reason": "expected 13.6 s > 8 s: waits while cheaper doubtful work remains"},
            {**row("f-week", conf=0.4, clip="c2"), "origin_day": "2026-11-17",
             "deferred_reason": "over the batch"}]
    r = route_day(DAY, own, cfg, backlog=late)
    assert [t.frame_ids for t in r.tasks] == [["f-old-costly"], ["f-week"], ["f-own0"]]
    assert "deferred 2026-11-10" in r.tasks[0].reason and r.tasks[0].task_id.startswith("review-20261124-")
    assert {x["frame_id"] for x in r.routes} == {"f-own0", "f-own1", "f-own2"}  # the day's own only
    assert [(x["frame_id"], x["route"], x["origin_day"]) for x in r.backlog] == [
        ("f-old-costly", REVIEW, "2026-11-10"), ("f-week", REVIEW, "2026-11-17")]
    assert r.backlog[1]["deferred_reason"] == "over the batch"
    assert [x["reason"] for x in r.routes if x["route"] == DEFERRED] == ["over the batch (3 tasks)"] * 2
    # a batch full of backlog defers the rest of the backlog again, in their own routes
    small = route_day(DAY, own, RoutingConfig(audit_rate=0.0, max_review_tasks=1), backlog=late)
    assert [t.frame_ids for t in small.tasks] == [["f-old-costly"]]
    assert [(x["frame_id"], x["route"]) for x in small.backlog] == [("f-old-costly", REVIEW),
                                                                    ("f-week", DEFERRED)]


def test_a_task_id_names_the_review_day() -> None:
    from flywheel.label.routing import task_day, task_id_for

    assert task_day(task_id_for(DAY, REVIEW, ["f1"])) == DAY
    assert task_day("review-x") is None and task_day("sim-2026-11-24-abc") is None
