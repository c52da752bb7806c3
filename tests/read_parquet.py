#!/usr/bin/env python3
"""Independent check of an embeddings.parquet written by haidef-wsi, with pyarrow.

Usage: read_parquet.py FILE EXPECTED_ROWS DIM
Prints one JSON line: rows, columns, dim, the metadata, the first row's x/y and embedding[:4].
Exits non-zero when the file does not have the documented schema.
"""
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq

path, rows, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
table = pq.read_table(path)
schema = table.schema
expected = {
    "slide_id": pa.string(),
    "level": pa.uint32(),
    "mpp": pa.float64(),
    "x": pa.uint32(),
    "y": pa.uint32(),
    "width": pa.uint32(),
    "height": pa.uint32(),
    "tissue_fraction": pa.float32(),
}
for name, typ in expected.items():
    assert schema.field(name).type == typ, f"{name}: {schema.field(name).type} != {typ}"
emb = schema.field("embedding").type
assert pa.types.is_fixed_size_list(emb) and emb.list_size == dim and emb.value_type == pa.float32(), emb
assert table.num_rows == rows, f"{table.num_rows} rows, expected {rows}"
meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items() if not k.startswith(b"ARROW")}
first = table.slice(0, 1).to_pylist()[0]
print(json.dumps({
    "rows": table.num_rows,
    "columns": schema.names,
    "dim": emb.list_size,
    "metadata": meta,
    "first": {"x": first["x"], "y": first["y"], "embedding4": first["embedding"][:4]},
}))
