"""LocalRayCluster in a fresh process (what a `dagster dev` step gets): it starts its own Ray
runtime with the configured CPUs, runs Ray work for the asset, and shuts the runtime down after.
In a subprocess so it never touches the test session's shared runtime."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json
    import dagster as dg
    import ray as ray_mod
    from dagster_ray import RayResource
    from resources.ray import LocalRayCluster

    seen = {}

    @dg.asset
    def probe(ray: RayResource) -> None:
        seen["initialized"] = ray_mod.is_initialized()
        seen["cpus"] = ray_mod.cluster_resources().get("CPU")
        seen["square"] = ray_mod.get(ray_mod.remote(lambda x: x * x).remote(7))
        seen["env"] = ray_mod.get(ray_mod.remote(
            lambda: __import__("os").environ.get("YOLO_OFFLINE")).remote())

    result = dg.materialize([probe], resources={"ray": LocalRayCluster(num_cpus=1)})
    seen["success"] = result.success
    seen["after"] = ray_mod.is_initialized()
    print("RESULT " + json.dumps(seen))
""")


@pytest.mark.slow
@pytest.mark.integration
def test_local_ray_cluster_owns_its_runtime_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180,
                         env={**__import__("os").environ, "RAY_AUTH_MODE": "disabled"})
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stderr[-3000:]
    seen = json.loads(line.removeprefix("RESULT "))
    assert seen == {"initialized": True, "cpus": 1.0, "square": 49, "env": "1", "success": True,
                    "after": False}
