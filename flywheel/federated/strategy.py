"""The Flower strategy of one round: select devices, hand out the global head, check and average.

Every device authenticates first: its answer to selection and its update carry its signature
(contract.federated.join_message / update_message, bound to the round id and a nonce fresh for the
round) by the key the fleet registered for it (flywheel/federated/devices.py); an unknown device,
a bad signature or a second connection under a joined device's name is refused, the reason in
RoundReport.unauthenticated (the asset's metadata shows it).
Selection asks every connected device for its properties (cohort, samples, the embedding space its
samples were embedded in) and keeps those of the wanted cohorts with enough samples in the round's
base model's embedding space (its backbone: samples survive a federated candidate's promotion);
fewer than `min_devices` and the round is skipped with that reason. Aggregation checks each update
(aggregate.check_update), averages what passes (aggregate.fedavg) and skips the round when fewer
than `min_devices` valid updates came back (drops, timeouts, rejects).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edge_agent.contract.federated import join_message, update_message
from flywheel.federated.aggregate import AggregationRules, check_update, fedavg
from flywheel.federated.devices import verify


@dataclass(frozen=True)
class RoundConfig:
    base_model: str  # the production model whose head the round adapts
    embedding_space: str = ""  # the base model's (contract.federated.embedding_space); "" = base_model
    round_id: int = 0  # the signed announcement's round id (devices check it; 0: none announced)
    cohorts: tuple[str, ...] = ()  # cohorts that take part; () = every cohort
    min_devices: int = 2  # fewer selected (or valid updates) and the round is skipped
    max_devices: int = 1000  # a larger eligible set is sampled down to this (seeded)
    min_samples: int = 20  # a device needs this many auto-labelled samples to be selected
    connect_window_s: float = 30.0  # how long the server waits for devices to connect
    expected_devices: int = 0  # stop waiting as soon as this many are connected (0: whole window)
    fit_timeout_s: float = 60.0  # a selected device that has not answered by then has dropped
    epochs: int = 30  # local head training on the device (edge_agent.federated.head.HeadTraining)
    lr: float = 0.5
    prox_mu: float = 0.01
    prior_adjust: bool = True  # devices train on logits + log(local label prior): no forgetting
    seed: int = 0
    rules: AggregationRules = field(default_factory=AggregationRules)


@dataclass
class RoundReport:
    connected: int = 0
    selected: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # device -> why not selected
    # "claimed name (connection)" -> why it is not a registered device (unknown, wrong key, twice)
    unauthenticated: dict[str, str] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # device -> why its update was refused
    failures: list[str] = field(default_factory=list)  # dropped, timed out, broke the connection
    samples: int = 0
    clipped: list[str] = field(default_factory=list)
    skipped: str = ""  # why no new head came out of the round ("" when one did)
    device_metrics: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    bytes_received: dict[str, int] = field(default_factory=dict)  # device -> update payload bytes

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def make_strategy(cfg: RoundConfig, w0: np.ndarray, b0: np.ndarray, report: RoundReport,
                  key_of: Callable[[str], bytes | None]):
    """`key_of(device_id)`: the device's registered public key, or None (unknown to the fleet)."""
    from flwr.common import (
        FitIns,
        GetPropertiesIns,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )
    from flwr.server.strategy import Strategy

    class HeadRound(Strategy):
        def __init__(self) -> None:
            self.result: tuple[np.ndarray, np.ndarray] | None = None
            self.names: dict[str, str] = {}  # flower cid -> device id (authenticated ones only)
            self.nonce = secrets.token_hex(16)  # what this round's signatures are bound to
            self.keys: dict[str, bytes] = {}  # device id -> its registered key (authenticated)

        def initialize_parameters(self, client_manager):
            return ndarrays_to_parameters([w0, b0])

        def _properties(self, client) -> dict | None:
            try:
                res = client.get_properties(GetPropertiesIns(config=self._round_config()),
                                            timeout=cfg.fit_timeout_s, group_id=None)
                return dict(res.properties)
            except Exception:
                return None

        def _round_config(self) -> dict:
            return {"round_id": cfg.round_id, "nonce": self.nonce}

        def _authenticate(self, p: dict) -> str:
            """Why this join is not a registered device's ("" when it is)."""
            name = str(p.get("device_id", ""))
            key = key_of(name) if name else None
            if key is None:
                return f"unknown device {name!r}: no key registered in the fleet"
            if not verify(key, p.get("signature"), join_message(cfg.round_id, self.nonce, p)):
                return f"join not signed with the registered key of {name!r}"
            if name in self.keys:
                return f"{name!r} already joined this round on another connection"
            self.keys[name] = key
            return ""

        def configure_fit(self, server_round, parameters, client_manager):
            client_manager.wait_for(cfg.expected_devices or 10**9, timeout=cfg.connect_window_s)
            clients = list(client_manager.all().values())
            report.connected = len(clients)
            with ThreadPoolExecutor(max_workers=min(64, max(1, len(clients)))) as pool:
                props = list(pool.map(self._properties, clients))
            eligible = []
            for client, p in zip(clients, props, strict=True):
                if p is None:
                    report.excluded[client.cid] = "no answer to get_properties"
                    continue
                name = str(p.get("device_id", client.cid))
                who = self._authenticate(p)
                if who:  # keyed by connection too: an impostor may claim a real device's name
                    report.unauthenticated[f"{name} ({client.cid})"] = who
                    continue
                self.names[client.cid] = name
                why = _exclusion(p, cfg)
                if why:
                    report.excluded[name] = why
                else:
                    eligible.append(client)
            if len(eligible) > cfg.max_devices:
                eligible = random.Random(cfg.seed).sample(eligible, cfg.max_devices)
            report.selected = sorted(self.names[c.cid] for c in eligible)
            if len(eligible) < cfg.min_devices:
                report.skipped = (f"too few devices: {len(eligible)} eligible of {len(clients)} "
                                  f"connected, need {cfg.min_devices}")
                return []
            ins = FitIns(parameters, {**self._round_config(), "base_model": cfg.base_model,
                                      "epochs": cfg.epochs, "lr": cfg.lr,
                                      "embedding_space": cfg.embedding_space or cfg.base_model,
                                      "prox_mu": cfg.prox_mu, "prior_adjust": cfg.prior_adjust})
            return [(c, ins) for c in eligible]

        def aggregate_fit(self, server_round, results, failures):
            for f in failures:
                if isinstance(f, BaseException):
                    report.failures.append(f"{type(f).__name__}: {str(f)[:120]}")
                else:
                    report.failures.append(self.names.get(f[0].cid, f[0].cid))
            updates = []
            for client, res in results:
                name = self.names.get(client.cid, client.cid)
                report.bytes_received[name] = sum(len(t) for t in res.parameters.tensors)
                if res.num_examples == 0:
                    report.rejected[name] = "contributed nothing (no samples on the base model)"
                    continue
                try:
                    arrays = parameters_to_ndarrays(res.parameters)
                except Exception as e:  # undecodable bytes
                    report.rejected[name] = f"malformed parameters: {type(e).__name__}"
                    continue
                msg = update_message(cfg.round_id, self.nonce, name, res.num_examples, arrays)
                if not verify(self.keys.get(name, b""), res.metrics.get("signature"), msg):
                    report.rejected[name] = "update not signed with the device's registered key"
                    continue
                update, why = check_update(name, arrays, res.num_examples, w0, b0, cfg.rules)
                if update is None:
                    report.rejected[name] = why
                    continue
                update.metrics = {k: float(v) for k, v in res.metrics.items()
                                  if isinstance(v, int | float)}
                report.device_metrics[name] = update.metrics
                updates.append(update)
            report.accepted = sorted(u.device for u in updates)
            report.samples = sum(u.n for u in updates)
            if len(updates) < cfg.min_devices:
                report.skipped = (f"too few valid updates: {len(updates)} of {len(report.selected)} "
                                  f"selected (failures {len(failures)}, rejected "
                                  f"{len(report.rejected)}), need {cfg.min_devices}")
                return None, {}
            w, b, info = fedavg(updates, w0, b0, cfg.rules)
            report.clipped = info["clipped"]
            self.result = (w, b)
            return ndarrays_to_parameters([w, b]), {"devices": len(updates), "samples": report.samples}

        def configure_evaluate(self, server_round, parameters, client_manager):
            return []  # the frozen standard sets judge the candidate, not the devices

        def aggregate_evaluate(self, server_round, results, failures):
            return None, {}

        def evaluate(self, server_round, parameters):
            return None

    return HeadRound()


def _exclusion(p: dict, cfg: RoundConfig) -> str:
    if cfg.cohorts and p.get("cohort") not in cfg.cohorts:
        return f"cohort {p.get('cohort')!r} not in {list(cfg.cohorts)}"
    space = cfg.embedding_space or cfg.base_model
    if p.get("embedding_space") != space:
        return (f"samples in embedding space {p.get('embedding_space')!r}, the round adapts "
                f"{cfg.base_model!r} ({space!r})")
    n = p.get("n_samples", 0)
    if not isinstance(n, int) or n < cfg.min_samples:
        return f"{n} samples < {cfg.min_samples}"
    return ""
