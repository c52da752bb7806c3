//! The linear probe: scikit-learn's `StandardScaler` + `LogisticRegressionCV(Cs=10, cv=5)`,
//! reproduced. Features are standardised once on the training rows; C is chosen from 10 values
//! log-spaced over 1e-4…1e4 by stratified 5-fold cross-validation scored by accuracy (the
//! mean over folds, the smaller C on ties, as scikit-learn 1.9 does), then the model is refitted
//! on all training rows. Each model is fitted as scikit-learn's `lbfgs` solver fits it
//! ([`crate::probe::logistic`]: mean log-loss plus ‖w‖²/(2·C·n), intercept unpenalised, binary
//! with one weight vector, more classes multinomial).

use crate::probe::error::{ProbeError, ProbeResult};
use crate::probe::logistic::fit_logistic;
use crate::probe::split::cv_folds;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Per-feature standardisation (`StandardScaler`): mean and standard deviation (ddof 0) of the
/// training rows; a constant feature keeps scale 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    /// Mean of each feature.
    pub mean: Vec<f64>,
    /// Standard deviation of each feature (1 where the feature is constant).
    pub scale: Vec<f64>,
}

impl Scaler {
    /// Fits the scaler to `x` (rows × features).
    pub fn fit(x: ArrayView2<'_, f64>) -> Self {
        let n = x.nrows() as f64;
        let mean = x.mean_axis(Axis(0)).expect("rows").to_vec();
        let var: Vec<f64> = (0..x.ncols()).map(|j| x.column(j).iter().map(|v| (v - mean[j]) * (v - mean[j])).sum::<f64>() / n).collect();
        let eps = f64::EPSILON;
        // scikit-learn's test for a constant feature (its variance is rounding error).
        let scale = var.iter().zip(&mean).map(|(&v, &m)| if v <= n * eps * v + (n * m * eps).powi(2) { 1.0 } else { v.sqrt() }).collect();
        Scaler { mean, scale }
    }

    /// `x` standardised.
    pub fn apply(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut out = Array2::zeros(x.raw_dim());
        for (row, mut scaled) in x.rows().into_iter().zip(out.rows_mut()) {
            self.apply_row(row, scaled.view_mut());
        }
        out
    }

    /// One row of raw features standardised into `out`.
    fn apply_row(&self, row: ndarray::ArrayView1<'_, f64>, mut out: ndarray::ArrayViewMut1<'_, f64>) {
        out.iter_mut().zip(row.iter()).zip(self.mean.iter().zip(&self.scale)).for_each(|((o, v), (m, s))| *o = (v - m) / s);
    }
}

/// How the probe is fitted.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// The values of C tried (inverse regularisation strength).
    pub cs: Vec<f64>,
    /// Cross-validation folds that choose C (fewer when a class has fewer rows; see
    /// [`LinearProbe::warnings`]).
    pub folds: usize,
    /// L-BFGS stops when no component of the mean loss's gradient exceeds this (scikit-learn's
    /// `tol`).
    pub tolerance: f64,
    /// L-BFGS iterations at most, per fit.
    pub max_iterations: u64,
    /// With a class of fewer training rows than folds: use fewer folds and warn (the
    /// data-efficiency curve's small sizes), instead of an error.
    pub reduce_folds: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions { cs: logspace(-4.0, 4.0, 10), folds: 5, tolerance: 1e-4, max_iterations: 2000, reduce_folds: false }
    }
}

/// `n` values log-spaced from 10^`a` to 10^`b` (numpy's `logspace`).
pub fn logspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| 10f64.powf(if n == 1 { a } else { a + (b - a) * i as f64 / (n - 1) as f64 })).collect()
}

/// A fitted linear probe.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    /// The standardisation of the inputs.
    pub scaler: Scaler,
    /// Weights on standardised features: one row for two classes (the second class's log-odds),
    /// one row per class for more.
    pub coef: Array2<f64>,
    /// Intercepts, one per row of `coef`.
    pub intercept: Vec<f64>,
    /// Number of classes.
    pub n_classes: usize,
    /// The C chosen.
    pub c: f64,
    /// The Cs tried and the mean cross-validated accuracy of each.
    pub cv_scores: Vec<(f64, f64)>,
    /// Folds used to choose C.
    pub folds_used: usize,
    /// What the user should know (fewer folds than asked, a fixed C).
    pub warnings: Vec<String>,
}

