//! Splits of labelled rows: the cross-validation folds that choose C (scikit-learn's
//! `StratifiedKFold(n_splits)` without shuffling, or `StratifiedGroupKFold` when rows share
//! groups — reproduced fold for fold, so that the same C is chosen), and the seeded
//! train/test splits and folds of the figures, stratified by class and grouped (no group on
//! both sides).

use crate::probe::rng::SplitMix64;

/// Test-fold number of each row: scikit-learn's `StratifiedKFold(k, shuffle=False)`. Classes are
/// numbered in order of first appearance, and each class's rows, in order, fill folds 0, 1, …
/// in runs whose lengths deal the class's sorted labels round-robin over the folds.
pub fn stratified_kfold(y: &[usize], k: usize) -> Vec<usize> {
    let n_classes = y.iter().max().map_or(0, |m| m + 1);
    let mut order = vec![usize::MAX; n_classes];
    let mut next = 0;
    for &c in y {
        if order[c] == usize::MAX {
            order[c] = next;
            next += 1;
        }
    }
    let mut encoded: Vec<usize> = y.iter().map(|&c| order[c]).collect();
    let mut sorted = encoded.clone();
    sorted.sort_unstable();
    // allocation[fold][class]: class members among sorted[fold], sorted[fold + k], …
    let mut allocation = vec![vec![0usize; next]; k];
    for (i, &c) in sorted.iter().enumerate() {
        allocation[i % k][c] += 1;
    }
    let mut fold_of = vec![0usize; y.len()];
    #[allow(clippy::needless_range_loop)] // class indexes the inner rows of allocation
    for class in 0..next {
        let mut folds = (0..k).flat_map(|f| std::iter::repeat_n(f, allocation[f][class]));
        for (i, e) in encoded.iter_mut().enumerate() {
            if *e == class {
                fold_of[i] = folds.next().expect("allocation covers the class");
                *e = usize::MAX;
            }
        }
    }
    fold_of
}

/// Test-fold number of each row: scikit-learn's `StratifiedGroupKFold(k)`. Groups, numbered in
/// the sorted order of their names (`shuffle`: permuted by a seed instead), are taken by
/// decreasing spread of their class counts and each put in the fold that keeps the class
/// proportions most even (ties: the fold with fewer rows).
pub fn stratified_group_kfold(y: &[usize], groups: &[usize], group_names: &[String], k: usize, shuffle: Option<u64>) -> Vec<usize> {
    let n_classes = y.iter().max().map_or(0, |m| m + 1);
    let n_groups = group_names.len();
    // Groups in np.unique order (sorted names).
    let mut by_name: Vec<usize> = (0..n_groups).collect();
    by_name.sort_by(|&a, &b| group_names[a].cmp(&group_names[b]));
    let mut rank = vec![0usize; n_groups];
    by_name.iter().enumerate().for_each(|(r, &g)| rank[g] = r);
    let mut counts = vec![vec![0f64; n_classes]; n_groups];
    for (&c, &g) in y.iter().zip(groups) {
        counts[rank[g]][c] += 1.0;
    }
    let mut total = vec![0f64; n_classes];
    y.iter().for_each(|&c| total[c] += 1.0);
    let mut order: Vec<usize> = (0..n_groups).collect();
    if let Some(seed) = shuffle {
        SplitMix64::new(seed).shuffle(&mut order);
    }
    let std = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let spread: Vec<f64> = order.iter().map(|&g| std(&counts[g])).collect();
    let mut by_spread: Vec<usize> = (0..n_groups).collect();
    // np.argsort(-std, kind="mergesort"): stable, largest spread first.
    by_spread.sort_by(|&a, &b| spread[b].partial_cmp(&spread[a]).unwrap_or(std::cmp::Ordering::Equal));
    let mut per_fold = vec![vec![0f64; n_classes]; k];
    let mut fold_of_group = vec![0usize; n_groups];
    for &pos in &by_spread {
        let g = order[pos];
        let (mut best, mut min_eval, mut min_rows) = (0, f64::INFINITY, f64::INFINITY);
        for f in 0..k {
            (0..n_classes).for_each(|c| per_fold[f][c] += counts[g][c]);
            let eval = (0..n_classes).map(|c| std(&(0..k).map(|i| per_fold[i][c] / total[c]).collect::<Vec<_>>())).sum::<f64>() / n_classes as f64;
            (0..n_classes).for_each(|c| per_fold[f][c] -= counts[g][c]);
            let rows: f64 = per_fold[f].iter().sum();
            let close = (eval - min_eval).abs() <= 1e-8 + 1e-5 * min_eval.abs();
            if eval < min_eval || (close && rows < min_rows) {
                (best, min_eval, min_rows) = (f, eval, rows);
            }
        }
        (0..n_classes).for_each(|c| per_fold[best][c] += counts[g][c]);
        fold_of_group[g] = best;
    }
    groups.iter().map(|&g| fold_of_group[rank[g]]).collect()
}

/// The folds that choose C: grouped when some group has more than one row, otherwise plain.
pub fn cv_folds(y: &[usize], groups: &[usize], group_names: &[String], k: usize) -> Vec<usize> {
    if group_names.len() == y.len() {
        stratified_kfold(y, k)
    } else {
        stratified_group_kfold(y, groups, group_names, k, None)
    }
}

