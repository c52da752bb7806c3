//! Classifiers on embeddings, the HAI-DEF data-efficiency recipe: linear probes (scikit-learn's
//! `StandardScaler` + `LogisticRegressionCV`, reproduced: its lbfgs fits on argmin's L-BFGS), slide-level models
//! (mean pooling and gated-attention MIL on candle), ROC AUC with bootstrap intervals, the
//! data-efficiency curve, and predictions with maps and QuPath GeoJSON.
//!
//! - `embeddings`, `labels`: rows of any Parquet with a key and an embedding column, joined
//!   to a label CSV ([`read_embeddings`], [`read_labels`], [`join`]).
//! - `split`, `rng`: folds as scikit-learn makes them; seeded, stratified, grouped splits.
//! - `linear` (choosing C; `logistic`, one fit), `mil`: the two model families. `auc`: the figures.
//! - `train`: one run (test split, folds, curve); `saved`: the model folder; `report`: curve
//!   CSV and picture; `predict`: a saved model applied.

mod auc;
mod embeddings;
mod error;
mod labels;
mod linear;
mod logistic;
mod mil;
mod predict;
mod report;
mod rng;
mod saved;
mod split;
mod train;

pub use auc::{auc, auc_with_interval, bootstrap_indices, percentile, roc_auc, AucInterval};
pub use embeddings::{parquet_files, read_embeddings, EmbeddingRows, PatchPlace};
pub use error::{ProbeError, ProbeResult};
pub use labels::{join, read_labels, Label, Labelled, Labels};
pub use linear::{fit_linear_probe, logspace, LinearProbe, ProbeOptions, Scaler};
pub use mil::{train_mil, Bag, MilModel, MilOptions, MilOutput, MilTraining};
pub use predict::{predict, PredictOptions, Predicted};
pub use report::{curve_means, draw_curve, write_curve_csv};
pub use rng::SplitMix64;
pub use saved::{load, save, write_split, SavedProbe, TrainedOn, FORMAT};
pub use split::{cv_folds, stratified_group_kfold, stratified_kfold, stratified_subset, train_test_split};
pub use train::{examples, train, CurvePoint, Examples, Level, TestFigures, TrainOptions, Trained};
