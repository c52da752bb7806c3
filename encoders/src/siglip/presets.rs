//! MedSigLIP's registry entry: the architecture, and the input as Google's serving prepares it.

use super::config::SiglipConfig;
use crate::input::{Filter, InputSpec, Resize};
use crate::model_entry::{Architecture, ModelEntry};
use crate::spec::OutputSpec;

/// MedSigLIP-448's registry entry.
pub(crate) fn entries() -> Vec<ModelEntry> {
    vec![ModelEntry {
        name: "medsiglip",
        model_id: "google/medsiglip-448",
        summary: "Google HAI-DEF MedSigLIP-448: SigLIP image + text towers, 448x448 -> 1152-d, zero-shot scores",
        architecture: Architecture::Siglip(SiglipConfig::medsiglip_448()),
        // As Google's serving prepares images (fixtures/medsiglip/README.md, section 6): 8 bits
        // (16-bit v / 257 rounded down), zero-padded to a centred square, Pillow bicubic to
        // 448x448, x/255, mean = std = 0.5, i.e. [-1, 1].
        input: InputSpec {
            pad_to_square: true,
            pad_centered: true,
            eight_bit: true,
            ..InputSpec::rgb_unit(448).with_mean_std([0.5; 3], [0.5; 3]).with_resize(Resize::Antialiased(Filter::Bicubic))
        },
        output: OutputSpec::Embedding(1152),
        weight_names: "transformers SiglipModel names (vision_model.*, text_model.*, logit_scale, logit_bias)",
        weights_hint: "gated: download google/medsiglip-448 from Hugging Face after accepting its terms; pass the folder",
        untrained_seed: 0x51C1,
    }]
}
