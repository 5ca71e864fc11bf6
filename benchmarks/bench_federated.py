"""Federated benchmarks (writes var/bench/federated.json).

1. Efficacy: production top-1 on the frozen store sets after N federated rounds (carts in "updates"
   mode adapt production's head on auto-labelled insertions; each round's candidate goes through the
   gate and becomes production only if it passes) against the centralised loop after the same N
   turns on the same fleet: the frames of the very samples the carts labelled, under the same
   labels, with the box the device's detector cropped (recorded beside them,
   benchmarks/federated_central.py), go to the cloud, and each turn is the product's Learner turn:
   a dataset version of the manual collection plus every round so far, production fine-tuned on it
   (`TrainConfig(init="parent")`: crop classifier and detector from the parent, empty frames cropped
   as the two-stage training crops them), evaluated and gated; a passed turn becomes its production.
2. Bytes per device per round: the head update (and the global head it receives) against the clip
   bytes the same carts upload in "clips" mode over the same simulated minutes.
3. Round time of the Flower round alone (select, fit, check, FedAvg) with 20 and 200 simulated
   devices (real gRPC clients over 127.0.0.1 over TLS, as announced rounds run, the production
   head's shape), as a ratio per device; and 20 devices over plaintext, the cost of TLS.

Run: `python -m benchmarks.bench_federated [out_dir] [--quick]` (or env FED_BENCH_QUICK=1: fewer
carts, rounds and minutes; the production model is the same).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUICK = os.environ.get("FED_BENCH_QUICK") == "1" or "--quick" in sys.argv
CARTS = 3 if QUICK else 6
ROUNDS = 2 if QUICK else 3
MINUTES_PER_ROUND = 0.5 if QUICK else 1.0
# The production model: the Learner's defaults (96 px, 20 epochs, 24 frames per SKU). A smaller run
# (4 epochs at 64 px: ~12 optimizer steps, all inside the warmup) collapses to "always empty" with
# near-constant embeddings (feature std ~2e-4), which no head, federated or not, can improve.
EPOCHS = 20
N_PER_SKU = 24
# the centralised turn's crop classifier epochs (the job's TrainConfig default is 30, sized for the
# oracle's ~3,850 frames; the bench's dataset is ~600 + the fleet's); everything else is the job's
# warm-turn default (lr, batch, augmentation, init "parent", the detector's det_refresh_epochs)
CENTRAL_EPOCHS = int(os.environ.get("FED_BENCH_CENTRAL_EPOCHS", "10"))
# production as the two-stage model (detector + crop classifier, RoiConfig's recipe): the devices'
# embeddings are the crop classifier's, centred on the item; 0 = the one-stage whole-frame model
TWO_STAGE = os.environ.get("FED_BENCH_TWO_STAGE", "1") == "1"
DET_EPOCHS = int(os.environ.get("FED_BENCH_DET_EPOCHS", "15"))  # the recipe's; fewer = a quicker bench
# a lake holding only a trained production (cls-prod-0 + its dataset and frozen sets), copied: skips
# the production training (the bench's longest part) when re-running the fleet's part
REUSE = os.environ.get("FED_BENCH_LAKE")
FLEETS = (20, 200)
HEAD_SHAPE = (1280, 22)  # the production head's (embedding x classes) for the round times
PARTS = ("efficacy", "clips", "rounds")
# bench gates ignore latency: on this shared machine p95 is the load, not the model (bench_learner
# measures latency); every other gate rule stands
BENCH_GATE = dict(latency_budget_ms=1e9)


def _production(work: Path):
    from edge_agent.lake import Lake
    from flywheel.learner import registry
    from flywheel.learner.config import DatasetSpec, GateRules, RoiConfig, TrainConfig
    from flywheel.learner.pipeline import (
        SimSources,
        build_dataset,
        evaluate_candidate,
        gate_candidate,
        import_from_simulator,
    )
    from flywheel.learner.train import TrainRequest, run_training

    lake = Lake.at_path(work / "lake")
    import_from_simulator(lake, SimSources(n_per_sku=N_PER_SKU, n_test=100, n_insertions=0))
    ds, _ = build_dataset(lake, DatasetSpec())
    # the model kind is set here, not taken from TrainConfig's default (which may change)
    cfg = TrainConfig(epochs=EPOCHS, num_cpus=1,
                      roi=RoiConfig(det_epochs=DET_EPOCHS) if TWO_STAGE else None)
    rules = GateRules()
    run_training(TrainRequest(lake.uri, None, ds.version, cfg, "cls-prod-0", rules=rules))
    ev = evaluate_candidate(lake, "cls-prod-0")
    gate_candidate(lake, "cls-prod-0", GateRules(**BENCH_GATE))
    registry.bootstrap_production(lake, "cls-prod-0")
    return lake, ev.candidate.metrics["production_top1"]


def _reuse(lake_dir: Path, work: Path):
    """A copy of a lake with production already trained (models/cls-prod-0, its dataset and the
    frozen sets; nothing else): saves the production training when re-running the fleet's part."""
    import shutil

    from edge_agent.lake import Lake
    from flywheel.learner import registry

    shutil.copytree(lake_dir, work / "lake")
    lake = Lake.at_path(work / "lake")
    registry.set_production(lake, "cls-prod-0", by="bench", reason="reused production")
    return lake, registry.read_evaluation(lake, "cls-prod-0").candidate.metrics["production_top1"]


