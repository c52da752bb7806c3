//! HeAR's registry entry.

use super::spec::{input_spec, vit_config, MODEL_ID, UNTRAINED_SEED};
use crate::model_entry::{Architecture, ModelEntry};
use crate::spec::OutputSpec;

/// HeAR's registry entry.
pub(crate) fn entries() -> Vec<ModelEntry> {
    vec![ModelEntry {
        name: "hear",
        model_id: MODEL_ID,
        summary: "Google HAI-DEF HeAR: 2 s of 16 kHz audio -> mel-PCEN 192x128 -> ViT-L/16 -> 512-d",
        architecture: Architecture::Hear(vit_config()),
        input: input_spec(),
        output: OutputSpec::Embedding(512),
        weight_names: "transformers ViTModel names with pooler.dense (google/hear-pytorch)",
        weights_hint: "gated: download google/hear-pytorch from Hugging Face after accepting its terms; pass the folder",
        untrained_seed: UNTRAINED_SEED,
    }]
}
