//! Models by name: what `--model NAME` means. Each entry ([`crate::ModelEntry`]) declares the
//! architecture, the input (size, resizing, normalisation), the weight-name schemes its
//! checkpoints may use, and the output. Each model family declares its own entries
//! (`vit/presets.rs`, `siglip/presets.rs`, `hear/presets.rs`); this module only gathers them.
//! Adding a model of a known architecture is one entry in its family's `presets.rs`; a new
//! architecture adds one module beside `vit` with its own `presets.rs`.
//!
//! ```
//! use haidef_wsi_encoders::registry;
//! use haidef_wsi_encoders::candle::{DType, Device};
//! let entry = registry::find("vit_base_patch16_224")?;
//! assert_eq!(entry.output.len(), 768);
//! let model = entry.untrained(&Device::Cpu, DType::F32)?; // or entry.load(path, ..)
//! assert_eq!(model.embedding_dim(), 768);
//! # Ok::<(), haidef_wsi_encoders::EncoderError>(())
//! ```

use crate::error::{EncoderError, Result};
use crate::model_entry::ModelEntry;
use crate::vit::path_foundation;

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = path_foundation::NAME;

/// Every model the library knows, the default first.
pub fn models() -> Vec<ModelEntry> {
    // The order `--help` lists them in.
    [
        crate::vit::presets::image_entries(),
        crate::siglip::presets::entries(),
        crate::hear::presets::entries(),
        crate::vit::presets::pathology_entries(),
        crate::resnetv2::presets::entries(),
    ]
    .concat()
}

/// The entry named `name` (case-insensitive; `-` and `_` are the same), or an error listing
/// the known names.
pub fn find(name: &str) -> Result<ModelEntry> {
    let key = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let all = models();
    let names: Vec<&str> = all.iter().map(|m| m.name).collect();
    let names = names.join(", ");
    all.into_iter().find(|m| key(m.name) == key(name)).ok_or_else(|| EncoderError::Config(format!("unknown model {name:?}; known models: {names}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_entry::Architecture;

    #[test]
    fn names_resolve_and_unknown_names_list_the_known_ones() {
        assert_eq!(find("Path_Foundation").unwrap().name, DEFAULT_MODEL);
        let err = find("uni2").unwrap_err().to_string();
        assert!(err.contains("uni2") && err.contains("path-foundation") && err.contains("vit_base_patch16_224"), "{err}");
        for m in models() {
            let (h, w, d) = match &m.architecture {
                Architecture::Vit(cfg) => (cfg.image_height, cfg.image_width, cfg.output_dim()),
                Architecture::Siglip(cfg) => (cfg.image_size, cfg.image_size, cfg.vision.width),
                Architecture::Hear(cfg) => (1, crate::hear::audio_spec().clip_samples, cfg.output_dim()),
                Architecture::ResNetV2(cfg) => (cfg.image_size, cfg.image_size, cfg.output_dim()),
            };
            assert_eq!((m.input.height, m.input.width, m.output.len()), (h, w, d), "{}", m.name);
        }
    }
}