def _channel(lake, work: Path):
    """The release channel (real keys) whose signed announcements the carts join."""
    from flywheel.release.keys import keygen, load_keys
    from flywheel.release.repository import open_channel

    keygen(work / "keys")
    repo = open_channel(lake, "stable", load_keys(work / "keys"))
    return repo, lake.get("releases/stable/metadata/1.root.json")


def _federated(lake, address: str, work: Path, top1_0: float) -> tuple[dict, list]:
    from benchmarks.federated_central import ImageRecorder, write_round
    from edge_agent.model import DeviceModel
    from flywheel.federated.pipeline import federated_round
    from flywheel.federated.strategy import RoundConfig
    from flywheel.fleet.bootstrap import install_registry_model
    from flywheel.fleet.federated import FederatedFleet
    from flywheel.learner import registry
    from flywheel.learner.config import GateRules
    from flywheel.learner.pipeline import evaluate_candidate, gate_candidate

    rounds = []
    repo, root = _channel(lake, work)
    with FederatedFleet(lake, "stable", root, carts=CARTS, retry_s=0.3) as fleet:
        recorders = [ImageRecorder(a) for a in fleet.agents]
        sources: list[str] = []  # the frames each round's samples came from, for the centralised turns
        for r in range(ROUNDS):
            start = [len(rec.store.rows) for rec in recorders]
            fleet.drive(MINUTES_PER_ROUND)
            out = federated_round(lake, address, RoundConfig(
                base_model="", min_samples=5, connect_window_s=30, expected_devices=CARTS), repo=repo)
            row = {"round": r + 1, "skipped": out.skipped, "samples": out.report.samples,
                   "accepted": len(out.report.accepted), "seconds": round(out.report.seconds, 2),
                   "update_bytes_per_device": (float(np.mean(list(out.report.bytes_received.values())))
                                               if out.report.bytes_received else 0.0)}
            if out.candidate_id:
                ev = evaluate_candidate(lake, out.candidate_id)
                gate = gate_candidate(lake, out.candidate_id, GateRules(**BENCH_GATE))
                row.update(candidate=out.candidate_id, top1=ev.candidate.metrics["production_top1"],
                           production_top1_before=ev.production.metrics["production_top1"],
                           manual_top1=ev.candidate.metrics.get("manual_top1"),
                           gate_passed=gate.passed, gate_reasons=gate.reasons)
                if gate.passed:  # the rollout is not simulated here: production moves at once
                    registry.set_production(lake, out.candidate_id, by="bench", reason="gate passed")
                    for a in fleet.agents:
                        model_dir = install_registry_model(lake, fleet.work / "model" / a.device_id,
                                                           out.candidate_id, slot="b")
                        a.model = DeviceModel(model_dir)
                    for rec in recorders:
                        rec.watch(rec.agent.model)
            row["production_after"] = registry.production_model_id(lake)
            row["device_samples"] = sum(fleet.samples().values())
            rounds.append(row)
            # the recorders kept a frame for every sample the devices hold, under the same label
            assert [len(rec.store) for rec in recorders] == list(fleet.samples().values())
            key, n = write_round(lake, recorders, r + 1, start)
            sources.append(key)
            row["central_frames"] = n
    final = registry.production_model_id(lake)
    top1 = (top1_0 if final == "cls-prod-0"
            else evaluate_candidate(lake, final).candidate.metrics["production_top1"])
    return {"rounds": rounds, "final_production": final, "production_top1": top1}, sources


