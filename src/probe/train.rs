//! `train_probe`: embeddings and labels in; a trained classifier, its test figures, and the
//! data-efficiency curve out.
//!
//! Patch (row) level: one linear probe on the rows. Slide level: rows pooled by key — the mean
//! embedding for a linear probe, and the bag of rows for attention MIL. The test split is
//! the label file's `split` column or a seeded stratified, grouped split; `folds` adds
//! cross-validated figures (each fold the test split in turn).

use crate::probe::auc::{auc_with_interval, AucInterval};
use crate::probe::embeddings::EmbeddingRows;
use crate::probe::error::{ProbeError, ProbeResult};
use crate::probe::labels::Labelled;
use crate::probe::linear::{argmax, fit_linear_probe, LinearProbe, ProbeOptions};
use crate::probe::mil::{train_mil, Bag, MilModel, MilOptions, MilTraining};
use crate::probe::split::{stratified_group_kfold, stratified_subset, train_test_split};
use haidef_wsi_encoders::candle::Device;
use ndarray::Array2;
use std::collections::BTreeMap;

/// What a row of the classifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Every embedding row is an example (patches, images, audio windows).
    Row,
    /// Rows sharing a key (a slide's patches) are one example.
    Slide,
}

/// The classifiers' examples: features per example (mean-pooled at slide level) and, at slide
/// level, each example's rows for MIL.
#[derive(Debug, Clone)]
pub struct Examples {
    /// Mean embedding (slide level) or the row's embedding, examples × dim, as f64.
    pub x: Array2<f64>,
    /// Class per example.
    pub y: Vec<usize>,
    /// Group per example.
    pub groups: Vec<usize>,
    /// Group names.
    pub group_names: Vec<String>,
    /// Fixed split (`true`: train) when the label file has one.
    pub train: Option<Vec<bool>>,
    /// Key per example.
    pub keys: Vec<String>,
    /// Embedding rows of each example (slide level), into the [`EmbeddingRows`].
    pub members: Vec<Vec<usize>>,
    /// The class names, by class index.
    pub classes: Vec<String>,
}

/// Builds the examples of `level` from labelled rows.
pub fn examples(rows: &EmbeddingRows, labelled: &Labelled, level: Level) -> ProbeResult<Examples> {
    let dim = rows.dim;
    match level {
        Level::Row => Ok(Examples {
            x: rows.matrix(&labelled.rows),
            y: labelled.y.clone(),
            groups: labelled.groups.clone(),
            group_names: labelled.group_names.clone(),
            train: labelled.train.clone(),
            keys: labelled.rows.iter().map(|&r| rows.keys[r].clone()).collect(),
            members: labelled.rows.iter().map(|&r| vec![r]).collect(),
            classes: labelled.classes.clone(),
        }),
        Level::Slide => {
            let mut by_key: BTreeMap<&str, usize> = BTreeMap::new();
            let mut ex = Examples {
                x: Array2::zeros((0, dim)),
                y: vec![],
                groups: vec![],
                group_names: labelled.group_names.clone(),
                train: None,
                keys: vec![],
                members: vec![],
                classes: labelled.classes.clone(),
            };
            let mut train = Vec::new();
            for (j, &r) in labelled.rows.iter().enumerate() {
                let key = rows.keys[r].as_str();
                let e = *by_key.entry(key).or_insert_with(|| {
                    ex.keys.push(key.to_string());
                    ex.y.push(labelled.y[j]);
                    ex.groups.push(labelled.groups[j]);
                    ex.members.push(Vec::new());
                    train.push(labelled.train.as_ref().map(|t| t[j]));
                    ex.keys.len() - 1
                });
                ex.members[e].push(r);
            }
            let mut x = Array2::zeros((ex.keys.len(), dim));
            for (e, members) in ex.members.iter().enumerate() {
                x.row_mut(e).assign(&rows.mean(members));
            }
            ex.x = x;
            ex.train = labelled.train.as_ref().map(|_| train.into_iter().map(|t| t.unwrap_or(true)).collect());
            Ok(ex)
        }
    }
}

