"""The real engines on one machine, on free loopback ports and temp dirs: SeaweedFS as S3, a
PostgreSQL server, a multi-node Ray cluster as `ray start` processes. `make demo-cluster`
(jobs/cluster_env.py), the benchmarks and the tests start them; each one stops only its own
processes. Plain Python (subprocess), no pytest and no orchestrator.
"""
