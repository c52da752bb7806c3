#!/usr/bin/env python3
"""Compares two runs of tools/compare_job_outputs.sh with pyarrow: every Parquet file's schema
(column names, types, field metadata), rows (key columns equal, embeddings equal to the bit)
and file metadata (except the library version), and the pictures byte for byte.

    python3 tools/compare_job_outputs.py OUT_BEFORE OUT_AFTER

Exits 1 and names what differs; prints one line per file compared.
"""
import sys
from pathlib import Path

import pyarrow.parquet as pq

# Metadata that may differ between two builds of the same behaviour.
VOLATILE = {b"library_version"}


def parquet_files(root: Path):
    return sorted(p.relative_to(root) for p in root.rglob("*.parquet"))


def compare_parquet(a: Path, b: Path) -> list[str]:
    ta, tb = pq.read_table(a), pq.read_table(b)
    problems = []
    if ta.schema.remove_metadata() != tb.schema.remove_metadata():
        problems.append(f"schema: {ta.schema.remove_metadata()} vs {tb.schema.remove_metadata()}")
    for name in ta.schema.names:
        if name in tb.schema.names and ta.schema.field(name).metadata != tb.schema.field(name).metadata:
            problems.append(f"field metadata of {name}")
    ma = {k: v for k, v in (ta.schema.metadata or {}).items() if k not in VOLATILE}
    mb = {k: v for k, v in (tb.schema.metadata or {}).items() if k not in VOLATILE}
    if ma != mb:
        keys = sorted(set(ma) | set(mb))
        problems += [f"metadata {k.decode()}: {ma.get(k)!r} vs {mb.get(k)!r}" for k in keys if ma.get(k) != mb.get(k)]
    # Parquet's own key-value metadata (what DuckDB sees), which also holds what jobs add at the end.
    ka = {k: v for k, v in (pq.ParquetFile(a).metadata.metadata or {}).items() if k not in VOLATILE and k != b"ARROW:schema"}
    kb = {k: v for k, v in (pq.ParquetFile(b).metadata.metadata or {}).items() if k not in VOLATILE and k != b"ARROW:schema"}
    if ka != kb:
        keys = sorted(set(ka) | set(kb))
        problems += [f"key-value {k.decode()}: {ka.get(k)!r} vs {kb.get(k)!r}" for k in keys if ka.get(k) != kb.get(k)]
    if ta.num_rows != tb.num_rows:
        problems.append(f"rows: {ta.num_rows} vs {tb.num_rows}")
    elif not problems:
        for name in ta.schema.names:
            if not ta.column(name).equals(tb.column(name)):
                problems.append(f"column {name} differs")
    return problems


def main() -> int:
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    failed = False
    files_a, files_b = parquet_files(before), parquet_files(after)
    if files_a != files_b:
        print(f"different Parquet files: {files_a} vs {files_b}")
        failed = True
    for rel in files_a:
        if rel not in files_b:
            continue
        problems = compare_parquet(before / rel, after / rel)
        rows = pq.read_metadata(before / rel).num_rows
        print(f"{rel}: {rows} rows, {'same' if not problems else 'DIFFERENT: ' + '; '.join(problems)}")
        failed |= bool(problems)
    pics_a = sorted(p.relative_to(before) for p in before.rglob("*.png"))
    pics_b = sorted(p.relative_to(after) for p in after.rglob("*.png"))
    if pics_a != pics_b:
        print(f"different pictures: {pics_a} vs {pics_b}")
        failed = True
    for rel in pics_a:
        if rel in pics_b:
            same = (before / rel).read_bytes() == (after / rel).read_bytes()
            print(f"{rel}: {'same bytes' if same else 'DIFFERENT bytes'}")
            failed |= not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
