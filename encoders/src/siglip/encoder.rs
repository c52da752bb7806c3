//! SigLIP as an [`Encoder`] (images → embeddings) that also embeds texts and scores
//! image–text pairs. Loads a Hugging Face checkpoint folder (`config.json`,
//! `model.safetensors`, `spiece.model`), as `google/medsiglip-448` ships, or runs the seeded
//! stand-in.

use super::config::SiglipConfig;
use super::model::Siglip;
use super::seeded::seeded_weights;
use crate::error::{EncoderError, Result};
use crate::input::InputSpec;
use crate::spec::{Encoder, OutputSpec, TextEncoder};
use crate::text::SiglipTokenizer;
use crate::weights_source::WeightsSource;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// A SigLIP model ready to embed images and texts.
#[derive(Debug, Clone)]
pub struct SiglipEncoder {
    model_id: String,
    spec: InputSpec,
    output: OutputSpec,
    model: Siglip,
    cfg: SiglipConfig,
    tokenizer: Option<SiglipTokenizer>,
    source: WeightsSource,
    weights_id: String,
    dtype: DType,
}

/// The files of a checkpoint folder.
struct Checkpoint {
    config: Option<PathBuf>,
    weights: PathBuf,
    spiece: Option<PathBuf>,
}

fn find_files(path: &Path) -> Result<Checkpoint> {
    if path.is_dir() {
        let weights = path.join("model.safetensors");
        if !weights.is_file() {
            return Err(EncoderError::WeightsFile {
                file: path.display().to_string(),
                message: "no model.safetensors in this folder; give the checkpoint folder (config.json, model.safetensors, spiece.model)".into(),
            });
        }
        let some = |name: &str| Some(path.join(name)).filter(|p| p.is_file());
        if some("config.json").is_none() {
            return Err(EncoderError::WeightsFile {
                file: path.display().to_string(),
                message: "no config.json in this folder (transformers saves it beside model.safetensors); copy it from the checkpoint, or pass the .safetensors file itself to use MedSigLIP-448's architecture".into(),
            });
        }
        Ok(Checkpoint { config: some("config.json"), weights, spiece: some("spiece.model") })
    } else if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        let some = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        Ok(Checkpoint { config: some("config.json"), weights: path.to_path_buf(), spiece: some("spiece.model") })
    } else {
        Err(EncoderError::WeightsFile { file: path.display().to_string(), message: "no such file or folder".into() })
    }
}

