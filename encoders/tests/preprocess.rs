//! Every kind of input the batcher takes, against independent references: Pillow's resize,
//! timm's eval transform, torch's `interpolate` (bilinear, bicubic), TensorFlow 1's bilinear
//! formula in numpy, numpy's min–max and window of 16-bit samples, padding, RGBA.
//! fixtures/images/make_images.py made the inputs and the expected tensors.

use haidef_wsi_encoders::candle::{DType, Device};
use haidef_wsi_encoders::Batcher;
use haidef_wsi_encoders::{registry, Coordinates, Filter, ImageRef, InputSpec, Kernel, Range, Resize};
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images")
}

/// A decoded PNG (by the png crate): samples as u16 (8-bit widened) and the bit depth.
struct Png {
    width: usize,
    height: usize,
    channels: usize,
    bits: u8,
    samples: Vec<u16>,
}

fn read_png(name: &str) -> Png {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(dir().join(name)).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let bits = info.bit_depth as u8;
    let samples = match bits {
        8 => buf[..info.buffer_size()].iter().map(|&v| u16::from(v)).collect(),
        16 => buf[..info.buffer_size()].chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect(),
        other => panic!("{name}: {other}-bit"),
    };
    Png { width: info.width as usize, height: info.height as usize, channels, bits, samples }
}

fn read_f32(name: &str) -> Vec<f32> {
    std::fs::read(dir().join(name)).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// A case's input file, decoded, with the spec it is packed to.
struct Case {
    name: String,
    spec: InputSpec,
    png: Png,
    u8s: Vec<u8>,
}

impl Case {
    fn new(case: &Value) -> Self {
        let png = read_png(case["input"].as_str().unwrap());
        let u8s = png.samples.iter().map(|&v| v as u8).collect();
        Case { name: case["name"].as_str().unwrap().to_string(), spec: spec_for(case), png, u8s }
    }

    fn image(&self) -> ImageRef<'_> {
        let p = &self.png;
        match p.bits {
            8 => ImageRef::u8(p.width, p.height, p.channels, &self.u8s),
            _ => ImageRef::u16(p.width, p.height, p.channels, &p.samples, 16),
        }
    }
}

fn spec_for(case: &Value) -> InputSpec {
    let n = |k: &str| case[k].as_u64().map(|v| v as usize);
    let channels = n("channels").unwrap_or(3);
    let floats = |k: &str, default: f32| -> Vec<f32> {
        case[k].as_array().map(|a| a.iter().map(|v| v.as_f64().unwrap() as f32).collect()).unwrap_or(vec![default; channels])
    };
    let name = case["name"].as_str().unwrap();
    let mut spec = InputSpec {
        height: n("height").unwrap(),
        width: n("width").unwrap(),
        channels,
        mean: floats("mean", 0.0),
        std: floats("std", 1.0),
        ..InputSpec::rgb_unit(1)
    };
    let interp = |kernel, coordinates| Resize::Interpolate { kernel, coordinates };
    match name {
        "pil_bilinear" => spec.resize = Resize::Antialiased(Filter::Bilinear),
        "pil_bicubic" => spec.resize = Resize::Antialiased(Filter::Bicubic),
        "timm_eval_vit_b16" => spec = registry::find("vit_base_patch16_224").unwrap().input,
        "torch_bilinear" => spec.resize = interp(Kernel::Bilinear, Coordinates::HalfPixel),
        "torch_bicubic" => spec.resize = interp(Kernel::Bicubic, Coordinates::HalfPixel),
        "tf1_bilinear" => spec.resize = interp(Kernel::Bilinear, Coordinates::Asymmetric),
        "pad_square_bilinear" => {
            spec.resize = interp(Kernel::Bilinear, Coordinates::HalfPixel);
            spec.pad_to_square = true;
        }
        "grey16_minmax" => spec.range = Range::MinMax,
        "grey16_window_tiled" => spec.range = Range::Window { center: 30000.0, width: 20000.0 },
        "rgba_drops_alpha" => {}
        other => panic!("case {other} has no spec here: add it"),
    }
    spec
}

#[test]
fn every_input_kind_matches_its_reference() {
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).unwrap()).unwrap();
    let cases = reference["preprocessing"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let input = Case::new(case);
        let (name, spec) = (input.name.as_str(), &input.spec);
        let mut batcher = Batcher::new(spec.clone(), 1, Device::Cpu, DType::F32).unwrap();
        let ours = batcher.pack(&[input.image()]).unwrap();
        assert_eq!(ours.dims(), &[1, spec.channels, spec.height, spec.width], "{name}");
        let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Expected values, in the spec's normalised units, and the tolerance there.
        let (expected, tol): (Vec<f32>, f32) = if let Some(f) = case["expected_f32"].as_str() {
            (read_f32(f), 5e-6)
        } else {
            // An 8-bit image made by Pillow: our resampler reproduces its fixed-point
            // arithmetic, so the same samples exactly.
            let png = read_png(case["expected_png"].as_str().unwrap());
            let (h, w, c) = (png.height, png.width, png.channels);
            let mut planes = vec![0f32; spec.channels * h * w];
            for ch in 0..spec.channels {
                for i in 0..h * w {
                    let v = f32::from(png.samples[i * c + ch]) / 255.0;
                    planes[ch * h * w + i] = (v - spec.mean[ch]) / spec.std[ch];
                }
            }
            (planes, 1e-6)
        };
        assert_eq!(ours.len(), expected.len(), "{name}: size");
        let diffs: Vec<f32> = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().cloned().fold(0f32, f32::max);
        let off = diffs.iter().filter(|d| **d > 1e-6).count();
        eprintln!("{name}: max |diff| {max:.2e}, {off} of {} values differ at all", diffs.len());
        assert!(max <= tol, "{name}: max |diff| {max} > {tol} ({off} values differ)");
    }
}

#[test]
fn wrong_sizes_are_refused_where_the_model_resizes_nothing() {
    let mut batcher = Batcher::new(registry::find("path-foundation").unwrap().input, 1, Device::Cpu, DType::F32).unwrap();
    let rgb = read_png("rgb8.png");
    let u8s: Vec<u8> = rgb.samples.iter().map(|&v| v as u8).collect();
    let err = batcher.pack(&[ImageRef::u8(300, 200, 3, &u8s)]).unwrap_err().to_string();
    assert!(err.contains("300x200") && err.contains("224x224") && err.contains("resize"), "{err}");
}

/// On a GPU (built with `--features cuda`, run where CUDA device 0 exists): batches packed on the
/// device (u8 as u8, 16-bit as offset i16, f32; normalised there) equal the CPU's. Skipped,
/// with a message, in CUDA builds on machines without a GPU; absent from CPU builds.
#[cfg(feature = "cuda")]
#[test]
fn cuda_packing_matches_cpu() {
    let Ok(gpu) = Device::new_cuda(0) else {
        eprintln!("no CUDA device 0: cuda_packing_matches_cpu not run");
        return;
    };
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).unwrap()).unwrap();
    for case in reference["preprocessing"].as_array().unwrap() {
        let input = Case::new(case);
        let pack = |device: &Device| {
            let mut b = Batcher::new(input.spec.clone(), 1, device.clone(), DType::F32).unwrap();
            b.pack(&[input.image()]).unwrap().to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let (cpu, cuda) = (pack(&Device::Cpu), pack(&gpu));
        let max = cpu.iter().zip(&cuda).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("{}: CUDA vs CPU max |diff| {max:.2e}", input.name);
        assert!(max <= 1e-6, "{}: CUDA vs CPU max |diff| {max}", input.name);
    }
}
