#!/usr/bin/python3
"""k-means benchmark helper (bench/kmeans.sh): data and the scikit-learn side.

  kmeans.py gen DIR        DIR/points.h5:/points (KM_N x KM_D float64, KM_K
                           Gaussian blobs, fixed seed; by default 1,000,000 x
                           16 and 16) and DIR/init.csv (KM_K rows of the
                           data: the fixed initialisation)
  kmeans.py sklearn DIR [EMBER_OUT.h5]
                           times KMeans(algorithm='lloyd', n_init=1, tol=0,
                           max_iter=20, init=<init.csv>).fit(X) and prints one
                           JSON line: fit_seconds, inertia, n_iter, and, with
                           ember's output file, how far its centroids and
                           labels are from scikit-learn's.

Run with /usr/bin/python3 (Debian's numpy, which must use OpenBLAS: the
script says which BLAS it found on stderr).
"""
import json
import os
import sys
import time

import h5py
import numpy as np

N, D, K = (int(os.environ.get(v, d)) for v, d in
           (("KM_N", 1_000_000), ("KM_D", 16), ("KM_K", 16)))


def gen(out):
    rng = np.random.default_rng(20261121)
    centres = rng.normal(0.0, 10.0, (K, D))
    which = rng.integers(0, K, N)
    x = centres[which] + rng.normal(0.0, 2.0, (N, D))
    with h5py.File(os.path.join(out, "points.h5"), "w") as f:
        f["points"] = x
    init = x[rng.choice(N, K, replace=False)]
    np.savetxt(os.path.join(out, "init.csv"), init, delimiter=",", fmt="%.17g")


def blas_name():
    try:
        from threadpoolctl import threadpool_info
        return ", ".join("%s %s (%s threads)" % (i.get("internal_api"), i.get("version"),
                                                 i.get("num_threads"))
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except Exception as e:  # informational only
        return "unknown (%s)" % e


def run_sklearn(out, ember_out=None):
    from sklearn.cluster import KMeans
    with h5py.File(os.path.join(out, "points.h5"), "r") as f:
        x = f["points"][...]
    init = np.loadtxt(os.path.join(out, "init.csv"), delimiter=",")
    print("kmeans.py: BLAS: " + blas_name(), file=sys.stderr)
    km = KMeans(n_clusters=K, algorithm="lloyd", n_init=1, tol=0, max_iter=20, init=init)
    t = time.perf_counter()
    km.fit(x)
    t = time.perf_counter() - t
    res = {"fit_seconds": t, "inertia": float(km.inertia_), "n_iter": int(km.n_iter_)}
    if ember_out:
        with h5py.File(ember_out, "r") as f:
            c = f["centroids"][...]
            lab = f["labels"][...]
            res["ember_inertia"] = float(f.attrs["inertia"])
        res["centroid_max_abs_diff"] = float(np.abs(c - km.cluster_centers_).max())
        res["label_agreement"] = float((lab == km.labels_).mean())
    print(json.dumps(res))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "sklearn":
        run_sklearn(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        sys.exit(__doc__)
