"""Backfills over history and the UI in a real browser (issue 11, parts 4 and 5).

One temp Dagster instance holds three past capture days: a simulated cart's clips (real edge agent,
H.264) ingested by `depot_ingest_job` and pre-labelled by `prelabel_job` with teacher-1, the
production model. Then real `dagster-webserver` and `dagster-daemon` processes serve it on a free
port: a user re-labels the three days with a new teacher through the webserver's GraphQL API (what
the UI's "Materialize" on a partition range sends), and headless Chromium looks at the graph and a plot.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dagster_ui import (
    ROOT,
    DagsterServers,
    chromium,
    chromium_missing,
    daemon,
    stop_automation,
    webserver,
    write_instance_yaml,
)

DAYS = ("2026-11-17", "2026-11-18", "2026-11-19")
OLD, NEW = "teacher-1", "teacher-2"
# the loop from the landed clip to the rollout (issue 11, part 1)
CHAIN = ("depot_frames", "label_candidates", "prelabels", "review_queue", "merged_labels", "dataset_version",
         "candidate_model", "candidate_evaluation", "release", "release_rollout")
GROUPS = ("depot", "label", "learner", "release")
SHOTS = ROOT / "var" / "ui"
BACKFILL_TIMEOUT_S = 420  # three ~2-30 s runs; minutes only under heavy load

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.e2e]


@dataclass
class History:
    servers: DagsterServers
    lake: object  # edge_agent.lake.Lake
    work: Path


def _labelers(work: Path, teacher: str | None = None) -> dict:
    config = {"ocr": False, "work_dir": str(work / "label")}  # the OCR reader costs ~1 s a frame
    if teacher:
        config["teacher_model_id"] = teacher
    return {"resources": {"labelers": {"config": config}}}


def _register_teachers(lake, work: Path) -> None:  # noqa: ANN001
    """Two small classifiers over the catalog (the device's ONNX layout): teacher-1 is production."""
    from edge_agent.contract.schemas import parse_device_model
    from flywheel.fleet.bootstrap import install_model_slot
    from flywheel.label.catalog import read_catalog
    from tests.support.registry import register_model

    labels = ["none", *(p.ean for p in read_catalog(lake))]
    for seed, model_id in enumerate((OLD, NEW)):
        model_dir = install_model_slot(work / "models" / model_id, labels, version=model_id, seed=seed)
        slot = model_dir / "slots" / "a"
        register_model(lake, model_id, {"model.onnx": (slot / "model.onnx").read_bytes()}, classes=labels,
                       device=parse_device_model((slot / "model.json").read_bytes()),
                       production=model_id == OLD)


def _build_history(home: Path, lake_root: Path, work: Path) -> object:
    """The instance and lake of three past days, through the real jobs (in process)."""
    import dagster as dg

    from edge_agent.lake import Lake
    from flywheel.definitions import build_definitions
    from flywheel.fleet.runner import simulate_fleet
    from flywheel.learner.reference_sets import import_catalog
    from flywheel.sim import default_world

    lake = Lake.at_path(lake_root)
    for day in DAYS:  # one cart, 18 s of shopping a day: 3 clips
        simulate_fleet(lake, carts=1, minutes=0.3, seed=3, day=day, work_dir=work / day, progress=False)
    import_catalog(lake, default_world(3, 3).catalog.to_json())
    defs = build_definitions("local")  # the lake under FLYWHEEL_LAKE_ROOT, as the servers see it
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("capture_day", list(DAYS))
        for day in DAYS:
            assert defs.resolve_job_def("depot_ingest_job").execute_in_process(
                partition_key=day, instance=instance).success
        _register_teachers(lake, work)
        for day in DAYS:
            assert defs.resolve_job_def("prelabel_job").execute_in_process(
                partition_key=day, instance=instance, run_config=_labelers(work)).success
    return lake


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("ui_history")
    home, work = root / "dagster_home", root / "work"
    env = {"FLYWHEEL_LAKE_ROOT": str(root / "lake")}
    write_instance_yaml(home)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**env, "DAGSTER_HOME": str(home)}.items():
            mp.setenv(k, v)
        lake = _build_history(home, root / "lake", work)
    with webserver(home, env) as servers:
        # Sensors and schedules off before the daemon starts (the UI's toggles): a fresh instance's
        # landing sensors would re-ingest the three days beside the backfill (and a Monday 03:00 run
        # would train). The daemon still runs backfills.
        assert {"landing_clips_sensor", "weekly_train_and_evaluate"} <= set(stop_automation(servers))
        with daemon(servers, env):
            yield History(servers, lake, work)


LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status numPartitions runs(limit: 20) { runId status
    tags { key value } } } } }"""
MATERIALIZATIONS = """query($partitions: [String!]) { assetOrError(assetKey: {path: ["prelabels"]}) {
  ... on Asset { assetMaterializations(partitions: $partitions) { partition runId
    metadataEntries { label ... on TextMetadataEntry { text }
      ... on MarkdownMetadataEntry { mdStr } } } } } }"""


def _teachers(lake, day: str) -> tuple[set[str], set[str], set[str]]:  # noqa: ANN001
    """(frame ids, labeler_versions' teacher, the teacher votes' versions) of the day's prelabels."""
    from flywheel.label import tables

    rows = tables.read_prelabels(lake, day).to_pylist()
    return ({r["frame_id"] for r in rows}, {json.loads(r["labeler_versions"])["teacher"] for r in rows},
            {v["version"] for r in rows for v in r["votes"] if v["labeler"] == "teacher"})


def test_backfill_relabels_past_days_with_a_new_teacher_through_graphql(history: History) -> None:
    servers, lake = history.servers, history.lake
    before = {day: _teachers(lake, day) for day in DAYS}
    for frames, versions, votes in before.values():
        assert frames and versions == votes == {OLD}
    launched = servers.graphql(LAUNCH, {"params": {
        "assetSelection": [{"path": ["prelabels"]}], "partitionNames": list(DAYS),
        "title": f"re-label with {NEW}", "tags": [{"key": "label/teacher", "value": NEW}],
        # the launchpad's YAML as JSON; in_process: one process per run, not one per step too
        "runConfigData": {**_labelers(history.work, NEW), "execution": {"config": {"in_process": {}}}}}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id = result["backfillId"]

    def finished() -> dict | None:  # the daemon submits the runs; each run is its own process
        backfill = servers.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        return backfill if backfill["status"] != "REQUESTED" else None

    backfill = servers.wait_for(finished, BACKFILL_TIMEOUT_S, f"backfill {backfill_id} finished")
    runs = backfill["runs"]
    assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, servers.diagnostics())
    assert backfill["numPartitions"] == 3 and len(runs) == 3
    assert {r["status"] for r in runs} == {"SUCCESS"}
    tags = [{t["key"]: t["value"] for t in r["tags"]} for r in runs]
    assert sorted(t["dagster/partition"] for t in tags) == list(DAYS)
    assert all(t["dagster/backfill"] == backfill_id and t["label/teacher"] == NEW for t in tags)

    # the lake: every kept frame re-labelled, each row and each teacher vote naming the new version
    for day in DAYS:
        frames, versions, votes = _teachers(lake, day)
        assert frames == before[day][0] and versions == votes == {NEW}, day
    # the instance: each day's latest materialization is the backfill's, its metadata names the teacher
    asset = servers.graphql(MATERIALIZATIONS, {"partitions": list(DAYS)})["assetOrError"]
    mats = asset["assetMaterializations"]
    run_ids = {r["runId"] for r in runs}
    latest = {}
    for m in mats:  # newest first
        latest.setdefault(m["partition"], m)
    assert set(latest) == set(DAYS) and {m["runId"] for m in latest.values()} == run_ids
    for m in latest.values():
        meta = {e["label"]: e.get("text") or e.get("mdStr") for e in m["metadataEntries"]}
        assert meta["teacher"] == NEW
        assert meta["votes_and_confidence"].startswith("![votes and confidence](data:image/png;base64,")


def _wait(driver, predicate, timeout: float = 90.0, what: str = ""):  # noqa: ANN001, ANN202
    """Poll `predicate(driver)` until truthy (the UI renders after its GraphQL answers)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate(driver)
        except Exception:  # noqa: BLE001 - an element not there yet, or replaced while rendering
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the UI did not show {what} in {timeout:.0f} s")
        time.sleep(0.5)


def _skip_newsletter(driver) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        button.click()


def _node_names(driver) -> set[str]:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    return {e.text for e in driver.find_elements(By.CSS_SELECTOR, "[class*='AssetNode_assetName']")}


def _shown(name: str, names: set[str]) -> bool:
    """The graph shortens long names in the middle ("candid…_evaluation")."""
    def same(n: str) -> bool:
        head, _, tail = n.partition("…")
        return n == name or (bool(_) and name.startswith(head) and name.endswith(tail))

    return any(same(n) for n in names)


def _upstream_depth(servers: DagsterServers, asset: str) -> int:
    """Longest path to `asset` from its furthest materializable ancestor (the lineage view leaves out
    external assets such as landing_clips), from the webserver's asset graph."""
    nodes = servers.graphql("{ assetNodes { assetKey { path } isMaterializable dependencyKeys { path } } }"
                            )["assetNodes"]
    made = {"/".join(n["assetKey"]["path"]) for n in nodes if n["isMaterializable"]}
    deps = {"/".join(n["assetKey"]["path"]): ["/".join(d["path"]) for d in n["dependencyKeys"]
                                               if "/".join(d["path"]) in made] for n in nodes}

    def depth(a: str) -> int:
        return max((1 + depth(d) for d in deps.get(a, [])), default=0)

    for up, down in zip(CHAIN, CHAIN[1:], strict=False):  # every edge of the loop, exactly
        assert up in deps[down], f"no edge {up} -> {down}"
    return depth(asset)


@pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
def test_the_ui_in_chromium_shows_the_loop_and_a_metadata_plot(history: History) -> None:
    from selenium.webdriver.common.by import By

    servers = history.servers
    SHOTS.mkdir(parents=True, exist_ok=True)
    depth = _upstream_depth(servers, "release_rollout")
    with chromium(1600, 1300) as driver:
        # the global graph: every stage is a group
        driver.get(f"{servers.url}/asset-groups")
        _wait(driver, lambda d: set(GROUPS) <= set(d.find_element(By.TAG_NAME, "body").text.split("\n")),
              what=f"the groups {GROUPS}")
        _skip_newsletter(driver)
        driver.save_screenshot(str(SHOTS / "asset_groups.png"))

        # the rollout's upstream lineage: every asset from depot_frames on, across the four groups
        driver.get(f"{servers.url}/assets/release_rollout?view=lineage&lineageScope=upstream&lineageDepth=50")
        names = _wait(driver, lambda d: (n := _node_names(d)) and all(_shown(a, n) for a in CHAIN) and n,
                      what="the loop's assets")
        assert all(_shown(a, names) for a in CHAIN), names
        body = driver.find_element(By.TAG_NAME, "body").text.split("\n")
        assert set(GROUPS) <= set(body)
        # the graph goes as deep as the API's longest path, depot_frames at its far end
        depth_input = driver.find_element(By.CSS_SELECTOR, "input[inputmode='numeric']")  # "Graph depth"
        assert int(depth_input.get_attribute("value")) == int(depth_input.get_attribute("max")) == depth
        assert depth >= len(CHAIN) - 1
        _skip_newsletter(driver)
        driver.save_screenshot(str(SHOTS / "loop_lineage.png"))

        # an asset page: the prelabels plot of the last day, opened from its metadata
        driver.get(f"{servers.url}/assets/prelabels?view=events&partition={DAYS[-1]}")
        _wait(driver, lambda d: "votes_and_confidence" in d.find_element(By.TAG_NAME, "body").text,
              what="the prelabels metadata")
        _skip_newsletter(driver)
        row = driver.find_element(By.XPATH, "//td[normalize-space()='votes_and_confidence']/..")
        row.find_element(By.XPATH, ".//a[normalize-space()='[Show Markdown]']").click()
        img = _wait(driver, lambda d: next((i for i in d.find_elements(By.CSS_SELECTOR, "img[alt='votes and "
                                                                     "confidence']")
                                            if i.get_property("naturalWidth")), None),
                    what="the plot")
        assert img.get_property("naturalWidth") == 720 and img.is_displayed()
        assert img.get_attribute("src").startswith("data:image/png;base64,")
        driver.save_screenshot(str(SHOTS / "prelabels_plot.png"))
    assert all((SHOTS / f).stat().st_size > 10_000 for f in ("asset_groups.png", "loop_lineage.png",
                                                             "prelabels_plot.png"))
