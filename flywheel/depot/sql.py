"""`flywheel sql`: DuckDB over the Depot's Parquet lake, for ad-hoc questions.

Views: `frames` (depot/frames/date=*/part.parquet), `fleet` (depot/fleet/date=*/part.parquet) and
`quarantine` (the reason documents). A local lake is read in place; an S3 lake is read through the
lake API into Arrow (no DuckDB extension to download).
"""

from __future__ import annotations

import io
import json
from typing import Any

from edge_agent.lake import Lake
from flywheel.depot.config import FLEET, FRAMES, QUARANTINE


def _parquet_tables(lake: Lake, prefix: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [pq.read_table(io.BytesIO(lake.get(i.key))) for i in lake.list(prefix)
             if i.key.endswith(".parquet")]
    return pa.concat_tables(parts, promote_options="default") if parts else None


def connect(lake: Lake):  # noqa: ANN201 - duckdb connection with the views registered
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    for view, prefix in (("frames", FRAMES), ("fleet", FLEET)):
        if lake.is_local:
            root = lake.local_path(prefix)
            if any(root.glob("*/part.parquet")):
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{root}/*/part.parquet', "
                            "union_by_name=true, hive_partitioning=false)")
                continue
        table = None if lake.is_local else _parquet_tables(lake, prefix)
        if table is not None:
            con.register(view, table)
    reasons = [json.loads(lake.get(i.key)) for i in lake.list(QUARANTINE) if i.key.endswith(".reason.json")]
    if reasons:
        con.register("quarantine", pa.Table.from_pylist(reasons))
    return con


def run_sql(lake: Lake, query: str) -> tuple[list[str], list[tuple]]:
    con = connect(lake)
    cur = con.execute(query)
    cols = [d[0] for d in cur.description] if cur.description else []
    return cols, cur.fetchall()
