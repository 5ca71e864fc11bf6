"""The agent's federated learner: auto-labelled samples from the inference loop, and the Flower
participant that contributes head updates to the rounds the channel's signed announcements open."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import FederatedConfig
from edge_agent.contract.federated import BACKBONE_METADATA, embedding_space
from edge_agent.federated.announce import RoundAnnouncements
from edge_agent.federated.client import DeviceIdentity, Participant, make_client
from edge_agent.federated.identity import DeviceKey
from edge_agent.federated.samples import AutoLabeler, SampleStore
from edge_agent.lake import Lake


class FederatedLearner:
    def __init__(self, cfg: FederatedConfig, *, device_id: str, store_id: str, lake: Lake) -> None:
        self.cfg = cfg
        self.store = SampleStore(cfg.sample_cap)
        self.labeler = AutoLabeler(self.store, [], min_step_g=cfg.min_step_g)
        key = DeviceKey.load_or_create(cfg.device_key or Path(cfg.state_dir) / "device.key")
        self.identity = DeviceIdentity(device_id, store_id, cfg.cohort or store_id, key)
        self.announcements = RoundAnnouncements(lake, cfg.channel, Path(cfg.trusted_root).read_bytes(),
                                                cfg.state_dir, check_s=cfg.check_s,
                                                require_tls=cfg.require_tls)
        self.participant = Participant("", self._client, retry_s=cfg.retry_s,
                                       announcements=self.announcements)
        self._version: str | None = None
        self.space: str | None = None  # the running model's embedding space (samples' key)

    def _client(self):
        return make_client(self.identity, self.store, expect=self.participant.joining,
                           on_refusal=self.participant.refused)

    @property
    def public_key(self) -> bytes:
        """What the fleet registers for this device (flywheel.federated.devices.register_device)."""
        return self.identity.key.public_bytes

    def start(self) -> None:
        self.participant.start()

    def stop(self) -> None:
        self.participant.stop()

    def observe(self, model, pred, sf, t: float) -> int:
        """One frame from the inference loop (O(1)): the embedding and the free labels; returns
        the samples this frame's insertion added."""
        embedding = embedding_of(pred)
        if embedding is None:
            return 0  # a model without an embedding output cannot take part
        if model.version != self._version:  # a new model (OTA): same backbone keeps the samples
            self._version = model.version
            labels = list(getattr(model, "labels", []))
            self.space = embedding_space(backbone_of(model), labels)
            self.labeler.set_labels(labels)
        before = self.store.added
        self.labeler.update(t, embedding, [b.text for b in sf.barcodes], sf.weight_delta_g,
                            self.space, sf.motion)
        return self.store.added - before


def embedding_of(pred):
    """The one place the federated learner reads a frame's embedding (the head's input) from a
    prediction: a device model that exposes it differently (a detector + crop classifier: the
    crop's embedding) changes only this."""
    return pred.embedding


def backbone_of(model) -> str:
    """What computed those embeddings: the backbone digest the cloud stamped into the ONNX model
    (flywheel/learner/onnx_head.py), else the model version (an unstamped model: its samples go
    with it). Read with `embedding_of`: a two-stage model points both at its crop classifier."""
    digest = getattr(model, "metadata", {}).get(BACKBONE_METADATA)
    return digest or f"model:{model.version}"