/// Options of a training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Row or slide level.
    pub level: Level,
    /// Linear probe settings.
    pub probe: ProbeOptions,
    /// MIL settings (slide level).
    pub mil: MilOptions,
    /// Share of examples in the test split (when the labels fix none).
    pub test_fraction: f64,
    /// Seed of splits, subsets and bootstrap resamples.
    pub seed: u64,
    /// Bootstrap resamples of the test AUC's interval.
    pub bootstrap: usize,
    /// Cross-validated figures over this many folds (0: none).
    pub folds: usize,
    /// Training-set sizes of the data-efficiency curve (empty: none).
    pub train_sizes: Vec<usize>,
    /// Repeats (seeds) per training-set size.
    pub repeats: usize,
    /// Device of the MIL model.
    pub device: Device,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            level: Level::Row,
            probe: ProbeOptions::default(),
            mil: MilOptions::default(),
            test_fraction: 0.2,
            seed: 0,
            bootstrap: 1000,
            folds: 0,
            train_sizes: Vec::new(),
            repeats: 3,
            device: Device::Cpu,
        }
    }
}

/// A model's figures on one test split.
#[derive(Debug, Clone)]
pub struct TestFigures {
    /// `linear` or `mil`.
    pub model: &'static str,
    /// Training examples.
    pub train_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// Test AUC with its interval.
    pub auc: AucInterval,
    /// Test accuracy.
    pub accuracy: f64,
}

/// One point of the data-efficiency curve.
#[derive(Debug, Clone)]
pub struct CurvePoint {
    /// `linear` or `mil`.
    pub model: &'static str,
    /// Training examples used.
    pub train_size: usize,
    /// Repeat number (its seed is the run's seed plus this).
    pub repeat: usize,
    /// Test AUC with its interval.
    pub auc: AucInterval,
}

/// Everything a training run produced.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The linear probe, fitted on the whole training split.
    pub linear: LinearProbe,
    /// The MIL model (slide level).
    pub mil: Option<(MilModel, MilTraining)>,
    /// Figures on the test split.
    pub test: Vec<TestFigures>,
    /// Cross-validated figures, per fold.
    pub folds: Vec<Vec<TestFigures>>,
    /// The curve.
    pub curve: Vec<CurvePoint>,
    /// Warnings collected on the way (fewer folds, …).
    pub warnings: Vec<String>,
    /// Examples on each side of the main split: (train, test).
    pub split_sizes: (usize, usize),
    /// Each example's side of the main split (`true`: training).
    pub train_mask: Vec<bool>,
}

