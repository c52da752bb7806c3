//! SigLIP's towers against transformers' `SiglipModel` with the same seeded weights
//! (haidef-seeded-v1, seed 0x51C1; fixtures/medsiglip/make_reference.py): MedSigLIP-448's real
//! widths at the reference's reduced depth, CPU f32. Image features from the fixture images
//! through our preprocessing (Pillow bicubic to 448, [-1, 1]), text features from the
//! reference's token ids, and the logits between them.

use haidef_wsi_encoders::candle::{DType, Device, Tensor};
use haidef_wsi_encoders::{siglip::seeded_weights, Siglip, SiglipConfig};
use haidef_wsi_encoders::{Batcher, ImageRef};
use haidef_wsi_encoders::{Filter, InputSpec, Resize};
use std::collections::HashMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den).sqrt()
}

fn read_rgb8(path: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight), "{}", path.display());
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

#[test]
fn towers_and_logits_match_transformers() {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/medsiglip/reference.json")).unwrap()).unwrap();
    check_towers(&r, &r["model"]);
}

/// Full depth (27 + 27 layers, 878M parameters: ~4 GB and a few minutes here): the same
/// checks against `reference_full.json`, which `fixtures/medsiglip/make_reference.py --full`
/// writes (about 12 minutes and 6 GB). `cargo test --release -p haidef-wsi-encoders --test
/// siglip_model -- --ignored`.
#[test]
#[ignore = "full-depth model: minutes and ~4 GB; needs fixtures/medsiglip/reference_full.json"]
fn full_depth_matches_transformers() {
    let path = root().join("fixtures/medsiglip/reference_full.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; make it with fixtures/medsiglip/make_reference.py --full", path.display()));
    let full: serde_json::Value = serde_json::from_str(&text).unwrap();
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/medsiglip/reference.json")).unwrap()).unwrap();
    let m = if full.get("model").is_some() { &full["model"] } else { &full };
    check_towers(&r, m);
}