/// A seeded train/test split, stratified by class and grouped: about `test_fraction` of each
/// class's rows go to test, whole groups at a time. `true` marks training rows.
pub fn train_test_split(y: &[usize], groups: &[usize], n_groups: usize, test_fraction: f64, seed: u64) -> Vec<bool> {
    let n_classes = y.iter().max().map_or(0, |m| m + 1);
    let mut counts = vec![vec![0usize; n_classes]; n_groups];
    let mut total = vec![0usize; n_classes];
    for (&c, &g) in y.iter().zip(groups) {
        counts[g][c] += 1;
        total[c] += 1;
    }
    let target: Vec<f64> = total.iter().map(|&t| (t as f64 * test_fraction).round().max(1.0)).collect();
    let mut order: Vec<usize> = (0..n_groups).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let mut in_test = vec![0f64; n_classes];
    let mut test_group = vec![false; n_groups];
    for g in order {
        // The group goes to test while its main class still needs test rows.
        let main = (0..n_classes).max_by_key(|&c| counts[g][c]).unwrap_or(0);
        if counts[g][main] > 0 && in_test[main] < target[main] && in_test[main] + counts[g][main] as f64 <= total[main] as f64 - 1.0 {
            test_group[g] = true;
            (0..n_classes).for_each(|c| in_test[c] += counts[g][c] as f64);
        }
    }
    groups.iter().map(|&g| !test_group[g]).collect()
}

/// A seeded subset of `n` of the rows `pool` (indices), stratified: each class gets its share of
/// `n`, at least one row (two where the class has them, so that folds can be made).
pub fn stratified_subset(y: &[usize], pool: &[usize], n: usize, seed: u64) -> Vec<usize> {
    let n_classes = y.iter().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    pool.iter().for_each(|&i| by_class[y[i]].push(i));
    let mut rng = SplitMix64::new(seed);
    by_class.iter_mut().for_each(|v| rng.shuffle(v));
    let present: Vec<usize> = (0..n_classes).filter(|&c| !by_class[c].is_empty()).collect();
    let total: usize = present.iter().map(|&c| by_class[c].len()).sum();
    let mut take: Vec<usize> = vec![0; n_classes];
    for &c in &present {
        let share = (n as f64 * by_class[c].len() as f64 / total as f64).round() as usize;
        take[c] = share.max(2.min(by_class[c].len())).min(by_class[c].len());
    }
    // Trim or fill to n, largest classes first.
    let mut sum: usize = take.iter().sum();
    let mut by_size = present.clone();
    by_size.sort_by_key(|&c| std::cmp::Reverse(by_class[c].len()));
    while sum > n {
        let Some(&c) = by_size.iter().find(|&&c| take[c] > 2.min(by_class[c].len())) else { break };
        take[c] -= 1;
        sum -= 1;
    }
    while sum < n.min(total) {
        let Some(&c) = by_size.iter().find(|&&c| take[c] < by_class[c].len()) else { break };
        take[c] += 1;
        sum += 1;
    }
    let mut out: Vec<usize> = present.iter().flat_map(|&c| by_class[c][..take[c]].iter().copied()).collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_kfold_matches_scikit_learn_on_small_cases() {
        // sklearn 1.9.1: StratifiedKFold(3).split(np.zeros(10), y) test folds, written out.
        let y = [1, 0, 0, 1, 1, 0, 1, 1, 0, 1];
        // Classes by first appearance: 1 -> 0 (6 rows), 0 -> 1 (4 rows); sorted encoded labels
        // 0,0,0,0,0,0,1,1,1,1 dealt over 3 folds: fold 0 gets positions 0,3,6,9 -> 2 of class
        // "1", 2 of class "0"; fold 1: 1,4,7 -> 2 and 1; fold 2: 2,5,8 -> 2 and 1.
        assert_eq!(stratified_kfold(&y, 3), vec![0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn train_test_split_keeps_groups_whole() {
        let y: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let groups: Vec<usize> = (0..40).map(|i| i / 4).collect();
        let train = train_test_split(&y, &groups, 10, 0.25, 7);
        for g in 0..10 {
            let sides: std::collections::BTreeSet<bool> = (0..40).filter(|&i| groups[i] == g).map(|i| train[i]).collect();
            assert_eq!(sides.len(), 1, "group {g} on both sides");
        }
        let test = train.iter().filter(|t| !**t).count();
        assert!((8..=12).contains(&test), "{test} test rows for 25% of 40");
    }

    #[test]
    fn subsets_are_stratified_and_sized() {
        let y: Vec<usize> = (0..100).map(|i| usize::from(i % 10 == 0)).collect();
        let pool: Vec<usize> = (0..100).collect();
        let s = stratified_subset(&y, &pool, 20, 1);
        assert_eq!(s.len(), 20);
        assert_eq!(s.iter().filter(|&&i| y[i] == 1).count(), 2);
        let s = stratified_subset(&y, &pool, 8, 1);
        assert_eq!(s.len(), 8);
        assert!(s.iter().filter(|&&i| y[i] == 1).count() >= 2, "a rare class keeps two rows");
    }
}
