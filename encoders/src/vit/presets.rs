//! The ViT models by name, each a registry entry: Google's Path Foundation (the default), timm's
//! `vit_base_patch16_224`, and the open pathology foundation models as configuration of the
//! ViT. Each pathology preset is the architecture its publisher builds (timm or transformers),
//! its input (224×224, its mean and std) and the pooling of its published embedding. Sources for every number are in
//! docs/ENCODERS.md; `fixtures/encoders/make_presets.py` checks each against timm or
//! transformers with seeded weights.

use super::config::{MlpKind, Pooling, VitConfig};
use super::path_foundation;
use crate::input::{Filter, InputSpec, Resize};
use crate::model_entry::{Architecture, ModelEntry};
use crate::spec::OutputSpec;

/// ImageNet's mean and std (torchvision, timm `IMAGENET_DEFAULT_*`).
const IMAGENET: ([f32; 3], [f32; 3]) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

/// 224×224 RGB, x/255, normalised by `mean_std`; other sizes resized (Pillow's antialiased
/// `filter`, as torchvision's and timm's PIL pipelines do) so the shorter side is
/// `floor(224 / crop_pct)`, then the centre cut (`crop_pct` 1: a plain resize of squares).
fn input(mean_std: ([f32; 3], [f32; 3]), filter: Filter, crop_pct: f32) -> InputSpec {
    InputSpec::rgb_unit(224).with_mean_std(mean_std.0, mean_std.1).with_resize(Resize::Antialiased(filter)).with_center_crop(crop_pct)
}

/// UNI (Mahmood lab): timm `vit_large_patch16_224` with `init_values=1e-5` (LayerScale).
fn uni() -> VitConfig {
    VitConfig { layer_scale: true, ..VitConfig::vit_l16() }
}

/// UNI2-h: ViT-H/14-style giant (width 1536, depth 24, 24 heads), SwiGLU packed in 8192, 8
/// register tokens, position embeddings for the patches only, LayerScale.
fn uni2_h() -> VitConfig {
    VitConfig { depth: 24, reg_tokens: 8, no_embed_class: true, ..VitConfig::vit_g14() }
}

/// Virchow2 (Paige): timm `vit_huge_patch14_224`, `mlp_ratio=5.3375` SwiGLU packed (6832), 4
/// register tokens, LayerScale; embedding = class token ⊕ mean of patch tokens (2560).
fn virchow2() -> VitConfig {
    VitConfig {
        mlp_dim: 6832,
        mlp: MlpKind::SwiGluPacked,
        reg_tokens: 4,
        layer_scale: true,
        pooling: Pooling::ClassTokenAndMeanPatchTokens,
        ..VitConfig::vit_h14()
    }
}

/// H-optimus-0 (Bioptimus): timm `vit_giant_patch14_reg4_dinov2` at 224: ViT-g/14, 4 register
/// tokens, position embeddings for the patches only.
fn h_optimus_0() -> VitConfig {
    VitConfig { reg_tokens: 4, no_embed_class: true, ..VitConfig::vit_g14() }
}

/// Prov-GigaPath's tile encoder: timm `vit_giant_patch14_dinov2` built with 16-pixel patches
/// at 224 (its hub configuration).
fn prov_gigapath() -> VitConfig {
    VitConfig { patch_size: 16, ..VitConfig::vit_g14() }
}

/// Phikon (Owkin): transformers `ViTModel`, ViT-B/16, LayerNorm ε 1e-12.
fn phikon() -> VitConfig {
    VitConfig { layer_norm_eps: 1e-12, ..VitConfig::vit_b16() }
}

/// Phikon-v2 (Owkin): transformers `Dinov2Model`, ViT-L/16 with LayerScale.
fn phikon_v2() -> VitConfig {
    VitConfig { layer_scale: true, ..VitConfig::vit_l16() }
}

/// Path Foundation (the default) and timm's ViT-B/16, the registry's first entries.
pub(crate) fn image_entries() -> Vec<ModelEntry> {
    vec![
        ModelEntry {
            name: path_foundation::NAME,
            model_id: path_foundation::MODEL_ID,
            summary: "Google HAI-DEF Path Foundation: ViT-S/16, 224x224 H&E patches -> 384-d",
            architecture: Architecture::Vit(path_foundation::config()),
            input: path_foundation::input_spec(),
            output: OutputSpec::Embedding(384),
            weight_names: "timm vit_small_patch16_224 or Hugging Face ViTModel names",
            weights_hint: "gated: convert Google's SavedModel with tools/convert_path_foundation.py (README)",
            untrained_seed: path_foundation::UNTRAINED_SEED,
        },
        ModelEntry {
            name: "vit_base_patch16_224",
            model_id: "timm/vit_base_patch16_224",
            summary: "timm ViT-B/16 at 224x224 -> 768-d class token after the final norm",
            architecture: Architecture::Vit(VitConfig::vit_b16()),
            // timm's default pretrained config for this model (augreg2_in21k_ft_in1k): mean = std
            // = 0.5, bicubic, crop_pct 0.9 (shorter side to 248, centre 224x224).
            input: InputSpec::rgb_unit(224).with_mean_std([0.5; 3], [0.5; 3]).with_resize(Resize::Antialiased(Filter::Bicubic)).with_center_crop(0.9),
            output: OutputSpec::Embedding(768),
            weight_names: "timm vit_base_patch16_224 or Hugging Face ViTModel names",
            weights_hint: "save timm's state_dict with safetensors.torch.save_file (README)",
            untrained_seed: 0xB16,
        },
    ]
}

