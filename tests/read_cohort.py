#!/usr/bin/env python3
"""Independent check of a cohort dataset written by embed_cohort: read as ONE table by pyarrow
(Hive partitioning) and by DuckDB (when installed; .ci/run installs it).

Usage: read_cohort.py DIR
Prints one JSON line: rows, per-slide rows and patch positions (pyarrow), per-slide rows
(DuckDB), duplicate (slide_id, x, y) rows, and files whose own slide_id column differs from
their folder's slide_id=… value. Exits non-zero when the dataset cannot be read as one table.
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

root = os.path.join(sys.argv[1], "embeddings")
# slide_id is text: a partition value such as "007" must not become the integer 7.
part = ds.partitioning(pa.schema([("slide_id", pa.string())]), flavor="hive")
table = ds.dataset(root, format="parquet", partitioning=part).to_table(columns=["slide_id", "x", "y", "embedding"])
positions = {}
for sid, x, y in zip(table["slide_id"].to_pylist(), table["x"].to_pylist(), table["y"].to_pylist()):
    positions.setdefault(sid, []).append([x, y])
unique = len({(s, x, y) for s, ps in positions.items() for x, y in ps})
mismatched = []
for folder in sorted(os.listdir(root)):
    for name in os.listdir(os.path.join(root, folder)):
        own = set(pq.read_table(os.path.join(root, folder, name), columns=["slide_id"])["slide_id"].to_pylist())
        if own != {folder.split("=", 1)[1]}:
            mismatched.append([folder, name, sorted(own)])
out = {
    "rows": table.num_rows,
    "per_slide": {s: len(p) for s, p in positions.items()},
    "positions": {s: sorted(p) for s, p in positions.items()},
    "duplicates": table.num_rows - unique,
    "mismatched": mismatched,
    "dim": table.schema.field("embedding").type.list_size,
}
try:
    import duckdb
except ImportError:
    duckdb = None
if duckdb is not None:
    con = duckdb.connect()
    glob = os.path.join(root, "*", "*.parquet")
    rows = con.execute(
        "SELECT slide_id, count(*) FROM read_parquet(?, hive_partitioning = true, hive_types = {'slide_id': VARCHAR}) GROUP BY slide_id",
        [glob],
    ).fetchall()
    out["duckdb_per_slide"] = {s: n for s, n in rows}
print(json.dumps(out))
