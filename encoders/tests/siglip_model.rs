//! SigLIP's towers against transformers' `SiglipModel` with the same seeded weights
//! (haidef-seeded-v1, seed 0x51C1; fixtures/medsiglip/make_reference.py): MedSigLIP-448's real
//! widths at the reference's reduced depth, CPU f32. Image features from the fixture images
//! through our preprocessing (Pillow bicubic to 448, [-1, 1]), text features from the
//! reference's token ids, and the logits between them.

use haidef_wsi_encoders::batch::{Batcher, ImageRef};
use haidef_wsi_encoders::candle::{DType, Device, Tensor};
use haidef_wsi_encoders::siglip::{seeded_weights, Siglip, SiglipConfig};
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
    let m = &r["model"];
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
    let ids: Vec<u32> = m["text_input_ids"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32)).collect();
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
