//! HeAR as an [`Encoder`]: batches of 2 s clips → the front end → the ViT → 512-d embeddings.
//! Loads `google/hear-pytorch` as transformers saves it (a folder with `config.json` and
//! `model.safetensors`, or the `.safetensors` file), or runs the seeded stand-in.

use super::frontend::FrontEnd;
use super::frontend_config::FrontEndConfig;
use super::spec::input_spec;
use crate::cpu_ops::forward_in_slices;
use crate::error::{EncoderError, Result};
use crate::input::{AudioSpec, InputSpec};
use crate::spec::{Encoder, OutputSpec};
use crate::vit::{Activation, Vit, VitConfig, VitWeights};
use crate::weights_source::WeightsSource;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// HeAR ready to embed clips.
#[derive(Debug, Clone)]
pub struct HearEncoder {
    model_id: String,
    spec: InputSpec,
    audio: AudioSpec,
    output: OutputSpec,
    front_end: FrontEnd,
    vit: Vit,
    source: WeightsSource,
    weights_id: String,
}

impl HearEncoder {
    /// Loads a checkpoint: a folder holding `model.safetensors` (and `config.json`, whose
    /// architecture is then used and checked), or the `.safetensors` file itself (its folder is
    /// searched for `config.json`; without one, `base` is the architecture).
    pub fn load(model_id: &str, base: &VitConfig, path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let (weights, config) = find_files(path)?;
        let cfg = match &config {
            Some(c) => config_from_json(c, base)?,
            None => base.clone(),
        };
        if cfg.projection.is_none() {
            return Err(EncoderError::WrongModel {
                file: weights.display().to_string(),
                model: "HeAR".into(),
                reason: "its config has no pooler_output_size; HeAR's embedding is the pooler's 512-d projection".into(),
            });
        }
        let w = VitWeights::load(&weights, &cfg)?;
        Self::build(model_id, cfg, &w, device, dtype, WeightsSource::file(&weights)?)
    }

    /// The seeded stand-in (haidef-seeded-v1) of `cfg`'s shape: its embeddings mean nothing
    /// (see [`crate::UNTRAINED_WARNING`]).
    pub fn untrained(model_id: &str, cfg: &VitConfig, seed: u64, device: &Device, dtype: DType) -> Result<Self> {
        let w = VitWeights::seeded(cfg, seed)?;
        Self::build(model_id, cfg.clone(), &w, device, dtype, WeightsSource::Untrained { seed })
    }

    fn build(model_id: &str, cfg: VitConfig, w: &VitWeights, device: &Device, dtype: DType, source: WeightsSource) -> Result<Self> {
        let fe = FrontEndConfig::hear();
        if (cfg.image_height, cfg.image_width, cfg.channels) != (fe.out_height, fe.out_width, 1) {
            return Err(EncoderError::Config(format!(
                "HeAR's ViT takes {}x{}x1 spectrograms; this config is {}x{}x{}",
                fe.out_height, fe.out_width, cfg.image_height, cfg.image_width, cfg.channels
            )));
        }
        let audio = AudioSpec { sample_rate: fe.sample_rate, clip_samples: fe.clip_samples };
        let weights_id = source.id();
        Ok(HearEncoder {
            model_id: model_id.into(),
            spec: input_spec(),
            audio,
            output: OutputSpec::Embedding(cfg.output_dim()),
            front_end: FrontEnd::new(fe, device)?,
            vit: Vit::new(cfg, w.var_builder(device, dtype))?,
            source,
            weights_id,
        })
    }

    /// The front end (for spectrogram pictures and checks).
    pub fn front_end(&self) -> &FrontEnd {
        &self.front_end
    }

    /// The ViT.
    pub fn vit(&self) -> &Vit {
        &self.vit
    }

    /// Where the weights came from.
    pub fn weights_source(&self) -> &WeightsSource {
        &self.source
    }

    /// `(N, clip_samples)` f32 clips → `(N, 512)` f32 embeddings.
    pub fn embed_clips(&self, clips: &Tensor) -> Result<Tensor> {
        forward_in_slices(clips, |x| Ok(self.vit.forward(&self.front_end.forward(x)?)?.to_dtype(DType::F32)?))
    }
}

