//! One L2-regularised logistic regression fit, as scikit-learn's `lbfgs` solver makes it:
//! the mean log-loss plus `‖W‖² / (2·C·n)` (intercepts unpenalised), binary with one weight
//! vector, more classes multinomial (one vector per class, softmax), minimised by argmin's
//! L-BFGS (memory 10, Moré–Thuente line search) and stopped where scipy stops it: the largest
//! gradient component at most `tol`, a relative decrease of the objective below 64·ε, or the
//! iteration limit.
//!
//! Why not linfa-logistic (the first version used it): it evaluates the loss and the gradient
//! in separate passes, each with a matrix product that packs the whole matrix, and stops on the
//! gradient's Euclidean norm of the summed loss, which runs more iterations than scikit-learn's
//! criterion. Here one parallel pass over the rows gives both, and argmin's line search, which
//! asks for the cost and then the gradient at the same point, gets the second from a cache.
//! Measured on 100,000 × 384 rows (docs/BENCHMARKS.md, 2026-12-07): the whole `train_probe`
//! run went from 16.8 s to the figure recorded there.

use crate::probe::error::{ProbeError, ProbeResult};
use argmin::core::{CostFunction, Gradient, IterState, Problem, Solver, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;
use std::sync::Mutex;

/// A point evaluated: its parameters, objective and gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// argmin's L-BFGS on flat parameter vectors.
type Lbfgs = LBFGS<MoreThuenteLineSearch<Vec<f64>, Vec<f64>, f64>, Vec<f64>, Vec<f64>, f64>;

/// Rows per parallel task of a pass.
const ROWS_PER_TASK: usize = 1024;

/// The objective on rows `rows` of standardised `x` (row-major) with classes `y` (by row of
/// `x`). Folds pass their rows by number rather than as copies of the matrix.
struct Objective<'a> {
    x: ArrayView2<'a, f64>,
    rows: &'a [usize],
    y: &'a [usize],
    /// 1 (binary: class 1's log-odds) or the number of classes.
    outputs: usize,
    /// `1 / (C · n)`.
    l2: f64,
    /// The last point evaluated.
    last: Mutex<Option<Evaluated>>,
}

impl Objective<'_> {
    /// Parameters per output: the weights, then the intercept.
    fn stride(&self) -> usize {
        self.x.ncols() + 1
    }

    /// Objective and gradient at `p` (outputs × stride, output-major), from one pass over the
    /// rows, or the cache when `p` is the last point evaluated.
    fn evaluate(&self, p: &[f64]) -> (f64, Vec<f64>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((q, f, g)) = last.as_ref() {
            if q.as_slice() == p {
                return (*f, g.clone());
            }
        }
        let (f, g) = self.pass(p);
        *last = Some((p.to_vec(), f, g.clone()));
        (f, g)
    }

    fn pass(&self, p: &[f64]) -> (f64, Vec<f64>) {
        let (n, d, k, stride) = (self.rows.len(), self.x.ncols(), self.outputs, self.stride());
        let weights: Vec<ArrayView1<'_, f64>> = (0..k).map(|o| ArrayView1::from(&p[o * stride..o * stride + d])).collect();
        let (loss, mut g) = (0..n.div_ceil(ROWS_PER_TASK))
            .into_par_iter()
            .map(|t| {
                let mut g = vec![0.0; k * stride];
                let mut loss = 0.0;
                let mut z = vec![0.0; k];
                for &i in &self.rows[t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(n)] {
                    let row = self.x.row(i);
                    let values = row.as_slice().expect("rows are contiguous (standard layout)");
                    for (o, w) in weights.iter().enumerate() {
                        z[o] = row.dot(w) + p[o * stride + d];
                    }
                    let y = self.y[i];
                    if k == 1 {
                        // log(1 + e^z) − y·z, and its derivative σ(z) − y.
                        let t = if y == 1 { 1.0 } else { 0.0 };
                        let softplus = if z[0] > 0.0 { z[0] + (-z[0]).exp().ln_1p() } else { z[0].exp().ln_1p() };
                        loss += softplus - t * z[0];
                        z[0] = 1.0 / (1.0 + (-z[0]).exp()) - t;
                    } else {
                        // log Σ e^z − z_y, and its derivatives softmax(z) − onehot(y).
                        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                        loss += lse - z[y];
                        z.iter_mut().for_each(|v| *v = (*v - lse).exp());
                        z[y] -= 1.0;
                    }
                    for (o, &r) in z.iter().enumerate() {
                        let go = &mut g[o * stride..(o + 1) * stride];
                        go[..d].iter_mut().zip(values).for_each(|(a, &v)| *a += r * v);
                        go[d] += r;
                    }
                }
                (loss, g)
            })
            .reduce(
                || (0.0, vec![0.0; k * stride]),
                |(la, mut ga), (lb, gb)| {
                    ga.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
                    (la + lb, ga)
                },
            );
        let inv_n = 1.0 / n as f64;
        let mut penalty = 0.0;
        for o in 0..k {
            for j in 0..stride {
                let gi = &mut g[o * stride + j];
                *gi *= inv_n;
                if j < d {
                    let w = p[o * stride + j];
                    penalty += w * w;
                    *gi += self.l2 * w;
                }
            }
        }
        (loss * inv_n + 0.5 * self.l2 * penalty, g)
    }
}

