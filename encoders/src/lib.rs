//! # haidef-wsi-encoders
//!
//! The tensor-batching core shared by every modality: a model declares its input
//! ([`InputSpec`]: size, channels, resizing, padding, normalisation) and [`Batcher`]
//! executes it (8-bit, 16-bit or f32 images → normalised NCHW tensors on CPU or CUDA, in
//! f32/f16/bf16); the [`Encoder`] trait every model implements; and the models, on candle with
//! candle-nn layers, by name ([`registry`]): Google's Path Foundation (ViT-S/16, the default),
//! timm's `vit_base_patch16_224` and the pathology foundation models, all configuration of one
//! ViT ([`VitConfig`]); MedSigLIP ([`SiglipEncoder`]) and HeAR ([`HearEncoder`]).
//!
//! Every public type is at the crate root. The public modules are namespaces for functions and
//! constants: [`registry`] (models by name), [`path_foundation`], [`hear`] and [`siglip`].
//!
//! ```
//! use haidef_wsi_encoders::{path_foundation, Batcher, Encoder, ImageRef};
//! use candle_core::{DType, Device};
//! // Untrained stand-in (no weights needed); load real ones with path_foundation::load.
//! let model = path_foundation::untrained(&Device::Cpu, DType::F32)?;
//! let mut batcher = Batcher::new(model.input_spec().clone(), 8, Device::Cpu, DType::F32)?;
//! let patch = vec![200u8; 224 * 224 * 3];
//! let batch = batcher.pack(&[ImageRef::rgb(224, 224, &patch)])?;
//! let emb = model.embed(&batch)?;
//! assert_eq!(emb.dims(), &[1, 384]);
//! # Ok::<(), haidef_wsi_encoders::EncoderError>(())
//! ```
#![warn(missing_docs)]

// The batching core shared by every modality.
mod batch;
mod checkpoint;
mod cpu_ops;
mod dense;
mod device;
mod error;
mod image;
mod input;
mod resize;
mod spec;
mod weights_source;

// Models by name: each family declares its entries, the registry gathers them.
mod model_entry;
pub mod registry;

// The model families.
pub mod hear;
pub mod resnetv2;
pub mod siglip;
mod text;
mod vit;

/// Not part of the API: the deterministic test-weight generator (haidef-seeded-v1) behind the
/// untrained stand-ins, public only so that parity tests can regenerate weights.
#[doc(hidden)]
pub mod seeded;

/// candle, re-exported so that users name `Device` and `DType` without adding it themselves.
pub use candle_core as candle;

pub use batch::Batcher;
pub use device::{device_name, parse_device};
pub use error::{EncoderError, Result};
pub use image::{ImageRef, Samples};
pub use input::{AudioSpec, Coordinates, Filter, InputSpec, Kernel, Range, Resize};
pub use model_entry::{Architecture, ModelEntry};
pub use spec::{Encoder, OutputSpec, TextEncoder};
pub use weights_source::WeightsSource;

pub use hear::encoder::HearEncoder;
pub use hear::frontend::FrontEnd;
pub use hear::frontend_config::FrontEndConfig;
pub use resnetv2::config::ResNetV2Config;
pub use resnetv2::encoder::ResNetV2Encoder;
pub use resnetv2::model::ResNetV2;
pub use resnetv2::weights::ResNetV2Weights;
pub use siglip::config::{SiglipConfig, TowerConfig};
pub use siglip::encoder::SiglipEncoder;
pub use siglip::model::{Siglip, SiglipText, SiglipVision};
pub use text::{NormalizerSettings, Piece, PieceKind, SiglipTokenizer, SpmModel, Unigram};
pub use vit::path_foundation;
pub use vit::{Activation, MlpKind, Naming, Pooling, Vit, VitConfig, VitEncoder, VitWeights};

/// What [`tune_cpu_inference`] changed in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuTuning {
    /// `CANDLE_NUM_THREADS` was set to 1 (false: the user had set it; left alone).
    pub candle_threads_set: bool,
    /// glibc's mmap and trim thresholds were raised (false: not glibc).
    pub allocator_tuned: bool,
}

/// Tunes **the whole process** for CPU inference; call it first thing in `main`, before other
/// threads exist. Returns what it changed.
///
/// - On CPU, [`Encoder::embed`] already runs one forward pass per rayon thread over slices of
///   the batch; candle's own element-wise thread pool then only adds contention. This sets the
///   environment variable `CANDLE_NUM_THREADS=1` unless the user set it (candle reads it once,
///   at its first operation). Measured on 2 cores, ViT-S/16 batch 8: 18.0 → 20.9 images/s.
/// - With glibc, each forward pass allocates and frees intermediates of a few MB; by default
///   glibc hands them back to the kernel and page-faults them in again every time (about 20% of
///   the CPU time). This raises the process's mmap threshold to 32 MiB and trim threshold to
///   512 MiB (`mallopt`), so freed memory is reused (20.3 → 25.7 images/s). The process then
///   keeps its peak heap instead of returning it.
///
/// Both are process-wide: they affect every library in the process, not only this one.
pub fn tune_cpu_inference() -> CpuTuning {
    let candle_threads_set = std::env::var_os("CANDLE_NUM_THREADS").is_none();
    if candle_threads_set {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; valid values for these options.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
    CpuTuning { candle_threads_set, allocator_tuned: cfg!(all(target_os = "linux", target_env = "gnu")) }
}

/// Printed and stored wherever an untrained model's embeddings are used.
pub const UNTRAINED_WARNING: &str = "WARNING: no weights given: using an UNTRAINED, randomly \
initialised model (haidef-seeded-v1). Its embeddings are NOT meaningful. Pass the model's real \
weights (--weights file.safetensors, see README) for real results.";
