//! The shape of a ResNet v2 (pre-activation, weight-standardised convolutions, GroupNorm), as
//! timm's `ResNetV2` builds Google's BiT models: a 7×7 stem with "fixed" SAME padding before
//! its max-pool, four stages of bottleneck blocks, GroupNorm + ReLU before each convolution and
//! once more before the global average pool.

use crate::error::{EncoderError, Result};

/// A ResNet v2 of bottleneck blocks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResNetV2Config {
    /// Blocks per stage (BiT-101: `[3, 4, 23, 3]`).
    pub layers: Vec<usize>,
    /// Channel multiplier (the `x3` of BiT-M R101x3).
    pub width_factor: usize,
    /// Stem channels before the width factor (64).
    pub stem_channels: usize,
    /// Output channels of each stage before the width factor (256, 512, 1024, 2048).
    pub stage_channels: Vec<usize>,
    /// GroupNorm groups (32).
    pub groups: usize,
    /// GroupNorm ε (timm's `GroupNormAct`: 1e-5).
    pub norm_eps: f64,
    /// Weight standardisation ε (BiT: 1e-8).
    pub std_eps: f64,
    /// Input height and width.
    pub image_size: usize,
}

impl ResNetV2Config {
    /// Google's BiT with `layers` and `width_factor` at `image_size`, as timm's
    /// `resnetv2_<depth>x<width>_bit` builds it.
    pub fn bit(layers: &[usize], width_factor: usize, image_size: usize) -> Self {
        ResNetV2Config {
            layers: layers.to_vec(),
            width_factor,
            stem_channels: 64,
            stage_channels: vec![256, 512, 1024, 2048],
            groups: 32,
            norm_eps: 1e-5,
            std_eps: 1e-8,
            image_size,
        }
    }

    /// BiT-M R101x3: Derm Foundation's architecture.
    pub fn bit_101x3(image_size: usize) -> Self {
        Self::bit(&[3, 4, 23, 3], 3, image_size)
    }

    /// Stem output channels.
    pub fn stem_width(&self) -> usize {
        self.stem_channels * self.width_factor
    }

    /// Output channels of stage `s`.
    pub fn stage_width(&self, s: usize) -> usize {
        self.stage_channels[s] * self.width_factor
    }

    /// Floats per embedding: the last stage's channels (BiT-M R101x3: 6144).
    pub fn output_dim(&self) -> usize {
        self.stage_width(self.layers.len() - 1)
    }

    /// Checks that the numbers make a network.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(EncoderError::Config(format!("ResNet v2: {m}")));
        if self.layers.is_empty() || self.layers.len() != self.stage_channels.len() || self.layers.contains(&0) {
            return fail(format!("{:?} blocks per stage for {} stages: each stage needs at least one block", self.layers, self.stage_channels.len()));
        }
        if self.width_factor == 0 || self.groups == 0 {
            return fail("width factor and groups must be at least 1".into());
        }
        for c in std::iter::once(self.stem_width()).chain((0..self.layers.len()).flat_map(|s| [self.stage_width(s), self.stage_width(s) / 4])) {
            if c == 0 || c % self.groups != 0 {
                return fail(format!("{c} channels do not split into {} groups", self.groups));
            }
        }
        let stride = 4 << (self.layers.len() - 1);
        if self.image_size < stride {
            return fail(format!("input {} px is smaller than the network's stride {stride}", self.image_size));
        }
        Ok(())
    }

    /// Every tensor with its shape, under timm's `state_dict` names.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = vec![("stem.conv.weight".to_string(), vec![self.stem_width(), 3, 7, 7])];
        let mut prev = self.stem_width();
        for (s, &depth) in self.layers.iter().enumerate() {
            let (width, mid) = (self.stage_width(s), self.stage_width(s) / 4);
            for b in 0..depth {
                let p = format!("stages.{s}.blocks.{b}.");
                let input = if b == 0 { prev } else { width };
                if b == 0 {
                    out.push((format!("{p}downsample.conv.weight"), vec![width, input, 1, 1]));
                }
                for (name, shape) in [
                    ("norm1.weight", vec![input]),
                    ("norm1.bias", vec![input]),
                    ("conv1.weight", vec![mid, input, 1, 1]),
                    ("norm2.weight", vec![mid]),
                    ("norm2.bias", vec![mid]),
                    ("conv2.weight", vec![mid, mid, 3, 3]),
                    ("norm3.weight", vec![mid]),
                    ("norm3.bias", vec![mid]),
                    ("conv3.weight", vec![width, mid, 1, 1]),
                ] {
                    out.push((format!("{p}{name}"), shape));
                }
            }
            prev = width;
        }
        out.push(("norm.weight".to_string(), vec![prev]));
        out.push(("norm.bias".to_string(), vec![prev]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_101x3_has_timms_parameter_count_and_width() {
        // timm `resnetv2_101x3_bit` (num_classes=0): 304 tensors, 381,789,888 parameters, 6144 features.
        let cfg = ResNetV2Config::bit_101x3(448);
        cfg.validate().unwrap();
        let params: usize = cfg.tensor_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!((cfg.tensor_shapes().len(), params, cfg.output_dim()), (304, 381_789_888, 6144));
        assert!(ResNetV2Config::bit(&[1, 0, 1, 1], 1, 224).validate().is_err());
        assert!(ResNetV2Config::bit(&[1, 1, 1, 1], 1, 16).validate().unwrap_err().to_string().contains("stride 32"));
    }
}
