//! Exactness against PyTorch/timm and Hugging Face transformers, on real patches of the fixture
//! slide. fixtures/encoders/make_reference.py made the references; see its README.

use candle_core::{DType, Device, Tensor};
use haidef_wsi_dicom::Slide;
use haidef_wsi_encoders::seeded::seeded_tensor;
use haidef_wsi_encoders::{path_foundation, Encoder, EncoderError, InputSpec, VitEncoder};
use haidef_wsi_encoders::{Batcher, ImageRef};
use haidef_wsi_encoders::{Naming, VitConfig, VitWeights};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("encoders/reference.json")).unwrap()).unwrap()
}

/// The reference patches, read by our reader; checked byte for byte against the pixels
/// wsidicom gave PyTorch (lossless JPEG 2000, so both decoders must agree exactly).
fn patches(reference: &Value) -> Vec<Vec<u8>> {
    let slide = Slide::open(fixtures().join("slides/ihc-j2k")).unwrap();
    reference["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let level = slide.level(p["level"].as_u64().unwrap() as usize).unwrap();
            let r = level.read_region(p["x"].as_i64().unwrap(), p["y"].as_i64().unwrap(), 224, 224).unwrap();
            let sha: String = Sha256::digest(&r.data).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(sha, p["sha256"].as_str().unwrap(), "pixels of patch {p}");
            r.data
        })
        .collect()
}

fn embed_all(model: &dyn Encoder, patches: &[Vec<u8>], batch: usize) -> Vec<Vec<f32>> {
    let mut batcher = Batcher::new(model.input_spec().clone(), batch, model.device().clone(), model.dtype()).unwrap();
    let mut out = Vec::new();
    for chunk in patches.chunks(batch) {
        let images: Vec<ImageRef<'_>> = chunk.iter().map(|p| ImageRef::rgb(224, 224, p)).collect();
        let emb = model.embed(&batcher.pack(&images).unwrap()).unwrap();
        out.extend(emb.to_vec2::<f32>().unwrap());
    }
    out
}

fn expected(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(|e| e.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()).collect()
}

/// ‖a − b‖ / ‖b‖.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den).sqrt()
}

fn assert_match(what: &str, ours: &[Vec<f32>], reference: &[Vec<f32>], tol: f64) {
    assert_eq!(ours.len(), reference.len(), "{what}: count");
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: dim");
        let e = rel_err(a, b);
        assert!(e <= tol, "{what}: patch {i}: relative error {e:.3e} > {tol:.0e}");
    }
}