fn find_files(path: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    let fail = |message: &str| Err(EncoderError::WeightsFile { file: path.display().to_string(), message: message.into() });
    if path.is_dir() {
        let weights = path.join("model.safetensors");
        if !weights.is_file() {
            return fail("no model.safetensors in this folder; give the google/hear-pytorch checkpoint folder (config.json, model.safetensors)");
        }
        Ok((weights, Some(path.join("config.json")).filter(|p| p.is_file())))
    } else if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok((path.to_path_buf(), Some(dir.join("config.json")).filter(|p| p.is_file())))
    } else {
        fail("no such file or folder")
    }
}

/// Reads a transformers `ViTConfig` (`config.json`) for HeAR: fields not given keep `base`'s;
/// an activation or pooler this implementation does not compute is an error naming it.
pub(crate) fn config_from_json(path: &Path, base: &VitConfig) -> Result<VitConfig> {
    let fail = |message: String| EncoderError::WeightsFile { file: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    if let Some(kind) = json["model_type"].as_str().filter(|k| *k != "vit") {
        return Err(EncoderError::WrongModel {
            file: path.display().to_string(),
            model: "HeAR (ViTModel)".into(),
            reason: format!("its model_type is {kind:?}, not \"vit\""),
        });
    }
    let num = |v: &serde_json::Value| v.as_u64().map(|n| n as usize);
    let mut cfg = base.clone();
    match &json["image_size"] {
        serde_json::Value::Array(a) if a.len() == 2 => {
            cfg.image_height = num(&a[0]).unwrap_or(cfg.image_height);
            cfg.image_width = num(&a[1]).unwrap_or(cfg.image_width);
        }
        v => {
            if let Some(s) = num(v) {
                (cfg.image_height, cfg.image_width) = (s, s);
            }
        }
    }
    cfg.patch_size = num(&json["patch_size"]).unwrap_or(cfg.patch_size);
    cfg.channels = num(&json["num_channels"]).unwrap_or(cfg.channels);
    cfg.width = num(&json["hidden_size"]).unwrap_or(cfg.width);
    cfg.depth = num(&json["num_hidden_layers"]).unwrap_or(cfg.depth);
    cfg.heads = num(&json["num_attention_heads"]).unwrap_or(cfg.heads);
    cfg.mlp_dim = num(&json["intermediate_size"]).unwrap_or(cfg.mlp_dim);
    cfg.layer_norm_eps = json["layer_norm_eps"].as_f64().unwrap_or(cfg.layer_norm_eps);
    cfg.qkv_bias = json["qkv_bias"].as_bool().unwrap_or(cfg.qkv_bias);
    if let Some(act) = json["hidden_act"].as_str() {
        cfg.activation = match act {
            "gelu" => Activation::Gelu,
            "gelu_fast" | "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => return Err(fail(format!("hidden_act is {other:?}; supported: gelu, gelu_fast, gelu_new, gelu_pytorch_tanh"))),
        };
    }
    if let Some(p) = num(&json["pooler_output_size"]) {
        cfg.projection = Some(p);
    }
    // transformers' default pooler is Dense + tanh; HeAR's is linear.
    match json["pooler_act"].as_str() {
        None | Some("linear") => {}
        Some(other) => return Err(fail(format!("pooler_act is {other:?}; HeAR's pooler is \"linear\" and only that is implemented"))),
    }
    cfg.validate()?;
    Ok(cfg)
}

impl Encoder for HearEncoder {
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
        self.vit.device()
    }
    fn dtype(&self) -> DType {
        self.vit.dtype()
    }
    fn input_dtype(&self) -> DType {
        DType::F32
    }
    /// `batch`: `(N, 1, 1, clip_samples)` as [`crate::Batcher`] packs the clips.
    fn embed(&self, batch: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = batch.dims4()?;
        if (c, h, w) != (1, 1, self.audio.clip_samples) {
            return Err(EncoderError::BadInput {
                index: 0,
                problem: format!("batch is {n}x{c}x{h}x{w}; HeAR takes Nx1x1x{} (clips of {} samples)", self.audio.clip_samples, self.audio.clip_samples),
            });
        }
        self.embed_clips(&batch.reshape((n, w))?.to_dtype(DType::F32)?)
    }
    fn is_trained(&self) -> bool {
        matches!(self.source, WeightsSource::File { .. })
    }
    fn weights_id(&self) -> &str {
        &self.weights_id
    }
    fn audio_spec(&self) -> Option<&AudioSpec> {
        Some(&self.audio)
    }
}
