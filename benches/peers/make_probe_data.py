"""Data for the probe benchmark: 100,000 "patch" rows x 384 float32 (Path Foundation's width),
two classes whose means differ along 16 random directions, plus Gaussian noise (numpy
default_rng(0)); a fixed 80/20 train/test split column.

Usage: python3 benches/peers/make_probe_data.py [OUT_DIR] [ROWS]   (default target/probe-bench, 100000)
Writes OUT_DIR/embeddings.parquet (id, embedding) and OUT_DIR/labels.csv (id, label, split).
"""
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "target/probe-bench"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    d = 384
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    directions = rng.standard_normal((16, d)) / np.sqrt(d)
    shift = rng.standard_normal(16) * 0.2
    x = rng.standard_normal((n, d)) + np.outer(y * 2 - 1, shift @ directions)
    x = x.astype(np.float32)
    ids = np.array([f"p{i:06d}" for i in range(n)])
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)
    pq.write_table(pa.table({"id": ids, "embedding": emb}), os.path.join(out, "embeddings.parquet"))
    split = np.where(rng.random(n) < 0.8, "train", "test")
    with open(os.path.join(out, "labels.csv"), "w") as f:
        f.write("id,label,split\n")
        for i in range(n):
            f.write(f"{ids[i]},{'tumor' if y[i] else 'normal'},{split[i]}\n")


if __name__ == "__main__":
    main()
