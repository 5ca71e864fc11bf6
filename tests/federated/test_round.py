"""One Flower round over 127.0.0.1 with real device clients, and every fault the round must survive:
a device that drops mid-round, malformed / NaN / huge updates, an oversized message, too few
devices. The round completes with the valid updates, or is skipped with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.federated.client import DeviceIdentity, Participant, make_client
from edge_agent.federated.samples import SampleStore
from flywheel.federated.aggregate import AggregationRules, Update, fedavg
from flywheel.federated.server import free_address, run_round
from flywheel.federated.strategy import RoundConfig

D, K, MODEL = 16, 4, "prod-1"
W0, B0 = np.random.default_rng(1).normal(size=(D, K)).astype(np.float32), np.zeros(K, np.float32)


def store(n: int, seed: int, model: str = MODEL) -> SampleStore:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(size=(K, D)) * 3
    s = SampleStore()
    y = rng.integers(0, K, n)
    for xi, yi in zip(centers[y] + rng.normal(size=(n, D)), y, strict=True):
        s.add(model, [xi], int(yi))
    return s


FLEET: dict[str, bytes] = {}  # the fleet's register of device keys (flywheel.federated.devices)


def registered(name: str, cohort: str = "A") -> DeviceIdentity:
    """A device with its own key, registered in FLEET as provisioning does."""
    identity = DeviceIdentity(name, "A", cohort)
    FLEET[name] = identity.key.public_bytes
    return identity


def honest(i: int, n: int = 40, model: str = MODEL, cohort: str = "A"):
    s, identity = store(n, i, model), registered(f"good-{i}", cohort)
    return lambda: make_client(identity, s)


def faulty(name: str, fit):
    """A registered device whose training is replaced (its properties are honest and it signs
    what it sends: it passes selection and authentication)."""
    s, identity = store(40, 99), registered(name)

    def factory():
        client = make_client(identity, s)
        client._fit = lambda parameters, config: fit(parameters)
        return client

    return factory


def drop_mid_round(parameters):
    raise ConnectionAbortedError("battery died mid-round")  # the client's stream breaks


FAULTS = {
    "nan": lambda p: ([p[0] * np.nan, p[1]], 40, {}),
    "malformed": lambda p: ([p[0]], 40, {}),
    "huge": lambda p: ([p[0] * 1e6, p[1]], 40, {}),
    "oversized": lambda p: ([np.zeros((2_000_000,), np.float32), p[1]], 40, {}),  # 8 MB > 1 MB
    "dropped": drop_mid_round,
}


def serve(factories, cfg: RoundConfig, max_message_bytes: int = 1024 * 1024):
    address = free_address()
    devices = [Participant(address, f, retry_s=0.2).start() for f in factories]
    try:
        return run_round(address, cfg, W0, B0, max_message_bytes=max_message_bytes, key_of=FLEET.get)
    finally:
        for d in devices:
            d.stop()


def config(n_devices: int, **kw) -> RoundConfig:
    return RoundConfig(base_model=MODEL, min_devices=2, min_samples=10, connect_window_s=20,
                       expected_devices=n_devices, fit_timeout_s=8, epochs=10,
                       rules=AggregationRules(max_samples=1000), **kw)


@pytest.mark.slow
def test_round_averages_the_valid_updates_and_survives_every_fault() -> None:
    factories = [honest(i) for i in range(3)] + [faulty(n, f) for n, f in FAULTS.items()]
    head, report = serve(factories, config(len(factories)))
    assert report.skipped == "" and head is not None
    assert report.connected == 8 and len(report.selected) == 8
    assert report.accepted == ["good-0", "good-1", "good-2"] and report.samples == 120
    assert "non-finite" in report.rejected["nan"]
    assert "1 arrays" in report.rejected["malformed"]
    assert "huge update" in report.rejected["huge"]
    assert len(report.failures) == 2  # the dropped device and the oversized message
    # the new head is FedAvg of exactly the honest updates (re-run them the same way)
    updates = [Update(f"good-{i}", *honest(i)().fit([W0, B0], {"base_model": MODEL, "epochs": 10})[0],
                      40) for i in range(3)]
    want, _, _ = fedavg(updates, W0, B0, AggregationRules())
    np.testing.assert_allclose(head[0], want, rtol=1e-5, atol=1e-6)
    # only numbers came back: 2 float32 arrays of the head's size per accepted device
    assert all(report.bytes_received[d] < (D * K + K) * 4 + 512 for d in report.accepted)
    assert set(report.device_metrics["good-0"]) == {"local_top1_before", "local_top1_after", "loss"}


@pytest.mark.slow
def test_round_with_too_few_devices_is_skipped_with_the_reason() -> None:
    factories = [honest(0), honest(1, n=3), honest(2, model="old-model"), honest(3, cohort="B")]
    head, report = serve(factories, config(4, cohorts=("A",)))
    assert head is None
    assert report.selected == ["good-0"]
    assert report.excluded == {"good-1": "3 samples < 10",
                               "good-2": "samples in embedding space 'old-model', the round adapts "
                                         "'prod-1' ('prod-1')",
                               "good-3": "cohort 'B' not in ['A']"}
    assert report.skipped == "too few devices: 1 eligible of 4 connected, need 2"


@pytest.mark.slow
def test_round_where_too_few_updates_survive_is_skipped() -> None:
    factories = [honest(0), faulty("nan", FAULTS["nan"]), faulty("dropped", drop_mid_round)]
    head, report = serve(factories, config(3))
    assert head is None and report.accepted == ["good-0"]
    assert report.skipped.startswith("too few valid updates: 1 of 3 selected")


@pytest.mark.slow
def test_only_registered_devices_take_part_and_every_impostor_is_refused_with_the_reason() -> None:
    """Device authentication: a process that reaches the server but holds no registered key is
    excluded at selection (unknown device; a registered device's name with another key), and a
    registered device's update that is not what it signed (tampered after signing) is rejected."""
    def impostor(name: str):  # a key the fleet never registered
        s = store(40, 7)
        return lambda: make_client(DeviceIdentity(name, "A", "A"), s)

    tamper_id = registered("tampered")

    def tampered():
        client = make_client(tamper_id, store(40, 8))
        signed = client.fit
        client.fit = lambda parameters, config: (lambda h, n, m: ([h[0] + 1.0, h[1]], n, m))(
            *signed(parameters, config))  # the head changed after the device signed it
        return client

    factories = [honest(0), honest(1), impostor("stranger"), impostor("good-0"), tampered]
    head, report = serve(factories, config(5))
    assert head is not None and report.accepted == ["good-0", "good-1"]
    assert report.connected == 5 and report.selected == ["good-0", "good-1", "tampered"]
    assert report.excluded == {}
    why = {k.split(" ")[0]: v for k, v in report.unauthenticated.items()}
    assert why["stranger"] == "unknown device 'stranger': no key registered in the fleet"
    assert why["good-0"] == "join not signed with the registered key of 'good-0'"
    assert report.rejected == {"tampered": "update not signed with the device's registered key"}
    assert report.samples == 80  # the impostors' and the tampered samples weigh nothing


@pytest.mark.slow
def test_a_clean_round_logs_no_channel_closed_warning(caplog) -> None:
    """The "Channel closed" noise: with every Flower and gRPC record captured (Flower's logger at
    DEBUG, not the ERROR a device sets), a clean round and its shutdown (server disconnects the
    clients, then stops with a grace period) log "channel closed" only as Flower's DEBUG note when a
    client ends its session, and nothing above INFO but the client's start_client deprecation
    banner (silenced on devices by Participant)."""
    import logging

    address = free_address()
    devices = [Participant(address, honest(i), retry_s=0.2).start() for i in range(3)]
    logging.getLogger("flwr").setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            head, report = run_round(address, config(3), W0, B0, key_of=FLEET.get)
            for d in devices:
                d.stop()
            for _ in range(50):  # the clients' sessions end after the server's disconnect
                if all(d.rounds for d in devices):
                    break
                import time

                time.sleep(0.1)
    finally:
        for d in devices:
            d.stop()
        logging.getLogger("flwr").setLevel(logging.ERROR)
    assert head is not None and len(report.accepted) == 3 and not report.failures
    closed = [r for r in caplog.records if "closed" in r.getMessage().lower()]
    assert closed and all(r.levelno == logging.DEBUG for r in closed), [
        (r.levelname, r.getMessage()) for r in closed]
    loud = [(r.name, r.levelname, r.getMessage()[:80]) for r in caplog.records
            if r.levelno >= logging.WARNING and "start_client() is deprecated" not in r.getMessage()]
    assert loud == []


def test_grpc_errors_of_closed_bridges_at_shutdown_are_filtered_and_others_kept() -> None:
    """What a 200-device round logged after completing: grpc._server's "Exception iterating
    responses" with GrpcBridgeClosed, one per client stream. run_round filters exactly that."""
    import logging
    import sys

    from flwr.server.superlink.fleet.grpc_bidi.grpc_bridge import GrpcBridgeClosed

    from flywheel.federated.server import _DropClosedBridge, _quiet_closed_bridges

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            info = sys.exc_info()
        return logging.LogRecord("grpc._server", logging.ERROR, __file__, 1,
                                 "Exception iterating responses: ", None, info)

    f = _DropClosedBridge()
    assert not f.filter(record(GrpcBridgeClosed()))
    assert f.filter(record(RuntimeError("a real server fault")))
    _quiet_closed_bridges()
    _quiet_closed_bridges()  # once per process, however many rounds
    assert sum(isinstance(x, _DropClosedBridge) for x in logging.getLogger("grpc._server").filters) == 1

