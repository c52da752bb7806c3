//! Zero-shot scores: for models whose texts and images share one embedding space (MedSigLIP),
//! each prompt's probability of describing each embedded image,
//! `sigmoid(exp(scale) · cos(image, prompt) + bias)`, written as one column per prompt.

use crate::error::{PipelineError, Result};
use haidef_wsi_encoders::Encoder;

/// Prompts embedded once, ready to score image embeddings.
#[derive(Debug, Clone)]
pub(crate) struct Prompts {
    texts: Vec<String>,
    /// Unit-length text embeddings, one per prompt.
    unit: Vec<Vec<f32>>,
    scale: f32,
    bias: f32,
}

impl Prompts {
    /// Embeds `prompts` with `encoder`'s text side. Errors when the model has none, a prompt
    /// is empty or repeated, or a prompt would clash with one of `taken` (the other column
    /// names of the output).
    pub fn new(encoder: &dyn Encoder, prompts: &[String], taken: &[&str]) -> Result<Self> {
        let Some(text) = encoder.text_encoder() else {
            return Err(PipelineError::Options(format!(
                "{} has no text side, so it cannot score prompts; choose a model with one (the registry's medsiglip: --model medsiglip in the examples), or give no prompts",
                encoder.model_id()
            )));
        };
        for (i, p) in prompts.iter().enumerate() {
            if prompts[..i].contains(p) {
                return Err(PipelineError::Options(format!("prompt {p:?} is given twice")));
            }
            if taken.contains(&p.as_str()) {
                return Err(PipelineError::Options(format!("prompt {p:?} has the name of an output column; reword it")));
            }
        }
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let rows = text.embed_texts(&refs)?.to_vec2::<f32>().map_err(haidef_wsi_encoders::EncoderError::from)?;
        let unit = rows.into_iter().map(|r| unit(&r)).collect();
        let (scale, bias) = text.score_params();
        Ok(Prompts { texts: prompts.to_vec(), unit, scale, bias })
    }

    /// Records the prompts and the score's formula in an output's key-value metadata.
    pub fn describe_in(&self, meta: &mut std::collections::HashMap<String, String>) {
        meta.insert("prompts".to_string(), serde_json::Value::from(self.texts.clone()).to_string());
        meta.insert("score".to_string(), "sigmoid(exp(logit_scale) * cos(image, prompt) + logit_bias), one column per prompt".to_string());
    }

    /// Scores of `embeddings` (rows of `dim` floats): one vector per prompt, one value per row.
    pub fn score(&self, embeddings: &[f32], dim: usize) -> Vec<Vec<f32>> {
        let rows: Vec<Vec<f32>> = embeddings.chunks_exact(dim).map(unit).collect();
        let k = f64::from(self.scale).exp();
        self.unit
            .iter()
            .map(|t| {
                rows.iter()
                    .map(|r| {
                        let cos: f64 = r.iter().zip(t).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                        (1.0 / (1.0 + (-(k * cos + f64::from(self.bias))).exp())) as f32
                    })
                    .collect()
            })
            .collect()
    }
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| (f64::from(*x) / n.max(1e-12)) as f32).collect()
}

/// Whether `name` is a score picture's file name as the slide job writes them
/// (`score-<n>-<prompt slug>.png`, see the `heatmaps` feature): a previous run's, to be replaced.
pub(crate) fn is_score_map_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("score-").and_then(|r| r.strip_suffix(".png")) else { return false };
    let (n, slug) = rest.split_once('-').unwrap_or((rest, ""));
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && slug.chars().all(|c| c.is_alphanumeric() || c == '-')
}

#[cfg(test)]
mod score_map_name_tests {
    #[test]
    fn only_score_picture_names_match() {
        for n in ["score-1-tumor.png", "score-12-normal-tissue.png", "score-3-.png"] {
            assert!(super::is_score_map_name(n), "{n}");
        }
        for n in ["score-summary.png", "score--x.png", "score-1-a b.png", "score-1-tumor.jpg", "heatmap.png"] {
            assert!(!super::is_score_map_name(n), "{n}");
        }
    }
}
