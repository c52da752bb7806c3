"""The peer of `predict_probe` for the probe benchmark: the same work in scikit-learn.

Reads the embeddings (pyarrow), applies the scaler and model that sklearn_probe.py pickled to
every row (`predict_proba`), and writes the key and one probability column per class, `p_<class>`
(float64), to Parquet, as `predict_probe` does; prints the wall time.

Usage: python3 benches/peers/sklearn_predict.py DIR OUT.parquet   (DIR from make_probe_data.py,
after sklearn_probe.py)
"""
import pickle
import sys
import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def main():
    d, out = sys.argv[1], sys.argv[2]
    with open(f"{d}/sklearn_model.pkl", "rb") as f:
        scaler, model = pickle.load(f)
    t = pq.read_table(f"{d}/embeddings.parquet")
    col = t.column("embedding").combine_chunks()
    x = col.values.to_numpy().reshape(len(col), -1).astype(np.float64)
    p = model.predict_proba(scaler.transform(x))
    cols = {"id": t.column("id")}
    for j, c in enumerate(model.classes_):
        cols[f"p_{c}"] = pa.array(p[:, j])
    pq.write_table(pa.table(cols), out)
    print(f"sklearn predict: {time.perf_counter() - t0:.2f} s wall (imports included), {len(x)} rows")


if __name__ == "__main__":
    main()
