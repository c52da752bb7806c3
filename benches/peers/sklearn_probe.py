"""The peer of `train_probe` for the probe benchmark: the same work in scikit-learn.

Reads the embeddings (pyarrow) and labels, standardises on the training rows, fits
LogisticRegressionCV(Cs=10, cv=5) (scikit-learn's defaults: lbfgs, tol 1e-4, max_iter 100,
accuracy scoring), predicts the test rows and prints the wall time, C_ and the test ROC AUC.

Usage: python3 benches/peers/sklearn_probe.py DIR   (DIR from make_probe_data.py)
Also pickles the fitted scaler and model to DIR/sklearn_model.pkl (after the time is taken) for
sklearn_predict.py.
"""
import pickle
import sys
import time
import warnings

t0 = time.perf_counter()
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sklearn.linear_model import LogisticRegressionCV  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def main():
    d = sys.argv[1]
    t = pq.read_table(f"{d}/embeddings.parquet")
    col = t.column("embedding").combine_chunks()
    x = col.values.to_numpy().reshape(len(col), -1).astype(np.float64)
    ids = t.column("id").to_pylist()
    labels = {}
    with open(f"{d}/labels.csv") as f:
        next(f)
        for line in f:
            k, lab, split = line.rstrip("\n").split(",")
            labels[k] = (lab, split)
    y = np.array([labels[k][0] for k in ids])
    train = np.array([labels[k][1] == "train" for k in ids])
    scaler = StandardScaler().fit(x[train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegressionCV(Cs=10, cv=5).fit(scaler.transform(x[train]), y[train])
    p = m.predict_proba(scaler.transform(x[~train]))[:, 1]
    auc = roc_auc_score(y[~train] == m.classes_[1], p)
    print(f"sklearn: {time.perf_counter() - t0:.2f} s wall (imports included), C = {m.C_[0]:.6g}, test AUC {auc:.6f}, {train.sum()} train / {(~train).sum()} test")
    with open(f"{d}/sklearn_model.pkl", "wb") as f:
        pickle.dump((scaler, m), f)


if __name__ == "__main__":
    main()
