"""Human review in a real Label Studio: one project per review batch (a capture day's review queue
plus the audit's suspects), pushed and pulled through `label-studio-sdk`.

push: the labelling config (the frame, one choice of catalog SKU or "none", rectangles for a
      product's box), one task per review task with the ensemble's proposal as a `prediction` (the
      annotator corrects rather than starts blank) and links back to the frame and its clip (replay).
pull: the annotations submitted since the last pull land in `landing/corrections/` as a Label
      Studio JSON export, which the corrections sensor files and `merged_labels` merges with
      provenance (annotator, Label Studio task and annotation ids in the correction's note).
      Annotations naming a choice the project does not offer, or a frame the Depot no longer has,
      are quarantined with their reason in an export of their own; the rest keeps flowing.

    label/studio/date=D/project.json   project id, our task id -> LS task id, annotations pulled
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from edge_agent.contract.layout import LANDING_CORRECTIONS, validate_date
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.label.review_tasks import FROM_NAME, NO_PRODUCT, TO_NAME, image_key

STUDIO = "label/studio"
BOX_NAME = "box"
UNKNOWN_CHOICE = "unknown_choice"  # quarantine reason: a choice the project's config does not offer
FRAME_GONE = "frame_gone"  # quarantine reason: an annotation of a frame the Depot no longer has
SUSPECT_KIND = "suspect"
IMPORT_CHUNK = 200  # tasks per import request

FrameDays = Callable[[list[str]], dict[str, str]]


class StudioUnavailable(RuntimeError):
    """Label Studio cannot be reached or refused us: nothing was changed on either side."""


class StudioError(RuntimeError):
    """A push or pull that cannot proceed (no project yet, a project deleted in Label Studio...)."""


def day_catalog(lake: Lake, day: str) -> list[str]:
    """The SKUs a day's project offers: the Depot's catalog, else the labels proposed that day."""
    from flywheel.label.review_tasks import catalog_of
    from flywheel.label.tables import read_prelabels

    return catalog_of(lake, read_prelabels(lake, day, columns=["label"]).to_pylist())


def connect(url: str, api_key: str, timeout_s: float = 30.0) -> Any:
    """A `label_studio_sdk.LabelStudio` client (the SDK tells legacy tokens from personal access tokens)."""
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url.rstrip("/"), api_key=api_key, timeout=timeout_s)


def state_key(day: str) -> str:
    return f"{STUDIO}/date={validate_date(day)}/project.json"


def project_title(day: str) -> str:
    return f"flywheel review {validate_date(day)}"


def studio_config(catalog: list[str]) -> str:
    """The frame, one SKU choice (catalog + none) and, for detection, rectangles of catalog SKUs."""
    names = sorted(catalog)
    choices = "\n".join(f"    <Choice value={quoteattr(s)}/>" for s in [*names, NO_PRODUCT])
    labels = "\n".join(f"    <Label value={quoteattr(s)}/>" for s in names)
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="false">\n'
            f"{choices}\n  </Choices>\n"
            f'  <RectangleLabels name="{BOX_NAME}" toName="{TO_NAME}">\n{labels}\n  </RectangleLabels>\n'
            '  <HyperText name="links" value="$links"/>\n</View>\n')


@dataclass
class StudioState:
    day: str
    project_id: int
    tasks: dict[str, int] = field(default_factory=dict)  # our task id -> Label Studio task id
    pulled: dict[str, str] = field(default_factory=dict)  # LS annotation id -> its updated_at when pulled


def read_state(lake: Lake, day: str) -> StudioState | None:
    try:
        doc = json.loads(lake.get(state_key(day)))
    except ObjectNotFound:
        return None
    return StudioState(day=doc["day"], project_id=int(doc["project_id"]), tasks=doc["tasks"],
                       pulled=doc["pulled"])


def write_state(lake: Lake, s: StudioState) -> None:
    lake.put(state_key(s.day), json.dumps({"day": s.day, "project_id": s.project_id, "tasks": s.tasks,
                                           "pulled": s.pulled}, indent=1, sort_keys=True).encode())


def _call(what: str, fn: Callable[[], Any]) -> Any:
    """Run one SDK call; a server that is down or refuses us becomes a StudioUnavailable in words."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        return fn()
    except httpx.TransportError as e:
        raise StudioUnavailable(f"Label Studio is not reachable ({what}): {type(e).__name__}: {e}") from None
    except ApiError as e:
        if e.status_code in (401, 403):
            raise StudioUnavailable(f"Label Studio refused the API token ({what}): "
                                    f"HTTP {e.status_code}") from None
        if e.status_code == 404:
            raise StudioError(f"Label Studio has no such object ({what}): HTTP 404") from None
        raise StudioError(f"Label Studio said HTTP {e.status_code} ({what}): {e.body}") from None


