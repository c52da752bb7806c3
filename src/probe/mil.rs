//! Attention-based multiple-instance learning (Ilse, Tomczak and Welling 2018, gated
//! attention): a slide is a bag of patch embeddings; each patch is projected
//! (`h = ReLU(W x + b)`), scored (`a = w·(tanh(V h) ⊙ σ(U h))`), the scores softmaxed over the
//! bag, and the attention-weighted mean of `h` classified. Trained with candle (AdamW,
//! cross-entropy, one bag a step) and stopped early on a validation split; the attention is the
//! per-patch map `predict_probe` draws.
//!
//! Tensor names (PyTorch's `nn.Linear` layout, `weight` as out × in): `fc`, `attention_v`,
//! `attention_u`, `attention_w`, `classifier`, each `.weight` and `.bias`.

use crate::probe::error::{ProbeError, ProbeResult};
use crate::probe::rng::SplitMix64;
use haidef_wsi_encoders::candle::{DType, Device, Tensor, Var, D};
use std::collections::HashMap;

/// Sizes and training settings of the MIL model.
#[derive(Debug, Clone)]
pub struct MilOptions {
    /// Width of the projected patch features.
    pub hidden: usize,
    /// Width of the attention layers.
    pub attention: usize,
    /// Epochs at most.
    pub epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed of the initial weights and the bag order.
    pub seed: u64,
}

impl Default for MilOptions {
    fn default() -> Self {
        MilOptions { hidden: 128, attention: 64, epochs: 60, patience: 8, learning_rate: 2e-4, weight_decay: 1e-4, seed: 0 }
    }
}

/// The layers, in the order of [`LAYERS`].
const LAYERS: [&str; 5] = ["fc", "attention_v", "attention_u", "attention_w", "classifier"];

/// A gated-attention MIL model.
#[derive(Debug, Clone)]
pub struct MilModel {
    /// Weights by name (`fc.weight`, `fc.bias`, …).
    pub tensors: HashMap<String, Tensor>,
    /// Number of classes.
    pub n_classes: usize,
}

/// The model's answer for one bag.
#[derive(Debug, Clone)]
pub struct MilOutput {
    /// Class logits.
    pub logits: Vec<f32>,
    /// Attention over the bag's patches (sums to 1).
    pub attention: Vec<f32>,
}

fn linear(t: &HashMap<String, Tensor>, name: &str, x: &Tensor) -> candle_core::Result<Tensor> {
    let w = &t[&format!("{name}.weight")];
    let b = &t[&format!("{name}.bias")];
    x.matmul(&w.t()?)?.broadcast_add(b)
}

fn forward_tensor(t: &HashMap<String, Tensor>, bag: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let h = linear(t, "fc", bag)?.relu()?;
    let v = linear(t, "attention_v", &h)?.tanh()?;
    let u = candle_nn::ops::sigmoid(&linear(t, "attention_u", &h)?)?;
    let a = linear(t, "attention_w", &(v * u)?)?; // n × 1
    let a = candle_nn::ops::softmax(&a.t()?, D::Minus1)?; // 1 × n
    let z = a.matmul(&h)?; // 1 × hidden
    Ok((linear(t, "classifier", &z)?, a))
}

impl MilModel {
    /// A model with weights drawn as PyTorch's `nn.Linear` draws them (uniform in ±1/√fan-in),
    /// from `seed`.
    pub fn init(dim: usize, n_classes: usize, opts: &MilOptions, device: &Device) -> ProbeResult<Self> {
        let mut rng = SplitMix64::new(opts.seed);
        let shapes = [(opts.hidden, dim), (opts.attention, opts.hidden), (opts.attention, opts.hidden), (1, opts.attention), (n_classes, opts.hidden)];
        let mut tensors = HashMap::new();
        for (name, (out, inp)) in LAYERS.iter().zip(shapes) {
            let bound = 1.0 / (inp as f64).sqrt();
            let mut draw = |n: usize| (0..n).map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32).collect::<Vec<f32>>();
            let w = Tensor::from_vec(draw(out * inp), (out, inp), device).map_err(fit_err)?;
            let b = Tensor::from_vec(draw(out), out, device).map_err(fit_err)?;
            tensors.insert(format!("{name}.weight"), w);
            tensors.insert(format!("{name}.bias"), b);
        }
        Ok(MilModel { tensors, n_classes })
    }

    /// A model from named tensors (a safetensors file's); checks names and shapes.
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> ProbeResult<Self> {
        for name in LAYERS {
            for part in ["weight", "bias"] {
                if !tensors.contains_key(&format!("{name}.{part}")) {
                    return Err(ProbeError::Options(format!("the MIL weights lack {name}.{part}")));
                }
            }
        }
        let n_classes = tensors["classifier.weight"].dims()[0];
        let tensors = tensors.into_iter().map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?))).collect::<candle_core::Result<_>>().map_err(fit_err)?;
        Ok(MilModel { tensors, n_classes })
    }

    /// Width of the embeddings it takes.
    pub fn dim(&self) -> usize {
        self.tensors["fc.weight"].dims()[1]
    }

    /// Logits and attention for one bag (`n × dim` embeddings, row after row).
    pub fn forward(&self, bag: &[f32], n: usize) -> ProbeResult<MilOutput> {
        let device = self.tensors["fc.weight"].device().clone();
        let x = Tensor::from_slice(bag, (n, self.dim()), &device).map_err(fit_err)?;
        let (logits, a) = forward_tensor(&self.tensors, &x).map_err(fit_err)?;
        Ok(MilOutput {
            logits: logits.flatten_all().and_then(|t| t.to_vec1()).map_err(fit_err)?,
            attention: a.flatten_all().and_then(|t| t.to_vec1()).map_err(fit_err)?,
        })
    }

    /// Class probabilities (softmax of the logits) for one bag.
    pub fn predict_proba(&self, bag: &[f32], n: usize) -> ProbeResult<(Vec<f64>, Vec<f32>)> {
        let out = self.forward(bag, n)?;
        let m = out.logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = out.logits.iter().map(|&l| f64::from(l - m).exp()).collect();
        let s: f64 = e.iter().sum();
        Ok((e.iter().map(|v| v / s).collect(), out.attention))
    }
}