def _clip_bytes(lake, root: bytes) -> dict:
    from flywheel.fleet.federated import FederatedFleet

    with FederatedFleet(lake, "stable", root, carts=CARTS, mode="clips", retry_s=60) as fleet:
        fleet.drive(MINUTES_PER_ROUND)
        totals = [a.close(drain_timeout=120) for a in fleet.agents]
        fleet.agents = []
    per_device = [t["uploaded_bytes"] for t in totals]
    return {"clips": sum(t["uploaded_clips"] for t in totals),
            "bytes_per_device": float(np.mean(per_device))}


def _centralised(lake, sources: list[str]) -> dict:
    """The product's Learner turns on the carts' labelled frames: turn k trains on the manual
    collection + rounds 1..k, from the centralised loop's production (a passed turn replaces it)."""
    from benchmarks.federated_central import central_turn
    from flywheel.learner import registry
    from flywheel.learner.config import GateRules, RoiConfig, TrainConfig

    # the job's warm turn (TrainConfig defaults, init "parent"); the roi as production's was trained
    cfg = TrainConfig(epochs=CENTRAL_EPOCHS, num_cpus=1, init="parent",
                      roi=RoiConfig(det_epochs=DET_EPOCHS) if TWO_STAGE else None)
    registry.set_production(lake, "cls-prod-0", by="bench", reason="the centralised loop starts here")
    turns, prod = [], "cls-prod-0"
    for k in range(1, len(sources) + 1):
        turn = central_turn(lake, prod, tuple(sources[:k]), f"cls-central-{k}", cfg, GateRules(), BENCH_GATE)
        if turn["gate_passed"]:
            registry.set_production(lake, turn["candidate"], by="bench", reason="gate passed")
            prod = turn["candidate"]
        turn["production_after"] = prod
        turns.append(turn)
    top1 = next((t["top1"] for t in reversed(turns) if t["candidate"] == prod), None)
    return {"turns": turns, "final_production": prod, "central_epochs": CENTRAL_EPOCHS,
            "production_top1": top1 if top1 is not None else turns[0]["production_top1_before"]}


def _round_time(n_devices: int, d: int, k: int, tls: bool = True) -> tuple[float, float]:
    """(wall seconds of the round, CPU seconds of this process over the round: server and the
    devices' threads; far less sensitive to the other engineers' load than wall time)."""
    from edge_agent.federated.client import DeviceIdentity, Participant, make_client
    from edge_agent.federated.samples import SampleStore
    from flywheel.federated.server import free_address, run_round
    from flywheel.federated.strategy import RoundConfig
    from flywheel.federated.tls import round_certificates

    rng = np.random.default_rng(0)
    address = free_address()
    certs = round_certificates(address, 900) if tls else None
    devices, fleet = [], {}
    for i in range(n_devices):
        s = SampleStore()
        s.add("m", list(rng.normal(size=(40, d)).astype(np.float32)), int(i % k))
        identity = DeviceIdentity(f"d{i}", "A", "A")
        fleet[identity.device_id] = identity.key.public_bytes  # registered, as provisioning does
        devices.append(Participant(address, (lambda s=s, identity=identity: make_client(
            identity, s)), retry_s=0.2,
            root_certificates=certs.ca_pem if certs else None).start())
    cpu0 = _cpu_seconds()
    try:
        w0 = rng.normal(size=(d, k)).astype(np.float32) * 0.01
        _, report = run_round(address, RoundConfig(base_model="m", min_samples=5, connect_window_s=120,
                                                   expected_devices=n_devices, fit_timeout_s=300),
                              w0, np.zeros(k, np.float32), key_of=fleet.get,
                              certificates=certs.certificates if certs else None)
    finally:
        for p in devices:
            p.stop()
    assert len(report.accepted) == n_devices, report.as_dict()
    return report.seconds, round(_cpu_seconds() - cpu0, 1)