/// Reads the architecture from a transformers `config.json` (fields not given keep `base`'s).
pub(crate) fn config_from_json(path: &Path, base: &SiglipConfig) -> Result<SiglipConfig> {
    let fail = |message: String| EncoderError::WeightsFile { file: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    if let Some(kind) = json["model_type"].as_str().filter(|k| *k != "siglip") {
        return Err(EncoderError::WrongModel {
            file: path.display().to_string(),
            model: "SigLIP".into(),
            reason: format!("its model_type is {kind:?}, not \"siglip\""),
        });
    }
    let mut cfg = base.clone();
    let num = |v: &serde_json::Value| v.as_u64().map(|n| n as usize);
    for (tower, key) in [(&mut cfg.vision, "vision_config"), (&mut cfg.text, "text_config")] {
        let c = &json[key];
        tower.width = num(&c["hidden_size"]).unwrap_or(tower.width);
        tower.mlp_dim = num(&c["intermediate_size"]).unwrap_or(tower.mlp_dim);
        tower.depth = num(&c["num_hidden_layers"]).unwrap_or(tower.depth);
        tower.heads = num(&c["num_attention_heads"]).unwrap_or(tower.heads);
        tower.layer_norm_eps = c["layer_norm_eps"].as_f64().unwrap_or(tower.layer_norm_eps);
        if let Some(act) = c["hidden_act"].as_str().filter(|a| *a != "gelu_pytorch_tanh") {
            return Err(fail(format!("{key}.hidden_act is {act:?}; SigLIP here computes gelu_pytorch_tanh")));
        }
    }
    let v = &json["vision_config"];
    cfg.image_size = num(&v["image_size"]).unwrap_or(cfg.image_size);
    cfg.patch_size = num(&v["patch_size"]).unwrap_or(cfg.patch_size);
    let t = &json["text_config"];
    cfg.vocab_size = num(&t["vocab_size"]).unwrap_or(cfg.vocab_size);
    cfg.max_text_len = num(&t["max_position_embeddings"]).unwrap_or(cfg.max_text_len);
    cfg.projection_dim = num(&t["projection_size"]).unwrap_or(cfg.text.width);
    cfg.validate()?;
    Ok(cfg)
}

impl SiglipEncoder {
    /// Loads a checkpoint: a folder holding `model.safetensors` and `config.json` (and
    /// `spiece.model` for texts), or the `.safetensors` file itself (its folder is searched for
    /// the other two; without `config.json` the architecture is `base`'s).
    pub fn load(model_id: &str, spec: InputSpec, base: &SiglipConfig, path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let files = find_files(path)?;
        let cfg = match &files.config {
            Some(c) => config_from_json(c, base)?,
            None => base.clone(),
        };
        let file = files.weights.display().to_string();
        // SAFETY: the file is memory-mapped read-only for the load; nothing else writes it.
        let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&files.weights], dtype, device) }
            .map_err(|e| EncoderError::WeightsFile { file: file.clone(), message: e.to_string() })?;
        let model = Siglip::new(&cfg, vb).map_err(|e| EncoderError::WrongModel {
            file: file.clone(),
            model: "SigLIP".into(),
            reason: format!("{e} (expected transformers SiglipModel tensors: vision_model.*, text_model.*, logit_scale, logit_bias)"),
        })?;
        let tokenizer = files.spiece.as_deref().map(|p| SiglipTokenizer::open(p, cfg.max_text_len)).transpose()?;
        SiglipEncoder::build(model_id, spec, cfg, model, tokenizer, WeightsSource::file(&files.weights)?, dtype)
    }

    /// The seeded stand-in (haidef-seeded-v1) of `cfg`'s shape; `tokenizer` for texts (a
    /// trained `spiece.model`, since a vocabulary cannot be seeded).
    pub fn untrained(
        model_id: &str,
        spec: InputSpec,
        cfg: &SiglipConfig,
        seed: u64,
        tokenizer: Option<SiglipTokenizer>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        cfg.validate()?;
        let model = Siglip::new(cfg, seeded_weights(cfg, seed, device, dtype)?)?;
        SiglipEncoder::build(model_id, spec, cfg.clone(), model, tokenizer, WeightsSource::Untrained { seed }, dtype)
    }

    fn build(
        model_id: &str,
        spec: InputSpec,
        cfg: SiglipConfig,
        model: Siglip,
        tokenizer: Option<SiglipTokenizer>,
        source: WeightsSource,
        dtype: DType,
    ) -> Result<Self> {
        if (spec.height, spec.width, spec.channels) != (cfg.image_size, cfg.image_size, 3) {
            return Err(EncoderError::Config(format!(
                "input spec {}x{}x{} does not match SigLIP's {s}x{s}x3",
                spec.height,
                spec.width,
                spec.channels,
                s = cfg.image_size
            )));
        }
        let weights_id = source.id();
        Ok(SiglipEncoder { model_id: model_id.into(), spec, output: OutputSpec::Embedding(cfg.vision.width), model, cfg, tokenizer, source, weights_id, dtype })
    }

    /// The architecture.
    pub fn config(&self) -> &SiglipConfig {
        &self.cfg
    }

    /// The towers.
    pub fn model(&self) -> &Siglip {
        &self.model
    }

    /// Where the weights came from.
    pub fn weights_source(&self) -> &WeightsSource {
        &self.source
    }

    /// The tokenizer, when the checkpoint has one.
    pub fn tokenizer(&self) -> Option<&SiglipTokenizer> {
        self.tokenizer.as_ref()
    }

    /// Token ids `(N, max_text_len)` of `texts`; an empty text is an error naming it.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Tensor> {
        let tok = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| EncoderError::Config("this model has no tokenizer: give the checkpoint folder that holds spiece.model".into()))?;
        if texts.is_empty() {
            return Err(EncoderError::BadText { index: 0, problem: "no texts given".into() });
        }
        let mut ids = Vec::with_capacity(texts.len() * tok.max_len());
        for (i, t) in texts.iter().enumerate() {
            if t.trim().is_empty() {
                return Err(EncoderError::BadText { index: i, problem: "the text is empty; give a prompt such as \"tumor tissue\"".into() });
            }
            ids.extend(tok.encode(t));
        }
        Ok(Tensor::from_vec(ids, (texts.len(), tok.max_len()), self.model.device())?)
    }

    /// Text embeddings `(N, width)` in f32 (not normalised, as transformers' `get_text_features`).
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Tensor> {
        let ids = self.tokenize(texts)?;
        Ok(self.model.text.forward(&ids)?.to_dtype(DType::F32)?)
    }

    /// Sigmoid scores `(images, texts)`: the probability that each text describes each image,
    /// from embeddings this model made.
    pub fn scores(&self, image_embeddings: &Tensor, text_embeddings: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.model.logits(image_embeddings, text_embeddings)?)?)
    }
}

impl Encoder for SiglipEncoder {
    fn model_id(&self) -> &str {
        &self.model_id
    }
    fn input_spec(&self) -> &InputSpec {
        &self.spec
    }
    fn output(&self) -> &OutputSpec {
        &self.output
    }
    fn device(&self) -> &Device {
        self.model.device()
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn embed(&self, batch: &Tensor) -> Result<Tensor> {
        crate::cpu_ops::forward_in_slices(batch, |x| Ok(self.model.vision.forward(x)?.to_dtype(DType::F32)?))
    }
    fn is_trained(&self) -> bool {
        matches!(self.source, WeightsSource::File { .. })
    }
    fn weights_id(&self) -> &str {
        &self.weights_id
    }
    fn text_encoder(&self) -> Option<&dyn TextEncoder> {
        Some(self)
    }
}

impl TextEncoder for SiglipEncoder {
    fn embed_texts(&self, texts: &[&str]) -> Result<Tensor> {
        SiglipEncoder::embed_texts(self, texts)
    }
    fn score_params(&self) -> (f32, f32) {
        (self.model.logit_scale, self.model.logit_bias)
    }
}
