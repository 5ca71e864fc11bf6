"""Which round to join: the signed announcement in the release channel, verified on the device.

`RoundAnnouncements.check()` refreshes the channel's TUF metadata from the device's trusted root
(python-tuf's `ngclient.Updater` over the lake, as the OTA updater does: signatures, thresholds,
key rotation, metadata expiry and rollback are TUF's), downloads `federated/round.json` verified
against the signed targets, then refuses an announcement that is for another channel, expired, or
replayed (a round id at or below the last one this device joined, persisted across restarts), and
(with `require_tls`, the default) one that carries no TLS CA for the link to the round's server.
Every refusal is a `Verdict` with the reason; nothing unverified is ever acted on.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.contract import ContractError
from edge_agent.contract.federated import ROUND_TARGET, RoundAnnouncementV1, parse_round_announcement
from edge_agent.lake import Lake


@dataclass(frozen=True)
class Verdict:
    announcement: RoundAnnouncementV1 | None  # a round to join, or None
    reason: str = ""  # why not (when announcement is None)


class RoundAnnouncements:
    def __init__(self, lake: Lake, channel: str, trusted_root: bytes, state_dir: str | Path,
                 check_s: float = 30.0, require_tls: bool = True) -> None:
        self.lake, self.channel, self.trusted_root = lake, channel, trusted_root
        self.require_tls = require_tls  # refuse a round whose link is not TLS to the announced CA
        self.state_dir = Path(state_dir)
        self.check_s = check_s  # at most one metadata refresh per this many seconds
        self._state = self.state_dir / "federated.json"
        self._lock = threading.Lock()
        self._last: tuple[float, Verdict] | None = None

    @property
    def last_joined(self) -> int:
        try:
            return int(json.loads(self._state.read_bytes()).get("last_round", 0))
        except (FileNotFoundError, ValueError):
            return 0

    def mark_joined(self, round_id: int) -> None:
        """Persist (atomically) that this device took part in `round_id`: never again."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_round": max(round_id, self.last_joined),
                                   "at": datetime.now(UTC).isoformat()}))
        os.replace(tmp, self._state)
        self._last = None

    def check(self, now: datetime | None = None, *, fresh: bool = False) -> Verdict:
        """The round to join now, or why none (cached for `check_s` seconds unless `fresh`)."""
        import time

        t = time.monotonic()
        with self._lock:
            if fresh or self._last is None or t - self._last[0] >= self.check_s:
                self._last = (t, self._fetch())
            verdict = self._last[1]
        return self._judge(verdict, now or datetime.now(UTC))

    def _judge(self, verdict: Verdict, now: datetime) -> Verdict:
        ann = verdict.announcement
        if ann is None:
            return verdict
        if ann.expires_at <= now:
            return Verdict(None, f"round {ann.round_id} announcement expired at {ann.expires_at.isoformat()}")
        if self.require_tls and not ann.tls_ca:
            return Verdict(None, f"round {ann.round_id} announced without a TLS CA: this device sends "
                                 "updates only over TLS (federated.require_tls)")
        if ann.round_id <= self.last_joined:
            return Verdict(None, f"round {ann.round_id} replayed: this device already joined round "
                                 f"{self.last_joined}")
        return verdict

    def _fetch(self) -> Verdict:
        from tuf.api import exceptions as tuf_errors

        from edge_agent.ota.fetcher import LakeFetcher, channel_updater

        try:
            fetcher = LakeFetcher(self.lake, self.state_dir / "partial")
            tuf = channel_updater(self.state_dir, self.channel, fetcher, self.trusted_root)
            tuf.refresh()
            info = tuf.get_targetinfo(ROUND_TARGET)
            if info is None:
                return Verdict(None, f"no round announced in channel {self.channel!r}")
            path = tuf.download_target(info, str(self.state_dir / "round.json"))
            ann = parse_round_announcement(Path(path).read_bytes())
        except tuf_errors.UnsignedMetadataError as e:
            return Verdict(None, f"announcement refused: metadata not signed by the channel's keys ({e})")
        except tuf_errors.ExpiredMetadataError as e:
            return Verdict(None, f"announcement refused: channel metadata expired ({e})")
        except tuf_errors.BadVersionNumberError as e:
            return Verdict(None, f"announcement refused: metadata rolled back ({e})")
        except tuf_errors.LengthOrHashMismatchError as e:
            return Verdict(None, f"announcement refused: round.json is not what the targets signed ({e})")
        except ContractError as e:
            return Verdict(None, f"announcement refused: {e}")
        except Exception as e:  # the lake unreachable, a repository error: no round for now
            return Verdict(None, f"announcement unavailable: {type(e).__name__}: {str(e)[:200]}")
        if ann.channel != self.channel:
            return Verdict(None, f"announcement refused: signed for channel {ann.channel!r}, not "
                                 f"{self.channel!r}")
        return Verdict(ann)
