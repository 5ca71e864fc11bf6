"""Release fixtures: real keys, a real TUF repository in a real lake (local dir or SeaweedFS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.release.keys import keygen, load_keys
from flywheel.release.repository import ChannelRepository, ExpiryConfig, open_channel
from tests.support.ota import SimDevice

CHANNEL = "stable"


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path: Path):
    """The same tests on a file:// lake and on SeaweedFS."""
    if request.param == "local":
        from edge_agent.lake import Lake

        return Lake.at_path(tmp_path / "lake")
    return request.getfixturevalue("s3_lake")


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    keygen(tmp_path / "keys")
    return tmp_path / "keys"


@pytest.fixture
def repo(lake, keys_dir: Path) -> ChannelRepository:
    return open_channel(lake, CHANNEL, load_keys(keys_dir), ExpiryConfig())


@pytest.fixture
def trusted_root(repo: ChannelRepository) -> bytes:
    """What the factory provisions on each device: the channel's root v1."""
    return repo.lake.get(f"{repo.meta_prefix}/1.root.json")


@pytest.fixture
def device(tmp_path: Path) -> SimDevice:
    d = SimDevice("cart-0001", tmp_path / "cart-0001")
    d.install_factory()
    return d
