//! Pictures of embeddings: k-means clusters over a slide's patches (`heatmap.png`,
//! `clusters.png`), zero-shot score maps (`score-<n>-<prompt>.png`), and the drawing they share.

mod clusters;
mod kmeans;
pub(crate) mod render;
mod scores;

pub(crate) use clusters::{cluster_and_draw, Layout};
pub(crate) use kmeans::kmeans;
pub(crate) use scores::draw_score_maps;
