"""The Depot: land, ingest, index, search and replay what the fleet captured.

Plain Python (no Dagster): `landing` decides what is new, `ingest` validates, decodes and writes
frames + metadata as Parquet, `embed`/`index` build the LanceDB search index, `search` and
`replay` serve engineers, `fleet` rolls up device telemetry. Assets in `assets/depot.py` are thin.
"""
