//! `embed_images` as a user runs it, and the image-file reader under it, checked against
//! independent references: timm running the same seeded weights (fixtures/encoders and
//! fixtures/images reference.json, made with PyTorch), Pillow's decoding and EXIF handling.

mod common;

use arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray, UInt32Array};
use haidef_wsi::{read_image, StoredSamples, DEFAULT_MAX_PIXELS};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../fuzz/harness/images.rs"]
mod fuzz_harness;

/// Every image input the `image_file` fuzzer found a fault with (fixtures/fuzz-regressions/
/// image_file/, docs/FUZZING.md), replayed through the same code: each must be handled.
#[test]
fn every_kept_fuzz_input_is_handled() {
    let dir = root().join("fixtures/fuzz-regressions/image_file");
    for file in std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| !p.ends_with("README.md")) {
        fuzz_harness::image_file(&std::fs::read(&file).unwrap());
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn images() -> PathBuf {
    root().join("fixtures/images")
}

fn json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den).sqrt()
}

fn embed_images(args: &[&str]) -> (std::process::Output, String) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("examples/embed_images");
    assert!(bin.exists(), "{} not built (cargo test builds the examples)", bin.display());
    let out = Command::new(bin).args(args).current_dir(root()).output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "{args:?} panicked:\n{text}");
    (out, text)
}

struct Rows {
    meta: HashMap<String, String>,
    rows: Vec<(String, u32, u32, Vec<f32>)>,
}

fn read_rows(path: &Path) -> Rows {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = common::key_value_metadata(&builder);
    let mut rows = Vec::new();
    for b in builder.build().unwrap() {
        let b = b.unwrap();
        let paths = b.column_by_name("path").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let w = b.column_by_name("width").unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().clone();
        let h = b.column_by_name("height").unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().clone();
        let e = b.column_by_name("embedding").unwrap().as_any().downcast_ref::<FixedSizeListArray>().unwrap().clone();
        for i in 0..b.num_rows() {
            let v = e.value(i);
            let v = v.as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec();
            rows.push((paths.value(i).to_string(), w.value(i), h.value(i), v));
        }
    }
    Rows { meta, rows }
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haidef-embed-images-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.join("embeddings.parquet")
}

/// The patch PNGs hold reference patches 0, 4 and 7 (their pixels checked by sha256 when made).
const PATCHES: [(usize, &str); 3] = [(0, "patch0.png"), (4, "patch4.png"), (7, "patch7.png")];

