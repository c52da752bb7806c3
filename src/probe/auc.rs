//! ROC AUC, as scikit-learn's `roc_auc_score` computes it (the area under the ROC curve with
//! tied scores on one segment, which equals the Mann–Whitney statistic with ties counted half),
//! one-vs-rest macro average for more classes; and its bootstrap interval.
//!
//! The interval: a stratified percentile bootstrap. Each resample draws, class by class, as
//! many rows as the class has, with replacement (so every resample holds every class), with
//! [`SplitMix64`] seeded by the caller; the interval is the 2.5th and 97.5th percentiles of the
//! resamples' AUCs, interpolated linearly between order statistics (numpy's default).

use crate::probe::rng::SplitMix64;

/// Binary ROC AUC of `scores` for `positive` rows against the others; `None` when either side
/// is empty.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += rank * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    Some((rank_sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// ROC AUC of class probabilities `proba` (rows × classes, row-major) for true classes `y`:
/// the second column's AUC for two classes, the unweighted mean of one-vs-rest AUCs for more.
/// `None` when a class is missing from `y`.
pub fn auc(proba: &[f64], n_classes: usize, y: &[usize]) -> Option<f64> {
    let column = |c: usize| -> Vec<f64> { (0..y.len()).map(|i| proba[i * n_classes + c]).collect() };
    if n_classes == 2 {
        let pos: Vec<bool> = y.iter().map(|&c| c == 1).collect();
        return roc_auc(&column(1), &pos);
    }
    let mut sum = 0.0;
    for c in 0..n_classes {
        let pos: Vec<bool> = y.iter().map(|&k| k == c).collect();
        sum += roc_auc(&column(c), &pos)?;
    }
    Some(sum / n_classes as f64)
}

/// An AUC with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AucInterval {
    /// AUC on the rows as they are.
    pub auc: f64,
    /// 2.5th percentile of the resamples' AUCs.
    pub low: f64,
    /// 97.5th percentile.
    pub high: f64,
}

/// The resampled row indices of resample after resample: for each class in order, as many
/// draws as it has rows, from its rows in order.
pub fn bootstrap_indices(y: &[usize], n_classes: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut out = Vec::with_capacity(y.len());
    for c in 0..n_classes {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        for _ in 0..rows.len() {
            out.push(rows[rng.below(rows.len())]);
        }
    }
    out
}

/// AUC of `proba` for `y` with a stratified percentile bootstrap interval over `resamples`
/// resamples seeded with `seed`. `None` when a class is missing from `y`.
pub fn auc_with_interval(proba: &[f64], n_classes: usize, y: &[usize], resamples: usize, seed: u64) -> Option<AucInterval> {
    let point = auc(proba, n_classes, y)?;
    let mut rng = SplitMix64::new(seed);
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            let idx = bootstrap_indices(y, n_classes, &mut rng);
            let p: Vec<f64> = idx.iter().flat_map(|&i| proba[i * n_classes..(i + 1) * n_classes].iter().copied()).collect();
            let yy: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
            auc(&p, n_classes, &yy).expect("every class is drawn")
        })
        .collect();
    if values.is_empty() {
        return Some(AucInterval { auc: point, low: point, high: point });
    }
    values.sort_by(f64::total_cmp);
    Some(AucInterval { auc: point, low: percentile(&values, 2.5), high: percentile(&values, 97.5) })
}

/// numpy's `percentile` (linear method) of sorted `v`.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let t = pos - lo as f64;
    // numpy's _lerp: a + (b - a) * t, and b - (b - a) * (1 - t) for t >= 0.5.
    let (a, b) = (v[lo], v[hi]);
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        // All tied: 0.5.
        assert_eq!(roc_auc(&[0.3; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.3, 0.2], &[true, true]), None);
    }
}