/// Text features from `m`'s ids, image features through our preprocessing of the fixture
/// images (the Pillow path), logits; `r` gives the generator seed and the images.
fn check_towers(r: &serde_json::Value, m: &serde_json::Value) {
    let depth = m["depth"].as_object().map(|d| (d["vision"].as_u64().unwrap() as usize, d["text"].as_u64().unwrap() as usize)).unwrap_or_else(|| {
        let n = m["depth"].as_u64().unwrap() as usize;
        (n, n)
    });
    let cfg = SiglipConfig::medsiglip_448().with_depth(depth.0, depth.1);
    cfg.validate().unwrap();

    // The same tensors as transformers' state dict.
    let ours: HashMap<String, Vec<usize>> = cfg.tensor_shapes().into_iter().collect();
    let theirs: HashMap<String, Vec<usize>> = m["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()))
        .collect();
    assert_eq!(ours, theirs);

    let seed = r["generator"]["seed"].as_u64().unwrap();
    let model = Siglip::new(&cfg, seeded_weights(&cfg, seed, &Device::Cpu, DType::F32).unwrap()).unwrap();

    // Text tower, from the reference's ids.
    let names: Vec<String> = m["text_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let ids: Vec<u32> =
        m["text_input_ids"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32)).collect();
    let ids = Tensor::from_vec(ids, (names.len(), cfg.max_text_len), &Device::Cpu).unwrap();
    let text = model.text.forward(&ids).unwrap();
    let text_rows = text.to_vec2::<f32>().unwrap();
    for (name, row) in names.iter().zip(&text_rows) {
        let e = rel_err(row, &floats(&m["text_features"][name]));
        eprintln!("text {name}: relative error {e:.2e}");
        assert!(e <= 1e-4, "text {name}: relative error {e:.2e}");
    }

    // Vision tower, through our preprocessing of the fixture images (the Pillow path).
    let spec = InputSpec::rgb_unit(448).with_resize(Resize::Antialiased(Filter::Bicubic)).with_mean_std([0.5; 3], [0.5; 3]);
    let mut batcher = Batcher::new(spec, 4, Device::Cpu, DType::F32).unwrap();
    let order: Vec<String> = m["image_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let mut checked = 0;
    for image in r["preprocessing"]["images"].as_array().unwrap() {
        let key = format!("{}/hf_pil", image["name"].as_str().unwrap());
        let Some(row) = order.iter().position(|k| *k == key) else { continue };
        let (w, h, rgb) = read_rgb8(&root().join(image["file"].as_str().unwrap()));
        let batch = batcher.pack(&[ImageRef::rgb(w, h, &rgb)]).unwrap();
        let emb = model.vision.forward(&batch).unwrap();
        let e = rel_err(&emb.flatten_all().unwrap().to_vec1::<f32>().unwrap(), &floats(&m["image_features"][&key]));
        eprintln!("image {key}: relative error {e:.2e}");
        assert!(e <= 1e-4, "image {key}: relative error {e:.2e}");
        // Logits against every text.
        let logits = model.logits(&emb, &text).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = floats(&m["logits_per_image"][row]);
        let worst = logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("image {key}: logits differ by at most {worst:.2e}");
        assert!(worst <= 1e-4, "image {key}: logits differ by {worst:.2e}");
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} images checked");
}

/// A checkpoint folder as transformers saves one (config.json, model.safetensors,
/// spiece.model) loads by name through the registry, and gives the reference's text and image
/// embeddings from texts and pictures; bad folders, files and prompts are clear errors.
#[test]
fn a_checkpoint_folder_loads_through_the_registry_and_bad_inputs_are_clear() {
    use haidef_wsi_encoders::registry;
    use haidef_wsi_encoders::{siglip::seeded_tensors, SiglipEncoder};
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/medsiglip/reference.json")).unwrap()).unwrap();
    let m = &r["model"];
    let dir = std::env::temp_dir().join(format!("haidef-medsiglip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // transformers' own config for the reference model (2 + 2 layers), as it wrote it.
    std::fs::write(dir.join("config.json"), serde_json::to_string(&m["config"]).unwrap()).unwrap();
    let depth = m["config"]["vision_config"]["num_hidden_layers"].as_u64().unwrap() as usize;
    let cfg = SiglipConfig::medsiglip_448().with_depth(depth, m["config"]["text_config"]["num_hidden_layers"].as_u64().unwrap() as usize);
    let tensors = seeded_tensors(&cfg, r["generator"]["seed"].as_u64().unwrap()).unwrap();
    haidef_wsi_encoders::candle::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    std::fs::copy(root().join("fixtures/medsiglip/spiece.model"), dir.join("spiece.model")).unwrap();

    let entry = registry::find("medsiglip").unwrap();
    let model = entry.load(&dir, &Device::Cpu, DType::F32).unwrap();
    assert!(model.is_trained() && model.embedding_dim() == 1152 && model.model_id() == "google/medsiglip-448");
    let siglip = SiglipEncoder::load(entry.model_id, entry.input.clone(), &SiglipConfig::medsiglip_448(), &dir, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(siglip.config().vision.depth, depth, "depth from config.json");

    // Texts through the tokenizer of the folder.
    let names: Vec<&str> = m["text_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let cases = r["tokenizer"]["cases"].as_array().unwrap();
    let texts: Vec<&str> = names.iter().map(|n| cases.iter().find(|c| c["name"] == *n).unwrap()["text"].as_str().unwrap()).collect();
    let usable: Vec<(usize, &str)> = texts.iter().copied().enumerate().filter(|(_, t)| !t.trim().is_empty()).collect();
    let emb = siglip.embed_texts(&usable.iter().map(|(_, t)| *t).collect::<Vec<_>>()).unwrap().to_vec2::<f32>().unwrap();
    for ((i, _), row) in usable.iter().zip(&emb) {
        let e = rel_err(row, &floats(&m["text_features"][names[*i]]));
        assert!(e <= 1e-4, "text {}: relative error {e:.2e}", names[*i]);
    }
    // An image through the registry's preprocessing.
    let (w, h, rgb) = read_rgb8(&root().join("fixtures/images/patches/patch0.png"));
    let mut batcher = Batcher::new(model.input_spec().clone(), 1, Device::Cpu, DType::F32).unwrap();
    let img = model.embed(&batcher.pack(&[ImageRef::rgb(w, h, &rgb)]).unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(rel_err(&img, &floats(&m["image_features"]["patch0/hf_pil"])) <= 1e-4);
    // Scores are sigmoids of the reference's logits.
    let img_t = Tensor::from_vec(img, (1, 1152), &Device::Cpu).unwrap();
    let txt_t = siglip.embed_texts(&[usable[0].1]).unwrap();
    let p = siglip.scores(&img_t, &txt_t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let want = floats(&m["probs_per_image"][m["image_order"].as_array().unwrap().iter().position(|k| k == "patch0/hf_pil").unwrap()])[usable[0].0];
    assert!((p - want).abs() <= 1e-4 * want.abs().max(1e-6) + 1e-9, "score {p} vs {want}");

    // Bad inputs.
    let err = siglip.embed_texts(&["tumor", "  "]).unwrap_err().to_string();
    assert!(err.contains("text 1") && err.contains("empty"), "{err}");
    let err = entry.load(&dir.join("missing"), &Device::Cpu, DType::F32).err().unwrap().to_string();
    assert!(err.contains("missing") && err.contains("no such file"), "{err}");
    let vit = root().join("fixtures/encoders/tiny_vit_timm_f16.safetensors");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&vit, other.join("model.safetensors")).unwrap();
    let err = entry.load(&other.join("model.safetensors"), &Device::Cpu, DType::F32).err().unwrap().to_string();
    assert!(err.contains("not a SigLIP checkpoint") && err.contains("vision_model"), "{err}");
    std::fs::write(other.join("config.json"), r#"{"model_type": "vit"}"#).unwrap();
    let err = entry.load(&other, &Device::Cpu, DType::F32).err().unwrap().to_string();
    assert!(err.contains("config.json") && err.contains("\"vit\""), "{err}");
    std::fs::rename(dir.join("config.json"), dir.join("config.json.away")).unwrap();
    let err = entry.load(&dir, &Device::Cpu, DType::F32).err().unwrap().to_string();
    assert!(err.contains("no config.json"), "{err}");
    std::fs::rename(dir.join("config.json.away"), dir.join("config.json")).unwrap();
    std::fs::remove_file(dir.join("spiece.model")).unwrap();
    let no_tok = SiglipEncoder::load(entry.model_id, entry.input.clone(), &SiglipConfig::medsiglip_448(), &dir, &Device::Cpu, DType::F32).unwrap();
    let err = no_tok.embed_texts(&["tumor"]).unwrap_err().to_string();
    assert!(err.contains("spiece.model"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 8- or 16-bit grey, RGB or RGBA PNG → ImageRef samples.
fn read_png_any(path: &std::path::Path) -> (usize, usize, usize, Vec<u16>, u8) {
    let mut r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let bits = info.bit_depth as u8;
    let samples = match bits {
        8 => buf[..info.buffer_size()].iter().map(|&v| u16::from(v)).collect(),
        16 => buf[..info.buffer_size()].chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect(),
        other => panic!("{}: {other}-bit", path.display()),
    };
    (info.width as usize, info.height as usize, info.color_type.samples(), samples, bits)
}

/// The registry's MedSigLIP input spec against Google's serving code run on the fixture PNGs
/// (fixtures/medsiglip/serving_pixels.py: the serving's own modules, transformers 4.51.3,
/// Pillow 11.2.1): the 3×448×448 f32 `pixel_values` must be bit-identical — 8-bit RGB, RGBA
/// (alpha dropped), 8-bit grey, 16-bit grey (reduced to 8 bits), padding to a centred square.
#[test]
fn preprocessing_is_bit_identical_to_the_serving() {
    use haidef_wsi_encoders::registry;
    use sha2::{Digest, Sha256};
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/medsiglip/reference.json")).unwrap()).unwrap();
    let spec = registry::find("medsiglip").unwrap().input;
    let mut batcher = Batcher::new(spec, 1, Device::Cpu, DType::F32).unwrap();
    let mut checked = Vec::new();
    for case in r["serving_pixels"]["images"].as_array().unwrap() {
        let Some(file) = case["file"].as_str().filter(|f| f.ends_with(".png")) else { continue };
        let (w, h, c, samples, bits) = read_png_any(&root().join(file));
        let bytes: Vec<u8>;
        let img = if bits == 8 {
            bytes = samples.iter().map(|v| *v as u8).collect();
            ImageRef::u8(w, h, c, &bytes)
        } else {
            ImageRef::u16(w, h, c, &samples, 16)
        };
        let t = batcher.pack(&[img]).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let ours: String = Sha256::digest(t.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).iter().map(|b| format!("{b:02x}")).collect();
        let want = &case["pixel_values"];
        if ours != want["sha256_f32le"].as_str().unwrap() {
            // Say where: the reference's sample grid.
            let rows: Vec<usize> = want["grid_rows_cols"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            let mut worst = 0f32;
            for (ch, grid) in want["grid"].as_array().unwrap().iter().enumerate() {
                for (i, row) in grid.as_array().unwrap().iter().enumerate() {
                    for (j, v) in row.as_array().unwrap().iter().enumerate() {
                        worst = worst.max((t[ch * 448 * 448 + rows[i] * 448 + rows[j]] - v.as_f64().unwrap() as f32).abs());
                    }
                }
            }
            panic!("{}: pixel_values differ from the serving's (worst on its sample grid {worst})", case["name"]);
        }
        checked.push(case["name"].as_str().unwrap().to_string());
    }
    assert!(checked.len() >= 5, "{checked:?}");
}

/// Odd image sizes through MedSigLIP's preprocessing: a 1-pixel image is padded and resized
/// like any other (its one colour everywhere); a 50,000-pixel-wide strip, which would pad to a
/// 50,000² square, is a clear error, not 7.5 GB of memory.
#[test]
fn tiny_and_huge_images() {
    use haidef_wsi_encoders::registry;
    let spec = registry::find("medsiglip").unwrap().input;
    let mut batcher = Batcher::new(spec, 1, Device::Cpu, DType::F32).unwrap();
    let t = batcher.pack(&[ImageRef::u8(1, 1, 3, &[255, 0, 51])]).unwrap();
    assert_eq!(t.dims(), &[1, 3, 448, 448]);
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = [1.0f32, -1.0, 51.0 / 255.0 * 2.0 - 1.0];
    for (ch, w) in want.iter().enumerate() {
        assert!(v[ch * 448 * 448..(ch + 1) * 448 * 448].iter().all(|x| (x - w).abs() < 1e-6), "channel {ch}");
    }
    let strip = vec![128u8; 50_000 * 3];
    let err = batcher.pack(&[ImageRef::u8(50_000, 1, 3, &strip)]).unwrap_err().to_string();
    assert!(err.contains("50000x1") && err.contains("square") && err.contains("crop or shrink"), "{err}");
}

/// On the GPU (built with `--features cuda`; tools/gpu_check.sh): the reduced-depth model in
/// f32 gives transformers' features within 1e-4, in bf16 with cosine ≥ 0.99.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_transformers() {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/medsiglip/reference.json")).unwrap()).unwrap();
    let m = &r["model"];
    let cfg = SiglipConfig::medsiglip_448().with_depth(2, 2);
    let seed = r["generator"]["seed"].as_u64().unwrap();
    let device = Device::new_cuda(0).expect("CUDA device 0");
    let names: Vec<String> = m["text_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let ids: Vec<u32> =
        m["text_input_ids"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32)).collect();
    let ids = Tensor::from_vec(ids, (names.len(), cfg.max_text_len), &device).unwrap();
    let (w, h, rgb) = read_rgb8(&root().join("fixtures/images/patches/patch0.png"));
    for dtype in [DType::F32, DType::BF16] {
        let model = Siglip::new(&cfg, seeded_weights(&cfg, seed, &device, dtype).unwrap()).unwrap();
        let text = model.text.forward(&ids).unwrap().to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
        let spec = InputSpec::rgb_unit(448).with_resize(Resize::Antialiased(Filter::Bicubic)).with_mean_std([0.5; 3], [0.5; 3]);
        let mut batcher = Batcher::new(spec, 1, device.clone(), dtype).unwrap();
        let img = model.vision.forward(&batcher.pack(&[ImageRef::rgb(w, h, &rgb)]).unwrap()).unwrap();
        let img = img.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut pairs: Vec<(String, Vec<f32>, Vec<f32>)> =
            names.iter().zip(&text).map(|(n, row)| (n.clone(), row.clone(), floats(&m["text_features"][n]))).collect();
        pairs.push(("patch0".into(), img, floats(&m["image_features"]["patch0/hf_pil"])));
        for (name, ours, want) in pairs {
            let dot: f64 = ours.iter().zip(&want).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let cos = dot / (ours.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt() * want.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt());
            let e = rel_err(&ours, &want);
            eprintln!("cuda {dtype:?} {name}: relative error {e:.2e}, cosine {cos:.5}");
            if dtype == DType::F32 {
                assert!(e <= 1e-4, "{name}: {e:.2e}");
            } else {
                assert!(cos >= 0.99, "{name}: cosine {cos}");
            }
        }
    }
}
