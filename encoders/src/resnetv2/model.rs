//! The ResNet v2 forward pass on candle: timm's `ResNetV2` with `PreActBottleneck` blocks,
//! `StdConv2d` (weight standardisation, here applied once when the model is built: the
//! weights do not change), `GroupNormAct` and the BiT stem (7×7/2 convolution, one pixel of
//! zero padding, 3×3/2 max-pool).

use super::config::ResNetV2Config;
use super::weights::ResNetV2Weights;
use crate::error::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::GroupNorm;

/// A weight-standardised convolution without bias.
#[derive(Debug, Clone)]
struct StdConv {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl StdConv {
    /// Standardises each output channel's weights as timm's `StdConv2d` does at every forward
    /// (`F.batch_norm` over the channel's inputs × kernel: biased variance, ε inside the root),
    /// computed in f64.
    fn new(w: &Tensor, eps: f64, stride: usize, device: &Device, dtype: DType) -> Result<Self> {
        let dims = w.dims().to_vec();
        let per: usize = dims[1..].iter().product();
        let values = w.flatten_all()?.to_vec1::<f32>()?;
        let mut out = Vec::with_capacity(values.len());
        for channel in values.chunks(per) {
            let mean = channel.iter().map(|&v| f64::from(v)).sum::<f64>() / per as f64;
            let var = channel.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / per as f64;
            let scale = 1.0 / (var + eps).sqrt();
            out.extend(channel.iter().map(|&v| ((f64::from(v) - mean) * scale) as f32));
        }
        // timm's padding: ((stride - 1) + (k - 1)) / 2.
        let padding = (stride - 1 + dims[2] - 1) / 2;
        let weight = Tensor::from_vec(out, dims, &Device::Cpu)?.to_device(device)?.to_dtype(dtype)?;
        Ok(StdConv { weight, stride, padding })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?)
    }
}

/// GroupNorm followed by ReLU.
#[derive(Debug, Clone)]
struct NormAct(GroupNorm);

impl NormAct {
    fn new(w: &ResNetV2Weights, name: &str, channels: usize, cfg: &ResNetV2Config, device: &Device, dtype: DType) -> Result<Self> {
        let get = |p: &str| -> Result<Tensor> { Ok(w.get(&format!("{name}.{p}"))?.to_device(device)?.to_dtype(dtype)?) };
        Ok(NormAct(GroupNorm::new(get("weight")?, get("bias")?, channels, cfg.groups, cfg.norm_eps)?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.0.forward(x)?.relu()?)
    }
}

/// A pre-activation bottleneck block; the stride is on its 3×3 convolution and its shortcut's.
#[derive(Debug, Clone)]
struct Block {
    downsample: Option<StdConv>,
    norm1: NormAct,
    conv1: StdConv,
    norm2: NormAct,
    conv2: StdConv,
    norm3: NormAct,
    conv3: StdConv,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let pre = self.norm1.forward(x)?;
        let shortcut = match &self.downsample {
            Some(conv) => conv.forward(&pre)?,
            None => x.clone(),
        };
        let h = self.conv1.forward(&pre)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?)?;
        let h = self.conv3.forward(&self.norm3.forward(&h)?)?;
        Ok((h + shortcut)?)
    }
}

/// A ResNet v2 giving the globally average-pooled features `(N, output_dim)`.
#[derive(Debug, Clone)]
pub struct ResNetV2 {
    stem: StdConv,
    blocks: Vec<Block>,
    norm: NormAct,
    device: Device,
    dtype: DType,
}

impl ResNetV2 {
    /// The network from checked weights, on `device` in `dtype`.
    pub fn new(cfg: &ResNetV2Config, w: &ResNetV2Weights, device: &Device, dtype: DType) -> Result<Self> {
        cfg.validate()?;
        let conv = |name: &str, stride: usize| StdConv::new(w.get(name)?, cfg.std_eps, stride, device, dtype);
        let stem = conv("stem.conv.weight", 2)?;
        let mut blocks = Vec::new();
        let mut prev = cfg.stem_width();
        for (s, &depth) in cfg.layers.iter().enumerate() {
            let (width, mid) = (cfg.stage_width(s), cfg.stage_width(s) / 4);
            for b in 0..depth {
                let p = format!("stages.{s}.blocks.{b}");
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let input = if b == 0 { prev } else { width };
                blocks.push(Block {
                    downsample: if b == 0 { Some(conv(&format!("{p}.downsample.conv.weight"), stride)?) } else { None },
                    norm1: NormAct::new(w, &format!("{p}.norm1"), input, cfg, device, dtype)?,
                    conv1: conv(&format!("{p}.conv1.weight"), 1)?,
                    norm2: NormAct::new(w, &format!("{p}.norm2"), mid, cfg, device, dtype)?,
                    conv2: conv(&format!("{p}.conv2.weight"), stride)?,
                    norm3: NormAct::new(w, &format!("{p}.norm3"), mid, cfg, device, dtype)?,
                    conv3: conv(&format!("{p}.conv3.weight"), 1)?,
                });
            }
            prev = width;
        }
        let norm = NormAct::new(w, "norm", prev, cfg, device, dtype)?;
        Ok(ResNetV2 { stem, blocks, norm, device: device.clone(), dtype })
    }

    /// Features of a batch `(N, 3, H, W)`: `(N, output_dim)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.stem.forward(&x.to_dtype(self.dtype)?)?;
        // BiT's "fixed" SAME padding: one pixel of zeros, then a 3×3/2 max-pool without padding.
        let x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 2)?;
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let x = self.norm.forward(&x)?;
        Ok(x.mean(3)?.mean(2)?)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype it computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}