#[test]
fn seeded_generator_matches_python() {
    let r = reference();
    let cfg = VitConfig::vit_s16();
    let shapes: std::collections::HashMap<_, _> = cfg.tensor_shapes().into_iter().collect();
    let samples = r["vit_s16"]["generator_samples"].as_object().unwrap();
    assert!(samples.len() >= 5);
    for (name, s) in samples {
        let values = seeded_tensor(name, &shapes[name.as_str()], 0x5EED);
        let first4: Vec<f32> = s["first4"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert_eq!(&values[..4], &first4[..], "{name}");
        let sum: f64 = values.iter().map(|v| f64::from(*v)).sum();
        let want = s["sum_f64"].as_f64().unwrap();
        assert!((sum - want).abs() <= 1e-9 * want.abs().max(1.0), "{name}: sum {sum} vs {want}");
    }
}

#[test]
fn path_foundation_architecture_matches_timm_f32() {
    let r = reference();
    let inputs = patches(&r);
    // Seeded ViT-S/16 with Path Foundation's shape and input scaling; timm ran the same weights.
    let model = path_foundation::untrained(&Device::Cpu, DType::F32).unwrap();
    assert!(!model.is_trained() && model.weights_id() == "untrained");
    assert_eq!(model.embedding_dim(), 384);
    let ours = embed_all(&model, &inputs, 3); // 3, 3, 2: the last batch is partial
    assert_match("ViT-S/16 vs timm", &ours, &expected(&r["vit_s16"]["embeddings"]), 1e-4);
}

#[test]
fn timm_and_hugging_face_checkpoints_give_timms_embeddings() {
    let r = reference();
    let inputs = patches(&r);
    let c = &r["tiny_timm"]["config"];
    let cfg = VitConfig {
        width: c["embed_dim"].as_u64().unwrap() as usize,
        depth: c["depth"].as_u64().unwrap() as usize,
        heads: c["num_heads"].as_u64().unwrap() as usize,
        mlp_dim: c["mlp_hidden"].as_u64().unwrap() as usize,
        ..VitConfig::vit_s16()
    };
    let load = |file: &str| {
        VitEncoder::from_safetensors("tiny", InputSpec::rgb_unit(224), cfg.clone(), &fixtures().join("encoders").join(file), &Device::Cpu, DType::F32).unwrap()
    };
    let timm = load("tiny_vit_timm_f16.safetensors");
    let hf = load("tiny_vit_hf_f16.safetensors");
    assert!(timm.is_trained() && timm.weights_id().len() == 64);
    assert_eq!(VitWeights::load(&fixtures().join("encoders/tiny_vit_hf_f16.safetensors"), &cfg).unwrap().naming, Naming::HuggingFace);
    let a = embed_all(&timm, &inputs, 8);
    let b = embed_all(&hf, &inputs, 8);
    assert_match("tiny timm file vs timm", &a, &expected(&r["tiny_timm"]["embeddings"]), 1e-4);
    assert_match("tiny HF file vs transformers", &b, &expected(&r["tiny_hf"]["embeddings"]), 1e-4);
    assert_match("timm names vs HF names", &a, &b, 1e-6);
}

#[test]
fn half_precision_stays_close_to_f32() {
    // CPU f16/bf16 is slow but the same code path as CUDA's; cosine ≥ 0.999 with f32.
    let r = reference();
    let inputs: Vec<Vec<u8>> = patches(&r).into_iter().take(2).collect();
    let f32m = path_foundation::untrained(&Device::Cpu, DType::F32).unwrap();
    let reference = embed_all(&f32m, &inputs, 2);
    for dtype in [DType::BF16, DType::F16] {
        let m = path_foundation::untrained(&Device::Cpu, dtype).unwrap();
        for (a, b) in embed_all(&m, &inputs, 2).iter().zip(&reference) {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            assert!(dot / (na * nb) >= 0.999, "{dtype:?}: cosine {}", dot / (na * nb));
        }
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("haidef-enc-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("w.safetensors")
}

fn tiny_cfg() -> VitConfig {
    VitConfig { width: 64, depth: 2, heads: 2, mlp_dim: 256, ..VitConfig::vit_s16() }
}

fn tiny_tensors() -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("encoders/tiny_vit_timm_f16.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn broken_checkpoints_are_named() {
    let load = |path: &PathBuf, cfg: &VitConfig| VitWeights::load(path, cfg).unwrap_err();

    // NaN in one weight.
    let mut t = tiny_tensors();
    let w = t["blocks.1.mlp.fc1.weight"].to_dtype(DType::F32).unwrap();
    let mut v = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[5] = f32::NAN;
    v[9] = f32::INFINITY;
    t.insert("blocks.1.mlp.fc1.weight".into(), Tensor::from_vec(v, w.dims(), &Device::Cpu).unwrap());
    let p = temp("nan");
    candle_core::safetensors::save(&t, &p).unwrap();
    let err = load(&p, &tiny_cfg());
    assert!(matches!(&err, EncoderError::NonFinite { name, count: 2, .. } if name == "blocks.1.mlp.fc1.weight"), "{err}");

    // A tensor missing.
    let mut t = tiny_tensors();
    t.remove("blocks.1.norm2.bias");
    let p = temp("missing");
    candle_core::safetensors::save(&t, &p).unwrap();
    let err = load(&p, &tiny_cfg());
    assert!(matches!(&err, EncoderError::MissingTensor { name, .. } if name == "blocks.1.norm2.bias"), "{err}");

    // The tiny checkpoint read as ViT-S: the first tensor of the wrong shape is named.
    let err = load(&fixtures().join("encoders/tiny_vit_timm_f16.safetensors"), &VitConfig::vit_s16());
    assert!(
        matches!(&err, EncoderError::ShapeMismatch { name, expected, found, .. }
        if name == "cls_token" && expected == &[1, 1, 384] && found == &[1, 1, 64]),
        "{err}"
    );

    // Another model altogether.
    let mut other = std::collections::HashMap::new();
    other.insert("conv1.weight".to_string(), Tensor::zeros((8, 3, 3, 3), DType::F32, &Device::Cpu).unwrap());
    let p = temp("other");
    candle_core::safetensors::save(&other, &p).unwrap();
    let err = load(&p, &tiny_cfg());
    assert!(matches!(err, EncoderError::WrongModel { .. }) && err.to_string().contains("conv1.weight"), "{err}");

    // Not a safetensors file.
    let p = temp("garbage");
    std::fs::write(&p, b"not a checkpoint").unwrap();
    let err = load(&p, &tiny_cfg());
    assert!(matches!(err, EncoderError::WeightsFile { .. }) && err.to_string().contains("w.safetensors"), "{err}");
}

#[test]
fn wrong_inputs_are_refused() {
    let model = VitEncoder::untrained("tiny", InputSpec::rgb_unit(224), tiny_cfg(), 1, &Device::Cpu, DType::F32).unwrap();
    let empty = Tensor::zeros((0, 3, 224, 224), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(model.embed(&empty), Err(EncoderError::EmptyBatch)));
    let wrong = Tensor::zeros((1, 3, 112, 112), DType::F32, &Device::Cpu).unwrap();
    let err = model.embed(&wrong).unwrap_err().to_string();
    assert!(err.contains("1x3x112x112") && err.contains("Nx3x224x224"), "{err}");
    let grey = Tensor::zeros((1, 1, 224, 224), DType::F32, &Device::Cpu).unwrap();
    assert!(model.embed(&grey).is_err());
    let err = VitEncoder::untrained("x", InputSpec::rgb_unit(256), tiny_cfg(), 1, &Device::Cpu, DType::F32).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    let bad_cfg = VitConfig { heads: 5, ..tiny_cfg() };
    assert!(VitEncoder::untrained("x", InputSpec::rgb_unit(224), bad_cfg, 1, &Device::Cpu, DType::F32).is_err());
}

/// On a GPU (built with `--features cuda`, run where CUDA device 0 exists): bf16 and f16
/// embeddings of the real patches reach cosine ≥ 0.999 with the CPU f32 reference. Skipped, with a
/// message, in CUDA builds on machines without a GPU; absent from CPU builds.
#[cfg(feature = "cuda")]
#[test]
fn cuda_half_precision_matches_cpu_f32() {
    let Ok(gpu) = Device::new_cuda(0) else {
        eprintln!("no CUDA device 0: cuda_half_precision_matches_cpu_f32 not run");
        return;
    };
    let r = reference();
    let inputs = patches(&r);
    let cpu = embed_all(&path_foundation::untrained(&Device::Cpu, DType::F32).unwrap(), &inputs, 8);
    assert_match("CPU f32 vs timm", &cpu, &expected(&r["vit_s16"]["embeddings"]), 1e-4);
    let f32_gpu = embed_all(&path_foundation::untrained(&gpu, DType::F32).unwrap(), &inputs, 8);
    assert_match("CUDA f32 vs timm", &f32_gpu, &expected(&r["vit_s16"]["embeddings"]), 1e-3);
    for dtype in [DType::BF16, DType::F16] {
        let m = path_foundation::untrained(&gpu, dtype).unwrap();
        for (i, (a, b)) in embed_all(&m, &inputs, 8).iter().zip(&cpu).enumerate() {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            eprintln!("CUDA {dtype:?} patch {i}: cosine {cos:.6}");
            assert!(cos >= 0.999, "CUDA {dtype:?} patch {i}: cosine {cos}");
        }
    }
}

/// fixtures/encoders/presets.json (fixtures/encoders/make_presets.py): the pathology encoders
/// as their publishers build them (timm or transformers), real widths at 2 blocks, seeded.
fn presets() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("encoders/presets.json")).unwrap()).unwrap()
}