def _progress(phase: str, value, t0: float) -> None:
    """One line per finished phase on stderr (a long run is readable before its JSON is written)."""
    print(json.dumps({"phase": phase, "value": value, "seconds": round(time.perf_counter() - t0, 1),
                      "cpu_seconds": _cpu_seconds(),
                      "loadavg": Path("/proc/loadavg").read_text().split()[:3]},
                     default=str), file=sys.stderr, flush=True)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _cpu_seconds() -> float:
    """user + sys of this process and its finished children (Ray workers, encoders)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 1)


def main(out_dir: Path) -> dict:
    """The parts in FED_BENCH_PARTS (default all): efficacy (production, federated rounds, the
    centralised turns), clips (clip bytes of the same carts), rounds (round times)."""
    from benchmarks.scratch import scratch_dir
    from flywheel.federated.server import free_address

    parts = set(os.environ.get("FED_BENCH_PARTS", ",".join(PARTS)).split(","))
    load = Path("/proc/loadavg").read_text().split()[:3]
    result: dict = {"settings": {"carts": CARTS, "rounds": ROUNDS, "minutes_per_round": MINUTES_PER_ROUND,
                                 "production_epochs": EPOCHS, "central_epochs": CENTRAL_EPOCHS,
                                 "n_per_sku": N_PER_SKU, "two_stage": TWO_STAGE,
                                 "det_epochs": DET_EPOCHS if TWO_STAGE else None,
                                 "parts": sorted(parts & set(PARTS))}}
    t0 = time.perf_counter()
    work = scratch_dir("bench-fed-")
    if parts & {"efficacy", "clips"}:
        lake, top1_0 = _production(work) if not REUSE else _reuse(Path(REUSE), work)
        _progress("production", top1_0, t0)
        result["production_top1_start"] = top1_0
    if "efficacy" in parts:
        fed, sources = _federated(lake, free_address(), work, top1_0)
        _progress("federated", fed, t0)
        central = _centralised(lake, sources)
        _progress("centralised", central, t0)
        head_bytes = float(np.mean([r["update_bytes_per_device"] for r in fed["rounds"]
                                    if r["update_bytes_per_device"]] or [0.0]))
        result.update(federated=fed, centralised_after_same_turns=central,
                      top1_federated_minus_centralised=(fed["production_top1"]
                                                        - central["production_top1"]),
                      gain_federated_over_centralised=_ratio(fed["production_top1"] - top1_0,
                                                             central["production_top1"] - top1_0),
                      update_bytes_per_device_per_round=head_bytes)
    if "clips" in parts:
        key = "releases/stable/metadata/1.root.json"
        root = lake.get(key) if lake.exists(key) else _channel(lake, work)[1]
        clips = _clip_bytes(lake, root)
        _progress("clips", clips, t0)
        result["clips"] = clips
        if "update_bytes_per_device_per_round" in result:
            result["ratio_update_over_clips"] = (result["update_bytes_per_device_per_round"]
                                                 / clips["bytes_per_device"])
    if "rounds" in parts:
        times, cpu = {}, {}
        _round_time(2, *HEAD_SHAPE)  # warm-up (imports, first TLS context): not counted
        plain, plain_cpu = _round_time(FLEETS[0], *HEAD_SHAPE, tls=False)
        _progress(f"round_time_{FLEETS[0]}_plaintext", plain, t0)
        for n in FLEETS:
            times[n], cpu[n] = _round_time(n, *HEAD_SHAPE)
            _progress(f"round_time_{n}", times[n], t0)
        first, last = FLEETS[0], FLEETS[-1]
        result.update(round_seconds_tls={str(n): round(s, 2) for n, s in times.items()},
                      round_cpu_seconds_tls={str(n): c for n, c in cpu.items()},
                      round_seconds_plaintext={str(first): round(plain, 2)},
                      round_cpu_seconds_plaintext={str(first): plain_cpu},
                      tls_over_plaintext_cpu=cpu[first] / plain_cpu if plain_cpu else None,
                      round_seconds_per_device_ratio=(times[last] / last) / (times[first] / first),
                      round_cpu_per_device_ratio=(cpu[last] / last) / (cpu[first] / first))
    result.update(seconds_total=round(time.perf_counter() - t0, 1), cpu_seconds=_cpu_seconds(),
                  loadavg_before=load, loadavg_after=Path("/proc/loadavg").read_text().split()[:3])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "federated.json").write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(json.dumps(main(Path(args[0]) if args else ROOT / "var" / "bench"), indent=2, default=str))