def review_items(lake: Lake, day: str) -> list[dict[str, Any]]:
    """What a day's project shows: the open review tasks in queue order, then the audit's suspects
    in rank order (a suspect frame already in a review task is not shown twice)."""
    from flywheel.depot.ingest import read_frames
    from flywheel.label.audit import read_suspects
    from flywheel.label.review_tasks import read_tasks

    frames = read_frames(lake, day, columns=["frame_id", "clip_id", "device_id", "store_id", "image_jpeg"])
    if frames is None:
        raise StudioError(f"no Depot frames for {day}: ingest the day first")
    at = {f: i for i, f in enumerate(frames.column("frame_id").to_pylist())}
    cols = {c: frames.column(c) for c in ("clip_id", "device_id", "store_id", "image_jpeg")}
    items, seen = [], set()
    for t in sorted(read_tasks(lake, day), key=lambda t: t.rank):
        items.append({"task_id": t.task_id, "kind": t.kind, "reason": t.reason,
                      "frame_ids": list(t.frame_ids),
                      "proposed": t.proposed_label, "score": t.confidence, "draw_box": t.draw_box})
        seen |= set(t.frame_ids)
    for s in read_suspects(lake, day):
        if s["frame_id"] not in seen:
            items.append({"task_id": f"{SUSPECT_KIND}-{s['frame_id']}", "kind": SUSPECT_KIND,
                          "reason": s["reasons"], "frame_ids": [s["frame_id"]], "proposed": s["label"],
                          "score": s["score"], "draw_box": False})
    out = []
    for it in items:
        lead = it["frame_ids"][0]
        if lead not in at:
            continue  # the frame left the Depot since the queue was written
        i = at[lead]
        clip = cols["clip_id"][i].as_py()
        jpeg = cols["image_jpeg"][i].as_py()
        it |= {"image": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(), "clip_id": clip,
               "frame_url": lake.url(image_key(day, lead)),
               "replay": f"flywheel replay {clip} --day {day}",
               "device_id": cols["device_id"][i].as_py(), "store_id": cols["store_id"][i].as_py()}
        out.append(it)
    return out


def ls_task(day: str, it: dict[str, Any], model_version: str) -> dict[str, Any]:
    links = (f'<p>frame <code>{it["frame_ids"][0]}</code> ({len(it["frame_ids"])} in the task) - '
             f'clip <code>{it["clip_id"]}</code>: <code>{it["replay"]}</code></p>')
    if it.get("draw_box"):  # box_requests: the production detector missed the item here
        links = "<p><b>Also draw a box around the product: the device did not find it.</b></p>" + links
    task: dict[str, Any] = {"data": {
        "image": it["image"], "task_id": it["task_id"], "frame_ids": it["frame_ids"], "date": day,
        "kind": it["kind"], "reason": it["reason"], "clip_id": it["clip_id"], "frame_url": it["frame_url"],
        "replay": it["replay"], "device_id": it["device_id"], "store_id": it["store_id"], "links": links,
        "draw_box": bool(it.get("draw_box"))}}
    if it["proposed"] is not None or it["kind"] == SUSPECT_KIND:
        choice = it["proposed"] if it["proposed"] is not None else NO_PRODUCT
        task["predictions"] = [{"model_version": model_version, "score": float(it["score"] or 0.0),
                                "result": [{"id": "p0", "from_name": FROM_NAME, "to_name": TO_NAME,
                                            "type": "choices", "value": {"choices": [choice]}}]}]
    return task


@dataclass
class PushReport:
    project_id: int
    created: bool  # a new project (else its config was updated)
    imported: int  # tasks new to Label Studio
    recreated: int  # tasks deleted in Label Studio and imported again
    already: int  # tasks Label Studio already had
    suspects: int  # of the imported, audit suspects


def _project_tasks(client: Any, project_id: int) -> list[Any]:
    return list(_call("list tasks", lambda: list(client.tasks.list(project=project_id, fields="all"))))


def push_day(lake: Lake, day: str, client: Any, catalog: list[str],
             model_version: str = "prelabel-ensemble") -> PushReport:
    """Create or update the day's project and import the tasks it lacks (idempotent)."""
    items = review_items(lake, day)
    config = studio_config(catalog)
    state = read_state(lake, day)
    created = False
    if state is not None:
        _call("update project", lambda: client.projects.update(id=state.project_id, label_config=config))
    else:
        project = _call("create project", lambda: client.projects.create(
            title=project_title(day), label_config=config,
            description=f"Review queue of capture day {day}; predictions: the pre-label ensemble."))
        state, created = StudioState(day=day, project_id=int(project.id)), True
        write_state(lake, state)  # at once: a crash after this re-uses the project
    present = {}
    for t in _project_tasks(client, state.project_id):
        present[(t.data or {}).get("task_id")] = int(t.id)
    wanted = {i["task_id"] for i in items}
    recreated = sum(1 for tid in state.tasks if tid not in present and tid in wanted)
    state.tasks = {k: v for k, v in present.items() if k}
    new = [it for it in items if it["task_id"] not in state.tasks]
    for i in range(0, len(new), IMPORT_CHUNK):  # the frames travel inline: keep each request small
        chunk = [ls_task(day, it, model_version) for it in new[i:i + IMPORT_CHUNK]]
        _call("import tasks",
              lambda chunk=chunk: client.projects.import_tasks(id=state.project_id, request=chunk))
    if new:
        for t in _project_tasks(client, state.project_id):
            tid = (t.data or {}).get("task_id")
            if tid:
                state.tasks[tid] = int(t.id)
    write_state(lake, state)
    return PushReport(project_id=state.project_id, created=created, imported=len(new), recreated=recreated,
                      already=len(items) - len(new), suspects=sum(it["kind"] == SUSPECT_KIND for it in new))