/// The reference patches that presets.json used.
fn preset_patches(r: &Value, p: &Value) -> Vec<Vec<u8>> {
    let all = patches(r);
    assert!(p["patches"].is_array(), "no patch list in the reference");
    p["patches"].as_array().unwrap().iter().map(|i| all[i.as_u64().unwrap() as usize].clone()).collect()
}

#[test]
fn every_pathology_preset_matches_its_reference_implementation() {
    let (r, p) = (reference(), presets());
    for name in ["uni", "uni2-h", "virchow2", "h-optimus-0", "prov-gigapath", "phikon", "phikon-v2"] {
        check_preset(&r, &p, name);
    }
}

/// The presets at their published depth (ViT-g: 40 blocks, ~10 GB and minutes on each side),
/// references made on the spot by `make_presets.py --full-depth` in the PyTorch virtualenv
/// (`HAIDEF_PYTHON`, default ~/.venvs/torch-cpu/bin/python); `HAIDEF_PRESETS=uni,phikon`
/// chooses (default: all). `cargo test --release -p haidef-wsi-encoders --test parity -- --ignored full_depth`.
#[test]
#[ignore]
fn full_depth_presets_match_their_references() {
    let r = reference();
    let python = std::env::var("HAIDEF_PYTHON").unwrap_or_else(|_| format!("{}/.venvs/torch-cpu/bin/python", std::env::var("HOME").unwrap()));
    let names = std::env::var("HAIDEF_PRESETS").unwrap_or_else(|_| "uni,uni2-h,virchow2,h-optimus-0,prov-gigapath,phikon,phikon-v2".into());
    for name in names.split(',') {
        let out = std::env::temp_dir().join(format!("haidef-full-depth-{name}.json"));
        let status =
            std::process::Command::new(&python).arg(fixtures().join("encoders/make_presets.py")).args(["--full-depth", name]).arg(&out).status().unwrap();
        assert!(status.success(), "make_presets.py --full-depth {name}");
        let p: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        check_preset(&r, &p, name);
        eprintln!("{name}: full depth matches");
    }
}