impl CostFunction for Objective<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.evaluate(p).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.evaluate(p).1)
    }
}

/// Fits the model at `c` to rows `rows` of standardised `x` with classes `y` (by row of `x`,
/// in `0..n_classes`), from `init` or zeros; parameters as (features + 1) × outputs, the
/// intercepts in the last row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_logistic(
    x: ArrayView2<'_, f64>,
    rows: &[usize],
    y: &[usize],
    n_classes: usize,
    c: f64,
    init: Option<&Array2<f64>>,
    tol: f64,
    max_iterations: u64,
) -> ProbeResult<Array2<f64>> {
    let (n, d) = (rows.len(), x.ncols());
    let outputs = if n_classes == 2 { 1 } else { n_classes };
    let stride = d + 1;
    let fail = |problem: String| ProbeError::Fit { what: format!("the logistic regression (C = {c})"), problem };
    let mut counts = vec![0usize; n_classes];
    for &r in rows {
        match y.get(r).and_then(|&k| counts.get_mut(k)) {
            Some(c) => *c += 1,
            None => return Err(fail(format!("row {r} has no class among {n_classes} (of {} rows and {} classes given)", x.nrows(), y.len()))),
        }
    }
    if let Some(missing) = counts.iter().position(|&c| c == 0) {
        return Err(ProbeError::Labels(format!(
            "the training rows of a fit (C = {c}) lack class number {missing}; every class needs rows in every cross-validation fold"
        )));
    }
    let x = x.as_standard_layout();
    let x = x.view();
    let mut p = vec![0.0; outputs * stride];
    if let Some(w) = init {
        if w.dim() != (stride, outputs) {
            return Err(fail(format!("starting parameters of shape {:?}, expected ({stride}, {outputs})", w.dim())));
        }
        for o in 0..outputs {
            for j in 0..stride {
                p[o * stride + j] = w[[j, o]];
            }
        }
    }
    let objective = Objective { x, rows, y, outputs, l2: 1.0 / (c * n as f64), last: Mutex::new(None) };
    let mut problem = Problem::new(objective);
    let mut solver: Lbfgs = LBFGS::new(MoreThuenteLineSearch::new(), 10);
    let argmin_fail = |e: argmin::core::Error| fail(e.to_string());
    let (mut state, _) = solver.init(&mut problem, IterState::new().param(p.clone())).map_err(argmin_fail)?;
    let largest = |g: Option<&Vec<f64>>| g.map_or(f64::INFINITY, |g| g.iter().fold(0f64, |m, v| m.max(v.abs())));
    let mut iterations = 0;
    while iterations < max_iterations {
        if largest(state.get_gradient()) <= tol {
            break;
        }
        let before = state.get_cost();
        let (next, _) = solver.next_iter(&mut problem, state).map_err(argmin_fail)?;
        state = next;
        if state.terminated() {
            // The line search found no better point: the last one stands (scipy's "abnormal
            // termination in line search" keeps it too).
            break;
        }
        state.increment_iter();
        iterations += 1;
        p = state.get_param().cloned().ok_or_else(|| fail("L-BFGS returned no parameters".into()))?;
        let after = state.get_cost();
        if !after.is_finite() {
            return Err(fail(format!("the loss became {after} at iteration {iterations}")));
        }
        if (before - after) / before.abs().max(after.abs()).max(1.0) <= 64.0 * f64::EPSILON {
            break;
        }
    }
    let mut params = Array2::zeros((stride, outputs));
    for o in 0..outputs {
        for j in 0..stride {
            params[[j, o]] = p[o * stride + j];
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The gradient against central differences of the objective, binary and three classes.
    #[test]
    fn gradient_is_the_objectives_derivative() {
        let x = array![[0.3, -1.2], [1.5, 0.4], [-0.7, 0.9], [0.2, 0.1], [-1.1, -0.5]];
        for (y, outputs) in [(vec![0, 1, 1, 0, 1], 1), (vec![0, 2, 1, 0, 2], 3)] {
            let f = Objective { x: x.view(), rows: &[0, 1, 2, 3, 4], y: &y, outputs, l2: 0.3, last: Mutex::new(None) };
            let p: Vec<f64> = (0..outputs * 3).map(|i| 0.1 * i as f64 - 0.2).collect();
            let (_, g) = f.pass(&p);
            for i in 0..p.len() {
                let (mut a, mut b) = (p.clone(), p.clone());
                a[i] += 1e-6;
                b[i] -= 1e-6;
                let numeric = (f.pass(&a).0 - f.pass(&b).0) / 2e-6;
                assert!((numeric - g[i]).abs() < 1e-8, "outputs {outputs}, parameter {i}: {numeric} vs {}", g[i]);
            }
        }
    }

    /// With a constant feature and no penalty on the intercept, the binary fit's intercept is
    /// the log-odds of the class shares, whatever C is: log(3/2) here.
    #[test]
    fn intercept_alone_is_the_log_odds() {
        let x = Array2::zeros((5, 2));
        let fit = fit_logistic(x.view(), &[0, 1, 2, 3, 4], &[1, 0, 1, 0, 1], 2, 0.01, None, 1e-12, 100).unwrap();
        assert!((fit[[2, 0]] - (1.5f64).ln()).abs() < 1e-9, "{}", fit[[2, 0]]);
        assert_eq!(fit[[0, 0]], 0.0);
    }
}
