//! k-means over the patch embeddings (linfa-clustering), seeded so that a given seed always
//! gives the same clusters.

use crate::error::{PipelineError, Result};
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;

/// Cluster label of each row of `embeddings` (`n x dim`, row-major), with `k` clusters.
pub(crate) fn kmeans(embeddings: &[f32], dim: usize, k: usize, seed: u64) -> Result<Vec<usize>> {
    let n = embeddings.len() / dim.max(1);
    if k == 0 {
        return Err(PipelineError::Options("k must be at least 1".into()));
    }
    if k > n {
        return Err(PipelineError::Options(format!("k = {k} clusters but only {n} patches were embedded; lower k or embed more patches")));
    }
    let data =
        Array2::from_shape_vec((n, dim), embeddings.iter().map(|v| f64::from(*v)).collect()).map_err(|e| PipelineError::Clustering { source: Box::new(e) })?;
    // One f64 copy of the embeddings (8 × D bytes a patch), not two: the clusters are predicted
    // from the dataset's own records.
    let dataset = DatasetBase::from(data);
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(4)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .fit(&dataset)
        .map_err(|e| PipelineError::Clustering { source: Box::new(e) })?;
    Ok(model.predict(dataset.records()).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_blobs_and_is_deterministic() {
        // Three well separated groups in 4-d.
        let mut e = Vec::new();
        for g in 0..3 {
            for i in 0..10 {
                e.extend([g as f32 * 10.0 + i as f32 * 0.01, 1.0, -(g as f32) * 5.0, 0.5]);
            }
        }
        let a = kmeans(&e, 4, 3, 7).unwrap();
        assert_eq!(a, kmeans(&e, 4, 3, 7).unwrap());
        for g in 0..3 {
            let first = a[g * 10];
            assert!(a[g * 10..g * 10 + 10].iter().all(|l| *l == first));
        }
        assert_ne!(a[0], a[10]);
        assert_ne!(a[10], a[20]);
        let err = kmeans(&e, 4, 31, 7).unwrap_err().to_string();
        assert!(err.contains("only 30 patches"), "{err}");
    }
}