/// Fits the probe on `x` (rows × features, raw embeddings) with classes `y` in `0..n_classes`
/// and `groups` (rows of one group stay in one fold; `group_names` orders them as
/// scikit-learn's `np.unique` would).
pub fn fit_linear_probe(
    x: ArrayView2<'_, f64>,
    y: &[usize],
    n_classes: usize,
    groups: &[usize],
    group_names: &[String],
    opts: &ProbeOptions,
) -> ProbeResult<LinearProbe> {
    let mut counts = vec![0usize; n_classes];
    y.iter().for_each(|&c| counts[c] += 1);
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(ProbeError::Labels(format!("class {c} has no training rows; every class needs some")));
    }
    if opts.cs.is_empty() || opts.cs.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(ProbeError::Options("the values of C must be positive numbers".into()));
    }
    if !(opts.tolerance.is_finite() && opts.tolerance >= 0.0) {
        return Err(ProbeError::Options(format!("the tolerance must be a number of at least 0 (scikit-learn's tol; default 1e-4), not {}", opts.tolerance)));
    }
    let scaler = Scaler::fit(x);
    let xs = scaler.apply(x);
    let mut warnings = Vec::new();
    let min_class = *counts.iter().min().expect("classes");
    // A fold's training rows must hold every class: no more folds than the rows, or the groups
    // (patients, slides), of the class that has fewest.
    let mut class_groups = vec![std::collections::BTreeSet::new(); n_classes];
    y.iter().zip(groups).for_each(|(&c, &g)| {
        class_groups[c].insert(g);
    });
    let per_class: Vec<usize> = (0..n_classes).map(|c| counts[c].min(class_groups[c].len())).collect();
    let limit = *per_class.iter().min().expect("classes");
    let folds = opts.folds.min(limit);
    if folds < opts.folds && !opts.reduce_folds && opts.cs.len() > 1 {
        let c = per_class.iter().position(|&n| n == limit).unwrap_or(0);
        return Err(ProbeError::Labels(format!(
            "class number {c} has {} training examples in {} groups, fewer than the {} cross-validation folds that choose C; label more examples (of more patients or slides), or choose fewer folds",
            counts[c],
            class_groups[c].len(),
            opts.folds
        )));
    }
    if folds < opts.folds {
        warnings.push(format!("a class has only {limit} training rows or groups: {folds} cross-validation folds instead of {}", opts.folds));
    }
    let (c, cv_scores, init) = if folds >= 2 && opts.cs.len() > 1 {
        let fold_of = cv_folds(y, groups, group_names, folds);
        // Each fold walks the Cs in order, each fit starting from the last (as scikit-learn's path).
        let per_fold: Vec<Vec<(f64, Array2<f64>)>> = (0..folds)
            .into_par_iter()
            .map(|f| {
                let train: Vec<usize> = (0..y.len()).filter(|&i| fold_of[i] != f).collect();
                let test: Vec<usize> = (0..y.len()).filter(|&i| fold_of[i] == f).collect();
                let xv = xs.select(Axis(0), &test);
                let mut init: Option<Array2<f64>> = None;
                let mut out = Vec::new();
                for &c in &opts.cs {
                    let w = fit_logistic(xs.view(), &train, y, n_classes, c, init.as_ref(), opts.tolerance, opts.max_iterations)?;
                    let pred = predict_classes(&w, xv.view());
                    let right = pred.iter().zip(&test).filter(|(p, &i)| **p == y[i]).count();
                    out.push((right as f64 / test.len().max(1) as f64, w.clone()));
                    init = Some(w);
                }
                Ok(out)
            })
            .collect::<ProbeResult<_>>()?;
        let mean: Vec<f64> = (0..opts.cs.len()).map(|j| per_fold.iter().map(|f| f[j].0).sum::<f64>() / folds as f64).collect();
        let sums: Vec<f64> = (0..opts.cs.len()).map(|j| per_fold.iter().fold(0.0, |a, f| a + f[j].0)).collect();
        let best = argmax(&sums);
        let start = per_fold.iter().map(|f| &f[best].1).fold(Array2::<f64>::zeros(per_fold[0][best].1.raw_dim()), |a, w| a + w) / folds as f64;
        (opts.cs[best], opts.cs.iter().copied().zip(mean).collect(), Some(start))
    } else {
        let c = if opts.cs.len() == 1 { opts.cs[0] } else { 1.0 };
        if opts.cs.len() > 1 {
            warnings.push(format!("too few training rows per class ({min_class}) to cross-validate: C = {c} without a choice"));
        }
        (c, Vec::new(), None)
    };
    let w = fit_logistic(xs.view(), &(0..y.len()).collect::<Vec<_>>(), y, n_classes, c, init.as_ref(), opts.tolerance, opts.max_iterations)?;
    let (coef, intercept) = split_params(&w);
    Ok(LinearProbe { scaler, coef, intercept, n_classes, c, cv_scores, folds_used: folds.max(1), warnings })
}

