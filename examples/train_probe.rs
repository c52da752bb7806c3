//! Trains a classifier on embeddings: a linear probe (scikit-learn's StandardScaler +
//! LogisticRegressionCV, reproduced) and, with `--level slide`, mean pooling and attention MIL
//! per slide. Prints the test AUC with its bootstrap 95% interval; with `--train-sizes`, draws
//! the data-efficiency curve (`curve.csv`, `curve.png`). The model goes into `--out`, for
//! `predict_probe`.
//!
//! `cargo run --release --example train_probe -- EMBEDDINGS --labels labels.csv --key COLUMN --out DIR [--level slide] [--train-sizes 8,16,32] [--repeats R] [--folds K]`

#[path = "common/threads.rs"]
mod threads;

use clap::{Parser, ValueEnum};
use haidef_wsi::encoders::parse_device;
use haidef_wsi::probe::{self, Level, ProbeOptions, TestFigures, TrainOptions};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LevelArg {
    /// Each embedding row is an example (patches, images, audio windows).
    Row,
    /// Rows sharing a key (a slide's patches) are one example: mean pooling and attention MIL.
    Slide,
}

/// Train a classifier (linear probe; attention MIL per slide) on embeddings and labels.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// An embeddings Parquet file, or a folder of them (a cohort dataset).
    embeddings: PathBuf,
    /// CSV with the key column, `label`, and optionally `group` (patient) and `split` (train/test).
    #[arg(long)]
    labels: PathBuf,
    /// The column both files share (path, slide_id, SOP Instance UID, …).
    #[arg(long)]
    key: String,
    /// The folder to write the model, figures and curve into.
    #[arg(long)]
    out: PathBuf,
    /// The embedding column.
    #[arg(long, default_value = "embedding")]
    embedding_column: String,
    /// Row: every embedding is an example. Slide: rows sharing a key are one.
    #[arg(long, value_enum, default_value = "row")]
    level: LevelArg,
    /// Training-set sizes of the data-efficiency curve: counts (8,16,32), or fractions below 1 of the training split (0.1,0.5); each class keeps at least two rows, and the curve records the size used.
    #[arg(long, value_delimiter = ',')]
    train_sizes: Vec<f64>,
    /// Repeats (seeds) per training-set size.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also report figures cross-validated over K folds.
    #[arg(long, default_value_t = 0)]
    folds: usize,
    /// Share of examples held out for testing (when the labels give no split column).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the splits, subsets and bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap resamples of the AUC intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Device of the MIL model: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// L-BFGS stops when the gradient's norm per training row falls below this.
    #[arg(long, default_value_t = ProbeOptions::default().tolerance)]
    tolerance: f64,
    /// MIL epochs at most.
    #[arg(long, default_value_t = 60)]
    mil_epochs: usize,
}

fn show(f: &TestFigures) -> String {
    format!(
        "{:<7} AUC {:.4} (95% CI {:.4}–{:.4}), accuracy {:.4}, {} train / {} test",
        f.model, f.auc.auc, f.auc.low, f.auc.high, f.accuracy, f.train_examples, f.test_examples
    )
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let rows = probe::read_embeddings(&cli.embeddings, &cli.key, &cli.embedding_column)?;
    let labels = probe::read_labels(&cli.labels, &cli.key)?;
    let labelled = probe::join(&rows, &labels, &cli.labels)?;
    let level = match cli.level {
        LevelArg::Row => Level::Row,
        LevelArg::Slide => Level::Slide,
    };
    let ex = probe::examples(&rows, &labelled, level)?;
    println!(
        "{} embedding rows of width {} from {} file(s) ({}); {} labelled ({} without a label left out), {} examples, classes: {}",
        rows.len(),
        rows.dim,
        rows.files.len(),
        rows.model_id.as_deref().unwrap_or("model not recorded"),
        labelled.rows.len(),
        labelled.unlabelled,
        ex.y.len(),
        labelled.classes.join(", ")
    );
    if cli.train_sizes.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err("--train-sizes takes positive counts or fractions".into());
    }
    let mut opts = TrainOptions {
        level,
        test_fraction: cli.test_fraction,
        seed: cli.seed,
        bootstrap: cli.bootstrap,
        folds: cli.folds,
        repeats: cli.repeats.max(1),
        device: parse_device(&cli.device)?,
        ..TrainOptions::default()
    };
    opts.mil.epochs = cli.mil_epochs;
    opts.probe.tolerance = cli.tolerance;
    if !(0.0 < cli.test_fraction && cli.test_fraction < 1.0) {
        return Err("--test-fraction must be between 0 and 1".into());
    }
    // Fractions are of the training split (about 1 - test_fraction of the examples).
    let train_n = ex.train.as_ref().map_or(((1.0 - cli.test_fraction) * ex.y.len() as f64).round() as usize, |t| t.iter().filter(|v| **v).count());
    opts.train_sizes = cli.train_sizes.iter().map(|&s| if s < 1.0 { ((s * train_n as f64).round() as usize).max(2) } else { s as usize }).collect();
    let trained = probe::train(&ex, &rows, labelled.classes.len(), &opts, &|step| eprintln!("… {step}"))?;
    for w in &trained.warnings {
        eprintln!("warning: {w}");
    }
    println!("C = {} (chosen by {}-fold cross-validated accuracy)", trained.linear.c, trained.linear.folds_used);
    for f in &trained.test {
        println!("test: {}", show(f));
    }
    for (i, fold) in trained.folds.iter().enumerate() {
        for f in fold {
            println!("fold {}: {}", i + 1, show(f));
        }
    }
    let figures = |f: &TestFigures| json!({"model": f.model, "auc": f.auc.auc, "auc_low": f.auc.low, "auc_high": f.auc.high, "accuracy": f.accuracy, "train_examples": f.train_examples, "test_examples": f.test_examples});
    let description = json!({
        "embeddings": cli.embeddings,
        "labels": cli.labels,
        "embedding_column": cli.embedding_column,
        "seed": cli.seed,
        "test_fraction": cli.test_fraction,
        "bootstrap": {"resamples": cli.bootstrap, "method": "stratified percentile bootstrap (SplitMix64 resamples, numpy linear percentiles)"},
        "cv_scoring": "accuracy",
        "test": trained.test.iter().map(figures).collect::<Vec<_>>(),
        "folds": trained.folds.iter().map(|f| f.iter().map(figures).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "mil_training": trained.mil.as_ref().map(|(_, t)| json!({"epochs": t.epochs, "best_epoch": t.best_epoch, "best_validation_loss": t.best_loss})),
        "warnings": trained.warnings,
    });
    let on = probe::TrainedOn { classes: &labelled.classes, level, key_column: &cli.key, dim: rows.dim, embedding_model: rows.model_id.as_deref() };
    probe::save(&cli.out, &trained, &on, description)?;
    probe::write_split(&cli.out, &cli.key, &ex, &trained.train_mask)?;
    if !trained.curve.is_empty() {
        probe::write_curve_csv(&cli.out.join("curve.csv"), &trained.curve)?;
        probe::draw_curve(&cli.out.join("curve.png"), &trained)?;
        for (model, pts) in probe::curve_means(&trained.curve) {
            for (n, auc, lo, hi) in pts {
                println!("curve: {model:<7} {n:>6} examples: AUC {auc:.4} ({lo:.4}–{hi:.4}), mean of {} repeats", opts.repeats);
            }
        }
    }
    println!("model written to {}", cli.out.display());
    Ok(())
}

fn main() {
    threads::pin_candle_threads();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