/// One preset of a presets.json-shaped reference: same tensors, same mean/std, embeddings
/// within 1e-4.
fn check_preset(r: &Value, p: &Value, name: &str) {
    use haidef_wsi_encoders::{registry, Architecture};
    let inputs = preset_patches(r, p);
    let seed = p["generator"]["seed"].as_u64().unwrap();
    let want = &p["presets"][name];
    let entry = registry::find(name).unwrap();
    let Architecture::Vit(full) = &entry.architecture else { panic!("{name} is a ViT") };
    let cfg = VitConfig { depth: want["config"]["depth"].as_u64().unwrap() as usize, ..full.clone() };
    // The tensors the reference model has (names and shapes) are exactly ours.
    let mut ours: Vec<(String, Vec<usize>)> = cfg.tensor_shapes();
    let mut theirs: Vec<(String, Vec<usize>)> = want["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap().to_string(), t[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()))
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "{name}: tensors");
    // The preprocessing the publisher documents.
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<f32>>();
    assert_eq!((entry.input.mean.clone(), entry.input.std.clone()), (floats(&want["mean"]), floats(&want["std"])), "{name}: mean/std");
    let model = VitEncoder::untrained(entry.model_id, entry.input.clone(), cfg, seed, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(model.embedding_dim(), entry.output.len(), "{name}");
    let got = embed_all(&model, &inputs, 2);
    assert_match(&format!("{name} vs {}", want["construct"].as_str().unwrap_or("reference")), &got, &expected(&want["embeddings"]), 1e-4);
}

#[test]
fn a_hugging_face_dinov2_checkpoint_gives_transformers_embeddings() {
    let (r, p) = (reference(), presets());
    let inputs = preset_patches(&r, &p);
    let t = &p["tiny_dinov2_hf"];
    let c = &t["config"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let cfg = VitConfig {
        width: n("hidden_size"),
        depth: n("num_hidden_layers"),
        heads: n("num_attention_heads"),
        mlp_dim: n("hidden_size") * n("mlp_ratio"),
        layer_scale: true,
        ..VitConfig::vit_s16()
    };
    let file = fixtures().join("encoders").join(t["file"].as_str().unwrap().rsplit('/').next().unwrap());
    assert_eq!(VitWeights::load(&file, &cfg).unwrap().naming, Naming::HuggingFaceDinov2);
    let model = VitEncoder::from_safetensors("tiny-dinov2", InputSpec::rgb_unit(224), cfg, &file, &Device::Cpu, DType::F32).unwrap();
    assert_match("tiny Dinov2 file vs transformers", &embed_all(&model, &inputs, 4), &expected(&t["embeddings"]), 1e-4);
}

#[test]
fn a_checkpoint_made_at_another_size_has_its_position_embedding_resampled_as_timm_does() {
    let (r, p) = (reference(), presets());
    let inputs = preset_patches(&r, &p);
    let t = &p["resampled_pos_embed"];
    // Made at 518x518 (37x37 patches of 14), used at 224x224 (16x16); 4 registers and the class
    // token keep their rows.
    let cfg = VitConfig { patch_size: 14, width: 64, depth: 2, heads: 2, mlp_dim: 256, reg_tokens: 4, layer_scale: true, ..VitConfig::vit_s16() };
    let file = fixtures().join("encoders").join(t["file"].as_str().unwrap().rsplit('/').next().unwrap());
    let model = VitEncoder::from_safetensors("tiny-518", InputSpec::rgb_unit(224), cfg, &file, &Device::Cpu, DType::F32).unwrap();
    assert_match("resampled position embedding vs timm", &embed_all(&model, &inputs, 4), &expected(&t["embeddings"]), 1e-4);
    // A grid that is not square cannot be resampled: the error says so.
    let bad = VitConfig {
        patch_size: 14,
        width: 64,
        depth: 2,
        heads: 2,
        mlp_dim: 256,
        reg_tokens: 4,
        no_embed_class: true,
        layer_scale: true,
        ..VitConfig::vit_s16()
    };
    let err = VitEncoder::from_safetensors("tiny-518", InputSpec::rgb_unit(224), bad, &file, &Device::Cpu, DType::F32).unwrap_err().to_string();
    assert!(err.contains("pos_embed") && err.contains("not a square grid"), "{err}");
}
