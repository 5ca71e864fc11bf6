"""The agent's federated learner: auto-labelled samples from the inference loop, and the Flower
participant that contributes head updates to the rounds the channel's signed announcements open."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import FederatedConfig
from edge_agent.federated.announce import RoundAnnouncements
from edge_agent.federated.client import DeviceIdentity, Participant, make_client
from edge_agent.federated.samples import AutoLabeler, SampleStore
from edge_agent.lake import Lake


class FederatedLearner:
    def __init__(self, cfg: FederatedConfig, *, device_id: str, store_id: str, lake: Lake) -> None:
        self.cfg = cfg
        self.store = SampleStore(cfg.sample_cap)
        self.labeler = AutoLabeler(self.store, [], min_step_g=cfg.min_step_g)
        self.identity = DeviceIdentity(device_id, store_id, cfg.cohort or store_id)
        self.announcements = RoundAnnouncements(lake, cfg.channel, Path(cfg.trusted_root).read_bytes(),
                                                cfg.state_dir, check_s=cfg.check_s,
                                                require_tls=cfg.require_tls)
        self.participant = Participant("", self._client, retry_s=cfg.retry_s,
                                       announcements=self.announcements)
        self._version: str | None = None

    def _client(self):
        return make_client(self.identity, self.store, expect=self.participant.joining,
                           on_refusal=self.participant.refused)

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
        if model.version != self._version:
            self._version = model.version
            self.labeler.set_labels(list(getattr(model, "labels", [])))
        before = self.store.added
        self.labeler.update(t, embedding, [b.text for b in sf.barcodes], sf.weight_delta_g,
                            model.version, sf.motion)
        return self.store.added - before


def embedding_of(pred):
    """The one place the federated learner reads a frame's embedding (the head's input) from a
    prediction: a device model that exposes it differently (a detector + crop classifier: the
    crop's embedding) changes only this."""
    return pred.embedding