/// The pathology foundation models' entries (after the other families' in the registry).
pub(crate) fn pathology_entries() -> Vec<ModelEntry> {
    let timm = "timm names (as the checkpoint's state_dict), or Hugging Face names";
    let entry = |name, model_id, summary, cfg: VitConfig, input: InputSpec, weight_names, weights_hint, untrained_seed| ModelEntry {
        name,
        model_id,
        summary,
        output: OutputSpec::Embedding(cfg.output_dim()),
        architecture: Architecture::Vit(cfg),
        input,
        weight_names,
        weights_hint,
        untrained_seed,
    };
    vec![
        entry(
            "uni",
            "MahmoodLab/UNI",
            "UNI: ViT-L/16, 224x224 H&E at 20x -> 1024-d class token",
            uni(),
            input(IMAGENET, Filter::Bilinear, 1.0),
            timm,
            "gated (CC-BY-NC-ND 4.0): MahmoodLab/UNI on Hugging Face, pytorch_model.bin -> safetensors (docs/ENCODERS.md)",
            0x0A1,
        ),
        entry(
            "uni2-h",
            "MahmoodLab/UNI2-h",
            "UNI2-h: ViT-H/14 (1536 wide, 24 blocks, SwiGLU, 8 registers) -> 1536-d class token",
            uni2_h(),
            input(IMAGENET, Filter::Bilinear, 1.0),
            timm,
            "gated (CC-BY-NC-ND 4.0): MahmoodLab/UNI2-h on Hugging Face (docs/ENCODERS.md)",
            0x0A2,
        ),
        entry(
            "virchow2",
            "paige-ai/Virchow2",
            "Virchow2: ViT-H/14 (SwiGLU, 4 registers) -> class token + mean patch token, 2560-d",
            virchow2(),
            input(IMAGENET, Filter::Bicubic, 1.0),
            timm,
            "gated (CC-BY-NC-ND 4.0): paige-ai/Virchow2 on Hugging Face (docs/ENCODERS.md)",
            0x0A3,
        ),
        entry(
            "h-optimus-0",
            "bioptimus/H-optimus-0",
            "H-optimus-0: ViT-g/14 (4 registers) -> 1536-d class token",
            h_optimus_0(),
            input(([0.707223, 0.578729, 0.703617], [0.211883, 0.230117, 0.177517]), Filter::Bicubic, 1.0),
            timm,
            "Apache-2.0: bioptimus/H-optimus-0 on Hugging Face (docs/ENCODERS.md)",
            0x0A4,
        ),
        entry(
            "prov-gigapath",
            "prov-gigapath/prov-gigapath",
            "Prov-GigaPath tile encoder: ViT-g (16-px patches) -> 1536-d class token",
            prov_gigapath(),
            input(IMAGENET, Filter::Bicubic, 0.875),
            timm,
            "gated (Apache-2.0 with terms): prov-gigapath/prov-gigapath on Hugging Face (docs/ENCODERS.md)",
            0x0A5,
        ),
        entry(
            "phikon",
            "owkin/phikon",
            "Phikon: ViT-B/16 (iBOT) -> 768-d class token",
            phikon(),
            input(IMAGENET, Filter::Bilinear, 1.0),
            "Hugging Face ViTModel names (owkin/phikon model.safetensors)",
            "owkin/phikon on Hugging Face (Owkin non-commercial licence; docs/ENCODERS.md)",
            0x0A6,
        ),
        entry(
            "phikon-v2",
            "owkin/phikon-v2",
            "Phikon-v2: ViT-L/16 (DINOv2) -> 1024-d class token",
            phikon_v2(),
            input(IMAGENET, Filter::Bilinear, 1.0),
            "Hugging Face Dinov2Model names (owkin/phikon-v2 model.safetensors)",
            "owkin/phikon-v2 on Hugging Face (Owkin non-commercial licence; docs/ENCODERS.md)",
            0x0A7,
        ),
    ]
}