#[test]
fn both_models_give_timms_embeddings_through_embed_images() {
    let encoders = json("fixtures/encoders/reference.json");
    let images = json("fixtures/images/reference.json");
    let s16 = encoders["vit_s16"]["embeddings"].as_array().unwrap();
    let b16 = images["vit_b16"]["patch_embeddings"].as_array().unwrap();

    // Path Foundation (the default model): the patch folder.
    let out = temp("pf");
    let (o, text) = embed_images(&["fixtures/images/patches", "--out", out.to_str().unwrap(), "--batch", "2"]);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("UNTRAINED"), "{text}");
    let r = read_rows(&out);
    assert_eq!(r.meta["model_id"], "google/path-foundation");
    assert_eq!(r.meta["failed_files"], "[]");
    assert_eq!(r.meta["files_embedded"], "3");
    assert_eq!(r.rows.len(), 3);
    for ((i, name), row) in PATCHES.iter().zip(&r.rows) {
        assert!(row.0.ends_with(name) && (row.1, row.2) == (224, 224), "{row:?}");
        let e = rel_err(&row.3, &floats(&s16[*i]));
        assert!(e <= 1e-4, "path-foundation {name}: relative error {e:.2e}");
    }

    // timm vit_base_patch16_224: the patches (224x224: used as they are) and a 300x200 image
    // through timm's eval transform (shorter side to 248, bicubic, centre crop).
    let out = temp("b16");
    let (o, text) = embed_images(&["fixtures/images/patches", "fixtures/images/rgb8.png", "--model", "vit_base_patch16_224", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{text}");
    let r = read_rows(&out);
    assert_eq!(r.meta["model_id"], "timm/vit_base_patch16_224");
    assert!(r.meta["input_scaling"].contains("mean [0.5, 0.5, 0.5]"), "{}", r.meta["input_scaling"]);
    assert_eq!(r.rows.len(), 4);
    for ((i, name), row) in PATCHES.iter().zip(&r.rows) {
        let e = rel_err(&row.3, &floats(&b16[*i]));
        assert!(e <= 1e-4, "vit_base {name}: relative error {e:.2e}");
    }
    let last = &r.rows[3];
    assert!(last.0.ends_with("rgb8.png") && (last.1, last.2) == (300, 200), "{:?}", (&last.0, last.1, last.2));
    let e = rel_err(&last.3, &floats(&images["vit_b16"]["timm_eval_rgb8"]["embedding"]));
    eprintln!("vit_base on rgb8.png through the eval transform: relative error {e:.2e} vs timm");
    assert!(e <= 1e-4, "vit_base rgb8.png: relative error {e:.2e}");
}

#[test]
fn bad_files_are_listed_and_the_rest_are_embedded() {
    let out = temp("bad");
    let (o, text) = embed_images(&[
        "fixtures/images/patches/patch4.png",
        "fixtures/images/bomb.png",
        "fixtures/images/not_an_image.png",
        "fixtures/images/rgb8.png",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("1 images embedded, 3 skipped"), "{text}");
    let r = read_rows(&out);
    assert_eq!(r.rows.len(), 1);
    assert!(r.rows[0].0.ends_with("patch4.png"));
    let failed: Vec<Value> = serde_json::from_str(&r.meta["failed_files"]).unwrap();
    let find = |name: &str| {
        failed.iter().find(|f| f["path"].as_str().unwrap().ends_with(name)).unwrap_or_else(|| panic!("{name} not in {failed:?}"))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(find("bomb.png").contains("100000x100000") && find("bomb.png").contains("--max-pixels"), "{}", find("bomb.png"));
    assert!(find("not_an_image.png").contains("not a readable PNG or JPEG"), "{}", find("not_an_image.png"));
    let wrong = find("rgb8.png");
    assert!(wrong.contains("300x200") && wrong.contains("224x224"), "{wrong}");

    // Nothing usable at all: an error exit, and the file still says why.
    let out = temp("none");
    let (o, text) = embed_images(&["fixtures/images/not_an_image.png", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && text.contains("no image could be embedded"), "{text}");
    let r = read_rows(&out);
    assert!(r.rows.is_empty() && r.meta["failed_files"].contains("not_an_image.png"));

    // Unknown model: the error lists the known ones, nothing is written.
    let out = temp("model");
    let (o, text) = embed_images(&["fixtures/images/rgb8.png", "--model", "uni3", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && text.contains("known models: path-foundation, vit_base_patch16_224") && text.contains("virchow2"), "{text}");
    assert!(!out.exists());
}

fn png_rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn files_decode_as_pillow_shows_them() {
    // EXIF orientation 6: Pillow's exif_transpose turned the 300x200 JPEG into 200x300.
    let img = read_image(&images().join("exif_orientation6.jpg"), DEFAULT_MAX_PIXELS).unwrap();
    let (w, h, expected) = png_rgb(&images().join("exif_orientation6.expected.png"));
    assert_eq!((img.width, img.height, img.channels), (w as usize, h as usize, 3));
    let StoredSamples::U8(ours) = &img.samples else { panic!("8-bit JPEG") };
    let diffs: Vec<i32> = ours.iter().zip(&expected).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).collect();
    let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
    let max = *diffs.iter().max().unwrap();
    // Two JPEG decoders (zune-jpeg here, libjpeg-turbo in Pillow): the reader's tolerance.
    assert!(mean <= 1.0 && max <= 8, "mean {mean:.3}, max {max}");

    // RGBA: alpha dropped, RGB kept exactly.
    let rgba = read_image(&images().join("rgba8.png"), DEFAULT_MAX_PIXELS).unwrap();
    let (_, _, rgb) = png_rgb(&images().join("rgb8.png"));
    assert!(matches!(&rgba.samples, StoredSamples::U8(d) if *d == rgb) && rgba.channels == 3);

    // 16-bit grey: the values make_images.py wrote, recomputed from the 8-bit grey image.
    let g16 = read_image(&images().join("grey16.png"), DEFAULT_MAX_PIXELS).unwrap();
    let (gw, _, grey) = png_rgb(&images().join("grey8.png"));
    let StoredSamples::U16(v) = &g16.samples else { panic!("16-bit PNG") };
    assert_eq!((g16.width, g16.height, g16.channels), (150, 100, 1));
    for y in 0..100usize {
        for x in 0..150usize {
            let want = u32::from(grey[y * gw as usize + x]) * 257 + ((x * 7 + y * 13) % 257) as u32;
            assert_eq!(u32::from(v[y * 150 + x]), want, "({x}, {y})");
        }
    }

    // A decompression bomb is refused from its header, a lower limit applies to real images.
    let err = read_image(&images().join("bomb.png"), DEFAULT_MAX_PIXELS).unwrap_err().to_string();
    assert!(err.contains("bomb.png") && err.contains("10000000000 pixels"), "{err}");
    let err = read_image(&images().join("rgb8.png"), 1000).unwrap_err().to_string();
    assert!(err.contains("60000 pixels exceeds the limit of 1000"), "{err}");
}
