"""Writes cases.json: token vectors with the clusters and pooled vectors PyLate's token pooling gives for them.

Cases with "method": "pylate" follow PyLate (pylate/models/colbert.py, ColBERT.pool_embeddings_hierarchical): for each document of L2-normalized token
vectors: the first `protected_tokens` vectors are kept aside; the others' cosine similarities S = X @ X.T (float32)
become observations 1 - S, clustered by scipy.cluster.hierarchy.linkage(method="ward") (Euclidean distances between
those rows), cut by fcluster(t=max(n // pool_factor, 1), criterion="maxclust"); the result is the mean of each
cluster, for cluster ids 1..t, followed by the protected vectors. Cases with "method": "sentence_transformers" follow
sentence-transformers v6's pool_document_embeddings (see sentence_transformers_pool).

Run once with any numpy + scipy (this file was run with scipy 1.10.1, numpy 1.24.2):
    python3 generate.py
Vectors are stored as base64 float32 little-endian so that the test reads exactly the values scipy saw.
"""
import base64
import json

import numpy as np
import scipy
from scipy.cluster import hierarchy


def pylate_pool(x, pool_factor, protected):
    protected_vectors = x[:protected]
    rest = x[protected:]
    distances = 1 - rest @ rest.T
    z = hierarchy.linkage(distances, method="ward")
    clusters = max(len(rest) // pool_factor, 1)
    labels = hierarchy.fcluster(z, t=clusters, criterion="maxclust")
    pooled = [rest[labels == c].mean(axis=0) for c in range(1, clusters + 1) if (labels == c).any()]
    pooled.extend(protected_vectors)
    return labels, np.stack(pooled).astype(np.float32)


def sentence_transformers_pool(x, pool_factor, protected):
    """sentence-transformers v6 (multi_vector_encoder/modules/hierarchical_pooling.py, pool_document_embeddings): Ward
    linkage over the condensed cosine distances themselves, the protected vectors first, and the document unchanged when
    the cut would keep every vector."""
    protected_vectors = x[:protected]
    rest = x[protected:]
    n = len(rest)
    clusters = max(n // pool_factor, 1)
    if clusters >= n:
        return np.arange(1, n + 1), x
    condensed = (1 - rest @ rest.T)[np.triu_indices(n, k=1)]
    labels = hierarchy.fcluster(hierarchy.linkage(condensed, method="ward"), t=clusters, criterion="maxclust")
    pooled = [rest[labels == c].mean(axis=0) for c in range(1, clusters + 1) if (labels == c).any()]
    return labels, np.concatenate([protected_vectors, np.stack(pooled)]).astype(np.float32)


def unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


rng = np.random.default_rng(20261202)
cases = []


def add(name, x, pool_factor, protected, method="pylate"):
    pool = pylate_pool if method == "pylate" else sentence_transformers_pool
    labels, pooled = pool(x, pool_factor, protected)
    cases.append({
        "name": name, "method": method, "tokens": int(x.shape[0]), "dim": int(x.shape[1]), "pool_factor": pool_factor,
        "protected_tokens": protected, "vectors": b64(x), "labels": [int(v) for v in labels],
        "pooled_tokens": int(pooled.shape[0]), "pooled": b64(pooled),
    })


# Random unit vectors: sizes from tiny to a full 180-token PyLate document, several pool factors and protected counts.
for n, dim, factor, protected in [(3, 8, 2, 0), (4, 8, 2, 1), (7, 16, 3, 1), (12, 16, 2, 2), (33, 32, 2, 1),
                                  (64, 48, 4, 1), (100, 64, 3, 0), (128, 128, 2, 1), (180, 128, 2, 1),
                                  (180, 128, 3, 1), (180, 96, 4, 2), (57, 128, 8, 1), (40, 32, 50, 1)]:
    add(f"random_{n}x{dim}_f{factor}_p{protected}", unit(rng.standard_normal((n, dim))), factor, protected)

# Clustered tokens (what real documents look like: repeated and related words), noise of three sizes.
for n, dim, centers, noise, factor in [(90, 64, 12, 0.05, 2), (150, 128, 20, 0.2, 3), (180, 128, 8, 0.5, 2)]:
    c = rng.standard_normal((centers, dim))
    x = c[rng.integers(0, centers, n)] + noise * rng.standard_normal((n, dim))
    add(f"clustered_{n}x{dim}_c{centers}_s{noise}", unit(x), factor, 1)

# Exact duplicates: equal distances, so the merge order is decided by scipy's tie rule.
base = unit(rng.standard_normal((6, 16)))
dup = np.concatenate([base, base[[0, 1, 2]], base[[0, 0]]])
add("duplicates_11x16", dup.astype(np.float32), 2, 1)

# sentence-transformers v6's variant on random and clustered documents.
for n, dim, factor, protected in [(12, 16, 2, 1), (64, 48, 3, 1), (180, 128, 2, 1), (181, 128, 4, 0)]:
    add(f"st_random_{n}x{dim}_f{factor}_p{protected}", unit(rng.standard_normal((n, dim))), factor, protected, "sentence_transformers")
c = rng.standard_normal((10, 64))
add("st_clustered_120x64", unit(c[rng.integers(0, 10, 120)] + 0.2 * rng.standard_normal((120, 64))), 2, 1, "sentence_transformers")

with open("cases.json", "w") as f:
    json.dump({"generator": "generate.py", "scipy": scipy.__version__, "numpy": np.__version__, "cases": cases}, f)
print(len(cases), "cases")