fn split_params(w: &Array2<f64>) -> (Array2<f64>, Vec<f64>) {
    let d = w.nrows() - 1;
    (w.slice(ndarray::s![..d, ..]).t().to_owned(), w.row(d).to_vec())
}

/// Decision values (rows × outputs) of parameters `w` on standardised `x`.
fn decision(w: &Array2<f64>, x: ArrayView2<'_, f64>) -> Array2<f64> {
    let d = w.nrows() - 1;
    x.dot(&w.slice(ndarray::s![..d, ..])) + w.row(d)
}

fn predict_classes(w: &Array2<f64>, x: ArrayView2<'_, f64>) -> Vec<usize> {
    let z = decision(w, x);
    if z.ncols() == 1 {
        z.column(0).iter().map(|&v| usize::from(v > 0.0)).collect()
    } else {
        z.rows().into_iter().map(argmax).collect()
    }
}

impl LinearProbe {
    /// Class probabilities (rows × classes) of raw embeddings `x`. Rows are standardised one at
    /// a time (no scaled copy of `x`: prediction runs over whole cohorts).
    pub fn predict_proba(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        const ROWS: usize = 1024;
        let (n, d, k) = (x.nrows(), x.ncols(), self.coef.nrows());
        let mut z = Array2::<f64>::zeros((n, k));
        if k > 0 {
            let out = z.as_slice_mut().expect("a new array is contiguous");
            out.par_chunks_mut(k * ROWS).enumerate().for_each(|(t, chunk)| {
                let mut scaled = Array1::<f64>::zeros(d);
                for (r, zr) in chunk.chunks_mut(k).enumerate() {
                    self.scaler.apply_row(x.row(t * ROWS + r), scaled.view_mut());
                    for (o, zo) in zr.iter_mut().enumerate() {
                        *zo = scaled.dot(&self.coef.row(o)) + self.intercept[o];
                    }
                }
            });
        }
        if self.n_classes == 2 {
            let mut p = Array2::zeros((x.nrows(), 2));
            for (i, &v) in z.column(0).iter().enumerate() {
                let p1 = 1.0 / (1.0 + (-v).exp());
                p[[i, 0]] = 1.0 - p1;
                p[[i, 1]] = p1;
            }
            p
        } else {
            softmax_rows(z)
        }
    }
}

/// Index of the largest value, the first on ties (numpy's `argmax`).
pub(crate) fn argmax<'a>(values: impl IntoIterator<Item = &'a f64>) -> usize {
    let mut best = (0, f64::NAN);
    for (j, &v) in values.into_iter().enumerate() {
        if j == 0 || v > best.1 {
            best = (j, v);
        }
    }
    best.0
}

/// Row-wise softmax.
pub(crate) fn softmax_rows(mut z: Array2<f64>) -> Array2<f64> {
    for mut row in z.rows_mut() {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    z
}

#[cfg(test)]
mod tests {
    #[test]
    fn tolerance_must_be_a_number_of_at_least_zero() {
        let x = ndarray::array![[0.0], [1.0], [2.0], [3.0]];
        let names: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        for tol in [-1.0, f64::NAN] {
            let opts = super::ProbeOptions { tolerance: tol, cs: vec![1.0], ..Default::default() };
            let e = super::fit_linear_probe(x.view(), &[0, 0, 1, 1], 2, &[0, 1, 2, 3], &names, &opts).unwrap_err().to_string();
            assert!(e.contains("tolerance must be a number of at least 0"), "{e}");
        }
        let opts = super::ProbeOptions { tolerance: 0.0, cs: vec![1.0], max_iterations: 50, ..Default::default() };
        let p = super::fit_linear_probe(x.view(), &[0, 0, 1, 1], 2, &[0, 1, 2, 3], &names, &opts).unwrap();
        assert!(p.coef[[0, 0]] > 0.0, "class 1 grows with the feature: {}", p.coef);
    }

    #[test]
    fn logspace_is_numpys() {
        let v = super::logspace(-4.0, 4.0, 10);
        assert_eq!(v.len(), 10);
        assert!((v[0] - 1e-4).abs() < 1e-18 && (v[9] - 1e4).abs() < 1e-9);
        // np.logspace(-4, 4, 10)[1] = 7.742636826811278e-04
        assert!((v[1] - 7.742636826811278e-4).abs() < 1e-15);
    }
}