@dataclass
class PullReport:
    annotations: int = 0  # new or updated submitted annotations landed
    batch_key: str | None = None  # the landed export
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> annotations
    missing_tasks: list[str] = field(default_factory=list)  # pushed tasks no longer in Label Studio


def _choice(result: list[dict[str, Any]]) -> str | None:
    for r in result or []:
        if r.get("type") == "choices" and r.get("from_name", FROM_NAME) == FROM_NAME:
            return ((r.get("value") or {}).get("choices") or [None])[0]
    return None


def _export_task(t: Any, anns: list[dict[str, Any]]) -> dict[str, Any]:
    """One task as Label Studio's JSON export writes it, with only the given annotations."""
    preds = [p if isinstance(p, dict) else p.model_dump(mode="json") for p in (t.predictions or [])]
    return {"id": int(t.id), "data": dict(t.data or {}), "annotations": anns, "predictions": preds}


def _land(lake: Lake, day: str, export: list[dict[str, Any]], tag: str) -> str:
    digest = hashlib.sha256(json.dumps(export, sort_keys=True, default=str).encode()).hexdigest()[:16]
    key = f"{LANDING_CORRECTIONS}/ls-{day}-{tag}-{digest}.json"
    lake.put(key, json.dumps(export, indent=1, default=str).encode())
    return key


def pull_day(lake: Lake, day: str, client: Any, catalog: list[str], frame_days: FrameDays) -> PullReport:
    """Land the annotations submitted (or changed) since the last pull as a Label Studio export."""
    from flywheel.depot.quarantine import quarantine

    state = read_state(lake, day)
    if state is None:
        raise StudioError(f"no Label Studio project for {day}: run `flywheel label push --day {day}` first")
    allowed = {*catalog, NO_PRODUCT}
    users = {int(u.id): u.email or u.username or str(u.id)
             for u in _call("list users", lambda: client.users.list())}
    tasks = _project_tasks(client, state.project_id)
    report = PullReport()
    seen = {(t.data or {}).get("task_id") for t in tasks}
    report.missing_tasks = sorted(tid for tid in state.tasks if tid not in seen)
    good: list[dict[str, Any]] = []
    bad: dict[str, list[dict[str, Any]]] = {UNKNOWN_CHOICE: [], FRAME_GONE: []}
    fresh: dict[str, str] = {}
    frame_ids = sorted({f for t in tasks for f in (t.data or {}).get("frame_ids") or []})
    known = frame_days(frame_ids) if frame_ids else {}
    for t in tasks:
        anns_ok, anns_choice, anns_gone = [], [], []
        for a in t.annotations or []:
            a = a if isinstance(a, dict) else a.model_dump(mode="json")
            aid, updated = str(a["id"]), str(a.get("updated_at") or a.get("created_at"))
            if a.get("was_cancelled") or state.pulled.get(aid) == updated:
                continue
            who = a.get("completed_by")
            who = who.get("id") if isinstance(who, dict) else who
            email = users.get(int(who), str(who)) if who else "unknown"
            a = a | {"completed_by": {"id": who, "email": email}}
            fresh[aid] = updated
            choice = _choice(a.get("result") or [])
            if choice is not None and choice not in allowed:
                anns_choice.append(a)
            elif any(f not in known for f in (t.data or {}).get("frame_ids") or []):
                anns_gone.append(a)
            elif choice is not None:
                anns_ok.append(a)
        for anns, into in ((anns_ok, good), (anns_choice, bad[UNKNOWN_CHOICE]), (anns_gone, bad[FRAME_GONE])):
            if anns:
                into.append(_export_task(t, anns))
    if good:
        report.batch_key = _land(lake, day, good, "pull")
        report.annotations = sum(len(t["annotations"]) for t in good)
    for reason, export in bad.items():
        if export:
            n = sum(len(t["annotations"]) for t in export)
            detail = (f"{n} annotation(s) choose a label the project does not offer: "
                      f"{sorted({_choice(a['result']) for t in export for a in t['annotations']})}"
                      if reason == UNKNOWN_CHOICE else
                      f"{n} annotation(s) of frames the Depot no longer has, "
                      f"e.g. task {export[0]['data'].get('task_id')}")
            quarantine(lake, _land(lake, day, export, reason.replace("_", "-")), reason, detail)
            report.quarantined[reason] = n
    state.pulled |= fresh  # after landing: a crash in between re-lands the same export (same key)
    write_state(lake, state)
    return report