fn fit_err(e: candle_core::Error) -> ProbeError {
    ProbeError::Fit { what: "the attention MIL model".into(), problem: e.to_string() }
}

/// One bag: its embeddings (`n × dim`, row-major) and class.
#[derive(Debug, Clone)]
pub struct Bag {
    /// Embeddings, row after row.
    pub x: Vec<f32>,
    /// Number of patches.
    pub n: usize,
    /// Class.
    pub y: usize,
}

/// What training did.
#[derive(Debug, Clone)]
pub struct MilTraining {
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept (best validation loss), 1-based.
    pub best_epoch: usize,
    /// Validation loss of the kept weights.
    pub best_loss: f64,
}

/// Trains a MIL model on `train` bags, keeping the weights of the epoch with the lowest
/// cross-entropy on `valid` (early stopping after `opts.patience` epochs without improvement).
pub fn train_mil(train: &[Bag], valid: &[Bag], dim: usize, n_classes: usize, opts: &MilOptions, device: &Device) -> ProbeResult<(MilModel, MilTraining)> {
    use candle_nn::Optimizer;
    if train.is_empty() || valid.is_empty() {
        return Err(ProbeError::Labels(format!("attention MIL needs training and validation slides (has {} and {})", train.len(), valid.len())));
    }
    let init = MilModel::init(dim, n_classes, opts, device)?;
    let mut names: Vec<String> = init.tensors.keys().cloned().collect();
    names.sort();
    let vars: Vec<Var> = names.iter().map(|n| Var::from_tensor(&init.tensors[n])).collect::<candle_core::Result<_>>().map_err(fit_err)?;
    let params = candle_nn::ParamsAdamW { lr: opts.learning_rate, weight_decay: opts.weight_decay, ..Default::default() };
    let mut adam = candle_nn::AdamW::new(vars.clone(), params).map_err(fit_err)?;
    let current = |vars: &[Var]| -> HashMap<String, Tensor> { names.iter().cloned().zip(vars.iter().map(|v| v.as_tensor().clone())).collect() };
    let loss_of = |t: &HashMap<String, Tensor>, bag: &Bag| -> candle_core::Result<Tensor> {
        let x = Tensor::from_slice(&bag.x, (bag.n, dim), device)?;
        let (logits, _) = forward_tensor(t, &x)?;
        let target = Tensor::new(&[bag.y as u32], device)?;
        candle_nn::loss::cross_entropy(&logits, &target)
    };
    let valid_loss = |t: &HashMap<String, Tensor>| -> candle_core::Result<f64> {
        let mut sum = 0.0;
        for bag in valid {
            sum += f64::from(loss_of(t, bag)?.to_scalar::<f32>()?);
        }
        Ok(sum / valid.len() as f64)
    };
    let mut rng = SplitMix64::new(opts.seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best = (f64::INFINITY, 0usize, init.tensors.clone());
    let mut epochs = 0;
    for epoch in 1..=opts.epochs {
        epochs = epoch;
        rng.shuffle(&mut order);
        for &i in &order {
            let t = current(&vars);
            let loss = loss_of(&t, &train[i]).map_err(fit_err)?;
            adam.backward_step(&loss).map_err(fit_err)?;
        }
        let t = current(&vars);
        let l = valid_loss(&t).map_err(fit_err)?;
        if l < best.0 {
            let copy = t.iter().map(|(k, v)| Ok((k.clone(), v.copy()?))).collect::<candle_core::Result<_>>().map_err(fit_err)?;
            best = (l, epoch, copy);
        } else if epoch - best.1 >= opts.patience {
            break;
        }
    }
    Ok((MilModel { tensors: best.2, n_classes }, MilTraining { epochs, best_epoch: best.1, best_loss: best.0 }))
}