/// Trains and evaluates: the linear probe (and MIL at slide level) on the training split,
/// figures on the test split, per fold, and along the curve. `progress` is told each step.
pub fn train(ex: &Examples, rows: &EmbeddingRows, n_classes: usize, opts: &TrainOptions, progress: &dyn Fn(&str)) -> ProbeResult<Trained> {
    let n = ex.y.len();
    let train_mask = match &ex.train {
        Some(t) => t.clone(),
        None => train_test_split(&ex.y, &ex.groups, ex.group_names.len(), opts.test_fraction, opts.seed),
    };
    let train_idx: Vec<usize> = (0..n).filter(|&i| train_mask[i]).collect();
    let test_idx: Vec<usize> = (0..n).filter(|&i| !train_mask[i]).collect();
    for (side, idx) in [("training", &train_idx), ("test", &test_idx)] {
        let mut seen = vec![false; n_classes];
        idx.iter().for_each(|&i| seen[ex.y[i]] = true);
        if let Some(c) = seen.iter().position(|s| !s) {
            return Err(ProbeError::Labels(format!(
                "the {side} split has no example of class '{}' ({} examples in all): label more examples of it, or give a split column",
                ex.classes[c],
                ex.y.iter().filter(|&&y| y == c).count()
            )));
        }
    }
    let mut warnings = Vec::new();
    progress(&format!("linear probe on {} training examples", train_idx.len()));
    let (linear, figures) = fit_and_test(ex, &train_idx, &test_idx, n_classes, opts, opts.seed)?;
    warnings.extend(linear.warnings.iter().cloned());
    let mut test = vec![figures];
    let mil = if opts.level == Level::Slide {
        progress("attention MIL");
        let (model, training, fig) = mil_and_test(ex, rows, &train_idx, &test_idx, n_classes, opts, opts.seed)?;
        test.push(fig);
        Some((model, training))
    } else {
        None
    };
    let mut folds = Vec::new();
    if opts.folds >= 2 {
        for c in 0..n_classes {
            let groups: std::collections::BTreeSet<usize> = (0..n).filter(|&i| ex.y[i] == c).map(|i| ex.groups[i]).collect();
            if groups.len() < opts.folds {
                return Err(ProbeError::Labels(format!(
                    "--folds {}: class '{}' has examples in only {} groups (patients, slides or keys); choose at most {} folds",
                    opts.folds,
                    ex.classes[c],
                    groups.len(),
                    groups.len()
                )));
            }
        }
        let fold_of = stratified_group_kfold(&ex.y, &ex.groups, &ex.group_names, opts.folds, Some(opts.seed));
        for f in 0..opts.folds {
            progress(&format!("fold {} of {}", f + 1, opts.folds));
            let tr: Vec<usize> = (0..n).filter(|&i| fold_of[i] != f).collect();
            let te: Vec<usize> = (0..n).filter(|&i| fold_of[i] == f).collect();
            let mut figs = vec![fit_and_test(ex, &tr, &te, n_classes, opts, opts.seed.wrapping_add(f as u64))?.1];
            if opts.level == Level::Slide {
                figs.push(mil_and_test(ex, rows, &tr, &te, n_classes, opts, opts.seed.wrapping_add(f as u64))?.2);
            }
            folds.push(figs);
        }
    }
    let mut curve = Vec::new();
    for &size in &opts.train_sizes {
        if size > train_idx.len() {
            warnings.push(format!("training size {size} is larger than the training split ({}): left out of the curve", train_idx.len()));
            continue;
        }
        for r in 0..opts.repeats {
            progress(&format!("curve: {size} training examples, repeat {}", r + 1));
            let seed = opts.seed.wrapping_add(r as u64);
            let subset = stratified_subset(&ex.y, &train_idx, size, seed);
            let small = TrainOptions { probe: ProbeOptions { reduce_folds: true, ..opts.probe.clone() }, ..opts.clone() };
            let (probe, fig) = fit_and_test(ex, &subset, &test_idx, n_classes, &small, seed)?;
            for w in probe.warnings {
                let w = format!("curve at {size}: {w}");
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            curve.push(CurvePoint { model: "linear", train_size: subset.len(), repeat: r, auc: fig.auc });
            if opts.level == Level::Slide && subset.len() >= 4 {
                match mil_and_test(ex, rows, &subset, &test_idx, n_classes, opts, seed) {
                    Ok((_, _, fig)) => curve.push(CurvePoint { model: "mil", train_size: subset.len(), repeat: r, auc: fig.auc }),
                    Err(e) => warnings.push(format!("curve at {size}, repeat {}: attention MIL left out: {e}", r + 1)),
                }
            }
        }
    }
    Ok(Trained { linear, mil, test, folds, curve, warnings, split_sizes: (train_idx.len(), test_idx.len()), train_mask })
}

fn figures(
    model: &'static str,
    proba: &[f64],
    n_classes: usize,
    y: &[usize],
    train_examples: usize,
    opts: &TrainOptions,
    seed: u64,
) -> ProbeResult<TestFigures> {
    let auc = auc_with_interval(proba, n_classes, y, opts.bootstrap, seed)
        .ok_or_else(|| ProbeError::Labels("the test split lacks a class; AUC is undefined".into()))?;
    let right = y
        .iter()
        .enumerate()
        .filter(|(i, &c)| {
            let row = &proba[i * n_classes..(i + 1) * n_classes];
            argmax(row) == c
        })
        .count();
    Ok(TestFigures { model, train_examples, test_examples: y.len(), auc, accuracy: right as f64 / y.len().max(1) as f64 })
}

fn fit_and_test(ex: &Examples, train: &[usize], test: &[usize], n_classes: usize, opts: &TrainOptions, seed: u64) -> ProbeResult<(LinearProbe, TestFigures)> {
    let xt = ex.x.select(ndarray::Axis(0), train);
    let yt: Vec<usize> = train.iter().map(|&i| ex.y[i]).collect();
    let gt: Vec<usize> = train.iter().map(|&i| ex.groups[i]).collect();
    let (gt, names) = renumber(&gt, &ex.group_names);
    let probe = fit_linear_probe(xt.view(), &yt, n_classes, &gt, &names, &opts.probe)?;
    let p = probe.predict_proba(ex.x.select(ndarray::Axis(0), test).view());
    let y: Vec<usize> = test.iter().map(|&i| ex.y[i]).collect();
    let fig = figures("linear", p.as_slice().expect("standard layout"), n_classes, &y, train.len(), opts, seed)?;
    Ok((probe, fig))
}

/// Groups of a subset renumbered 0.. in order of appearance, with their names.
fn renumber(groups: &[usize], names: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut map = std::collections::HashMap::new();
    let mut out_names = Vec::new();
    let out = groups
        .iter()
        .map(|&g| {
            *map.entry(g).or_insert_with(|| {
                out_names.push(names[g].clone());
                out_names.len() - 1
            })
        })
        .collect();
    (out, out_names)
}

fn bag(ex: &Examples, rows: &EmbeddingRows, e: usize) -> Bag {
    let members = &ex.members[e];
    Bag { x: rows.bag(members), n: members.len(), y: ex.y[e] }
}

fn mil_and_test(
    ex: &Examples,
    rows: &EmbeddingRows,
    train: &[usize],
    test: &[usize],
    n_classes: usize,
    opts: &TrainOptions,
    seed: u64,
) -> ProbeResult<(MilModel, MilTraining, TestFigures)> {
    // A fifth of the training slides (stratified, grouped) tell when to stop.
    let yt: Vec<usize> = train.iter().map(|&i| ex.y[i]).collect();
    let gt: Vec<usize> = train.iter().map(|&i| ex.groups[i]).collect();
    let (gt, names) = renumber(&gt, &ex.group_names);
    let fit_mask = train_test_split(&yt, &gt, names.len(), 0.2, seed ^ 0x004d_494c);
    let fit: Vec<Bag> = train.iter().zip(&fit_mask).filter(|(_, m)| **m).map(|(&i, _)| bag(ex, rows, i)).collect();
    let valid: Vec<Bag> = train.iter().zip(&fit_mask).filter(|(_, m)| !**m).map(|(&i, _)| bag(ex, rows, i)).collect();
    let mil_opts = MilOptions { seed, ..opts.mil.clone() };
    let (model, training) = train_mil(&fit, &valid, rows.dim, n_classes, &mil_opts, &opts.device)?;
    let mut proba = Vec::with_capacity(test.len() * n_classes);
    for &i in test {
        let b = bag(ex, rows, i);
        proba.extend(model.predict_proba(&b.x, b.n)?.0);
    }
    let y: Vec<usize> = test.iter().map(|&i| ex.y[i]).collect();
    let fig = figures("mil", &proba, n_classes, &y, train.len(), opts, seed)?;
    Ok((model, training, fig))
}
