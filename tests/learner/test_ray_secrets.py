"""S3 credentials reach the Ray training worker as its environment, never inside the pickled task
request: against the session's real SeaweedFS (auth enforced) and real Ray runtime."""

from __future__ import annotations

import pickle

import pytest

from flywheel.learner.config import TrainConfig
from flywheel.learner.train import TrainRequest, ray_task


def _request(lake) -> TrainRequest:
    return TrainRequest(lake.uri, lake.s3, "ds-000000000000000000000000", TrainConfig(num_cpus=1),
                        "cls-secrets")


def test_the_task_request_carries_no_secret(s3_lake, seaweed):
    req, options = ray_task(_request(s3_lake))
    payload = pickle.dumps(req)
    assert seaweed.secret_key.encode() not in payload and seaweed.access_key.encode() not in payload
    assert req.lake_s3.endpoint == seaweed.endpoint  # where the lake is still travels
    assert options["runtime_env"]["env_vars"] == {"AWS_ACCESS_KEY_ID": seaweed.access_key,
                                                  "AWS_SECRET_ACCESS_KEY": seaweed.secret_key}
    assert options["num_cpus"] == 1 and options["max_retries"] == 0


def test_file_lakes_need_no_environment(local_lake):
    req, options = ray_task(_request(local_lake))
    assert req.lake_s3 is None and "runtime_env" not in options


@pytest.mark.integration
def test_the_worker_reads_the_lake_with_credentials_from_its_environment(s3_lake, ray_cluster):
    s3_lake.put("probe.txt", b"hello")
    req, options = ray_task(_request(s3_lake))

    def read(r: TrainRequest) -> bytes:
        from edge_agent.lake import Lake

        return Lake(r.lake_uri, s3=r.lake_s3).get("probe.txt")

    assert ray_cluster.get(ray_cluster.remote(**options)(read).remote(req)) == b"hello"
    # a wrong secret in that environment is refused by the server: the worker really uses it
    wrong = {**options, "runtime_env": {"env_vars": {"AWS_ACCESS_KEY_ID": s3_lake.s3.access_key_id,
                                                     "AWS_SECRET_ACCESS_KEY": "not-the-secret"}}}
    with pytest.raises(Exception, match="403 Forbidden"):
        ray_cluster.get(ray_cluster.remote(**wrong)(read).remote(req))
