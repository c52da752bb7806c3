//! A client we did not write: Google's EZ-WSI DICOMweb 6.1.6 (`tests/ezwsi/client.py`, in its
//! own virtualenv made by `.ci/run` from `tests/ezwsi/requirements.txt`) pointed at our server
//! with `PathFoundationsEmbeddingEndpoint(endpoint_url=…)`, with the slide in a real Orthanc
//! (reached through the script's relay, which adds the TransferSyntaxUID EZ-WSI needs). The
//! embeddings it gets for DICOM patches and for in-memory images equal the library's offline
//! embeddings of the same pixels (read from the slide's files, decoded with the png crate); a
//! token the store refuses comes back to EZ-WSI as INVALID_CREDENTIALS_ERROR, the token unsaid.

#[path = "../wsi/tests/orthanc/mod.rs"]
mod orthanc;
#[path = "support/server.rs"]
mod server;

use haidef_wsi::serve::{DicomStores, ServeOptions};
use haidef_wsi::wsi::{DicomWebOptions, Slide};
use orthanc::{Orthanc, Setup, PASSWORD, USER};
use serde_json::{json, Value};
use server::{crop, offline, start};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's Python, or None (with a message) outside CI when it has not been made.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("HAIDEF_EZWSI_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join("target/ezwsi-venv/bin/python"));
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: .ci/run makes it (python3 -m venv target/ezwsi-venv && target/ezwsi-venv/bin/pip install -r tests/ezwsi/requirements.txt)",
        python.display()
    );
    eprintln!("EZ-WSI's virtualenv is not there ({}): run .ci/run once, or make it as it does; EZ-WSI tests not run", python.display());
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs the EZ-WSI client; its JSON output.
fn ezwsi(python: &Path, store: &Orthanc, relay: u16, slide: &Slide, endpoint: &str, patches: &Value, extra: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!("haidef-ezwsi-{}-{relay}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (spec, out) = (dir.join("patches.json"), dir.join("result.json"));
    std::fs::write(&spec, patches.to_string()).unwrap();
    let status = Command::new(python)
        .arg(root().join("tests/ezwsi/client.py"))
        .args(["--orthanc", &store.direct(), "--relay-port", &relay.to_string(), "--endpoint", endpoint])
        .args(["--study", slide.study_instance_uid(), "--series", slide.series_instance_uid()])
        .arg("--patches")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success(), "EZ-WSI's client failed (its messages are above)");
    let result = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    result
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// RGB8 pixels of a PNG fixture, decoded with the png crate.
fn png_rgb(rel: &str) -> (usize, usize, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(root().join(rel)).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{rel}");
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

/// A server approving the relay (where EZ-WSI's series paths point) and Orthanc's own port
/// (where the metadata's bulk-data URIs point).
fn server_for(store: &Orthanc, relay: u16) -> String {
    let approved = [format!("http://127.0.0.1:{relay}/dicom-web"), format!("{}/dicom-web", store.direct())];
    let stores = DicomStores::new(&approved, DicomWebOptions::default(), 4).unwrap();
    format!("{}/predict", start(ServeOptions { dicom: Some(Arc::new(stores)), ..ServeOptions::default() }))
}

/// EZ-WSI's Python, an Orthanc (`setup`) holding the fixture slide `name`, the slide read from
/// its files, the relay's port and our server's predict URL; None where the tools are missing.
fn stored(name: &str, setup: Setup) -> Option<(PathBuf, Orthanc, Slide, u16, String)> {
    let python = python()?;
    let store = Orthanc::start(setup)?;
    let folder = root().join("fixtures/slides").join(name);
    store.stow(&folder);
    let slide = Slide::open(&folder).unwrap();
    let relay = free_port();
    let endpoint = server_for(&store, relay);
    Some((python, store, slide, relay, endpoint))
}

#[test]
fn ezwsi_gets_the_offline_embeddings_of_dicom_patches_and_in_memory_images() {
    // EZ-WSI reads TILED_FULL slides only (it refuses ihc-sparse's per-frame positions).
    let Some((python, store, slide, relay, endpoint)) = stored("ihc-full", Setup::default()) else { return };
    let dicom = [(0usize, 0i64, 0i64), (0, 784, 532), (0, 2276, 1576), (1, 100, 50), (1, 1026, 676)];
    let images = [
        ("fixtures/images/pil_bicubic_400x260.png", 0i64, 0i64),
        ("fixtures/images/pil_bicubic_400x260.png", 176, 36),
        ("fixtures/images/timm_eval_224.png", 0, 0),
    ];
    let patches = json!({
        "dicom": dicom.iter().map(|(l, x, y)| json!({"level": l, "x": x, "y": y})).collect::<Vec<_>>(),
        "images": images.iter().map(|(p, x, y)| json!({"path": root().join(p), "x": x, "y": y})).collect::<Vec<_>>(),
    });
    let got = ezwsi(&python, &store, relay, &slide, &endpoint, &patches, &[]);

    let mut want_pixels = Vec::new();
    let mut levels = Vec::new();
    for (l, x, y) in dicom {
        if levels.len() <= l {
            let all = slide.level(l).unwrap().read_all().unwrap();
            levels.push((all.width as usize, all.height as usize, all.data));
        }
        let (w, h, rgb) = &levels[l];
        want_pixels.push(crop(rgb, *w, *h, x, y));
    }
    for (p, x, y) in images {
        let (w, h, rgb) = png_rgb(p);
        want_pixels.push(crop(&rgb, w, h, x, y));
    }
    let want = offline(&want_pixels);
    let rows: Vec<&Value> = got["dicom"].as_array().unwrap().iter().chain(got["images"].as_array().unwrap()).collect();
    assert_eq!(rows.len(), want.len(), "{got}");
    for (i, (row, want)) in rows.iter().zip(&want).enumerate() {
        let d = max_diff(&floats(&row["embedding"]), want);
        assert!(d <= 1e-5, "patch {i} ({}, {}): EZ-WSI's embedding differs from the offline one by {d}", row["x"], row["y"]);
    }
    for (row, (l, ..)) in got["dicom"].as_array().unwrap().iter().zip(dicom) {
        assert_eq!(row["sop_instance_uid"], slide.level(l).unwrap().info().sop_instance_uid.as_str());
    }
}

#[test]
fn a_token_the_store_refuses_reaches_ezwsi_as_invalid_credentials() {
    let Some((python, store, slide, relay, endpoint)) = stored("ihc-full", Setup { auth: true, tls: false }) else { return };
    let patches = json!({"dicom": [{"level": 1, "x": 0, "y": 0}], "images": []});
    // EZ-WSI opens the slide with the relay's basic credentials; only the embedding request
    // carries the (wrong) bearer token, which the relay passes to Orthanc, which refuses it.
    let token = "tok-wrong-9c2e";
    let basic = format!("{USER}:{PASSWORD}");
    let got = ezwsi(&python, &store, relay, &slide, &endpoint, &patches, &["--bearer-token", token, "--open-without-token", "--relay-basic-auth", &basic]);
    let error = &got["error"];
    assert_eq!((error["type"].as_str(), error["stage"].as_str()), (Some("PatchEmbeddingEndpointError"), Some("embeddings")), "{got}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("INVALID_CREDENTIALS_ERROR"), "{message}");
    assert!(!message.contains(token), "the token leaked: {message}");
}

#[test]
fn icc_transforms_match_googles_with_googles_target_profiles() {
    let Some(python) = python() else { return };
    let dir = std::env::temp_dir().join(format!("haidef-icc-ref-{}", std::process::id()));
    let (x, y) = (20i64, 10i64);
    let status = Command::new(&python)
        .arg(root().join("tests/ezwsi/icc_reference.py"))
        .arg("--image")
        .arg(root().join("fixtures/images/pil_bicubic_400x260.png"))
        .arg("--source-icc")
        .arg(root().join("fixtures/icc/ProPhotoRGB.icc"))
        .args(["--x", &x.to_string(), "--y", &y.to_string(), "--out"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "icc_reference.py failed (its messages are above)");
    let targets = ["SRGB", "ADOBERGB", "ROMMRGB"];
    // The server with Google's target profiles (the files EZ-WSI bundles).
    let mut icc = haidef_wsi::serve::IccTargets::default();
    for t in targets {
        icc.set(t, std::fs::read(dir.join(format!("{t}.icc"))).unwrap()).unwrap();
    }
    let base = start(ServeOptions { icc_targets: Arc::new(icc), ..ServeOptions::default() });
    let png = std::fs::read(dir.join("with_profile.png")).unwrap();
    let (w, h, rgb) = png_rgb("fixtures/images/pil_bicubic_400x260.png");
    let source = std::fs::read(root().join("fixtures/icc/ProPhotoRGB.icc")).unwrap();
    let mut want_pixels = vec![crop(&rgb, w, h, x, y)];
    for t in targets {
        let reference = std::fs::read(dir.join(format!("{t}.rgb"))).unwrap();
        // LittleCMS through lcms2-rs against LittleCMS through Pillow, same profiles.
        let mut ours = crop(&rgb, w, h, x, y);
        haidef_wsi::ToSrgb::between(&source, &std::fs::read(dir.join(format!("{t}.icc"))).unwrap()).unwrap().apply(&mut ours);
        let worst = ours.iter().zip(&reference).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert_eq!(worst, 0, "{t}: our pixels differ from Pillow's by up to {worst}");
        want_pixels.push(reference);
    }
    let want = offline(&want_pixels);
    let b64 = server::b64(&png);
    let coords = json!([{"x_origin": x, "y_origin": y}]);
    let mut instances: Vec<Value> = ["NONE", "SRGB", "ADOBERGB", "ROMMRGB"]
        .iter()
        .map(|t| json!({"raw_image_bytes": b64, "patch_coordinates": coords, "extensions": {"transform_imaging_to_icc_profile": t}}))
        .collect();
    // EZ-WSI's in-memory image: with normalization NONE the server transforms; a client that says
    // it transformed to another target than the request's is an error.
    instances.push(json!({"image_file_uri": "gs:///placeholder.png", "patch_coordinates": coords,
        "extensions": {"transform_imaging_to_icc_profile": "SRGB", "ez_wsi_state": {"image": b64, "icc_profile_metadata_normalization": "NONE"}}}));
    instances.push(json!({"image_file_uri": "gs:///placeholder.png", "patch_coordinates": coords,
        "extensions": {"transform_imaging_to_icc_profile": "SRGB", "ez_wsi_state": {"image": b64, "icc_profile_metadata_normalization": "ADOBERGB"}}}));
    let (status, answer) = server::post(&format!("{base}/predict"), &json!({"instances": instances}).to_string());
    assert_eq!(status, 200);
    let p = answer["predictions"].as_array().unwrap();
    for (i, name) in ["NONE", "SRGB", "ADOBERGB", "ROMMRGB"].iter().enumerate() {
        let got = floats(&p[i]["result"]["patch_embeddings"][0]["embedding_vector"]);
        let d = max_diff(&got, &want[i]);
        assert!(d <= 1e-5, "{name}: the embedding differs from the reference by {d}");
    }
    assert!(max_diff(&floats(&p[4]["result"]["patch_embeddings"][0]["embedding_vector"]), &want[1]) <= 1e-5, "{}", p[4]);
    assert_eq!(p[5]["error"]["code"], "EZ_WSI_STATE_ERROR", "{}", p[5]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_dimensions_resize_inline_images_as_googles_server_does() {
    let Some(python) = python() else { return };
    let dir = std::env::temp_dir().join(format!("haidef-resize-ref-{}", std::process::id()));
    let image = "fixtures/images/pil_bicubic_400x260.png";
    // Shrinking by non-integer factors, enlarging, mixed, exactly and nearly 2×, one pixel,
    // unchanged.
    let sizes = [(173usize, 119usize), (611, 397), (500, 130), (200, 130), (201, 130), (1, 1), (399, 261), (400, 260)];
    let status = Command::new(&python)
        .arg(root().join("tests/ezwsi/resize_reference.py"))
        .arg("--image")
        .arg(root().join(image))
        .arg("--out")
        .arg(&dir)
        .args(sizes.iter().map(|(w, h)| format!("{w}x{h}")))
        .status()
        .unwrap();
    assert!(status.success(), "resize_reference.py failed (its messages are above)");
    let (w, h, rgb) = png_rgb(image);
    for (dw, dh) in sizes {
        let reference = std::fs::read(dir.join(format!("{dw}x{dh}.rgb"))).unwrap();
        let ours = haidef_wsi::serve::resize_rgb8(&rgb, w, h, dw, dh);
        let differ = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{dw}x{dh}: {differ} of {} values differ from EZ-WSI's (OpenCV's) resize", reference.len());
    }
    // Through the server: the patch is cut from the resized image.
    let reference = std::fs::read(dir.join("611x397.rgb")).unwrap();
    let want = offline(&[crop(&reference, 611, 397, 300, 150)]);
    let base = start(ServeOptions::default());
    let b64 = server::b64(&std::fs::read(root().join(image)).unwrap());
    let inst =
        |dims: Value| json!({"raw_image_bytes": b64, "patch_coordinates": [{"x_origin": 300, "y_origin": 150}], "extensions": {"image_dimensions": dims}});
    let body = json!({"instances": [
        inst(json!({"width_px": 611, "height_px": 397})),
        inst(json!({"width_px": 10_001, "height_px": 397})),
        inst(json!({"width_px": 0, "height_px": 397})),
        inst(json!({"width_px": 611})),
        inst(json!({"width_px": 300, "height_px": 200})),
    ]});
    let (_, answer) = server::post(&format!("{base}/predict"), &body.to_string());
    let p = answer["predictions"].as_array().unwrap();
    let d = max_diff(&floats(&p[0]["result"]["patch_embeddings"][0]["embedding_vector"]), &want[0]);
    assert!(d <= 1e-5, "the resized image's patch differs from the reference by {d}: {}", p[0]);
    let codes: Vec<&str> = p[1..].iter().map(|x| x["error"]["code"].as_str().unwrap_or("none")).collect();
    assert_eq!(
        codes,
        ["IMAGE_DIMENSION_ERROR", "INVALID_REQUEST_FIELD_ERROR", "INVALID_REQUEST_FIELD_ERROR", "PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR"],
        "{answer}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `cv2_reference.py` for `cases` ("SWxSH-DWxDH", with `extra` options) and returns, per
/// case, how many values of `ours` differ from OpenCV's and by how much at most.
fn against_opencv(interpolation: &str, extra: &[&str], cases: &[&str], ours: fn(&[u8], usize, usize, usize, usize) -> Vec<u8>) -> Vec<(usize, u8)> {
    let Some(python) = python() else { return Vec::new() };
    let dir = std::env::temp_dir().join(format!("haidef-cv2-{interpolation}-{}-{}", extra.len(), std::process::id()));
    let status = Command::new(&python)
        .arg(root().join("tests/ezwsi/cv2_reference.py"))
        .args(["--interpolation", interpolation])
        .args(extra)
        .arg("--out")
        .arg(&dir)
        .args(cases)
        .status()
        .unwrap();
    assert!(status.success(), "cv2_reference.py failed (its messages are above)");
    let mut out = Vec::new();
    for case in cases {
        let (src, dst) = case.split_once('-').unwrap();
        let size = |s: &str| -> (usize, usize) {
            let (w, h) = s.split_once('x').unwrap();
            (w.parse().unwrap(), h.parse().unwrap())
        };
        let ((sw, sh), (dw, dh)) = (size(src), size(dst));
        let input = std::fs::read(dir.join(format!("{case}.src"))).unwrap();
        let reference = std::fs::read(dir.join(format!("{case}.dst"))).unwrap();
        let got = ours(&input, sw, sh, dw, dh);
        assert_eq!(got.len(), reference.len(), "{case}");
        let differ = got.iter().zip(&reference).filter(|(a, b)| a != b).count();
        let worst = got.iter().zip(&reference).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        out.push((differ, worst));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[test]
fn inter_area_shrinks_match_opencv() {
    // 8× (Google's limit), 2×2, whole-number 3×2, fractional, barely, one axis, mixed.
    let cases = [
        "1792x1792-224x224",
        "448x448-224x224",
        "672x448-224x224",
        "300x250-224x224",
        "225x224-224x224",
        "224x500-224x224",
        "1000x700-224x224",
        "1791x1001-224x224",
    ];
    for (case, (differ, _)) in cases.iter().zip(against_opencv("area", &[], &cases, haidef_wsi::serve::area_rgb8)) {
        assert_eq!(differ, 0, "area {case}: {differ} values differ from OpenCV's");
    }
}

#[test]
fn inter_cubic_resizes_match_opencv_and_stay_within_one_grey_level_of_ipp() {
    // Enlarging by fractional and whole factors, on one axis, tiny sources, enlarging one axis
    // while shrinking the other, and row lengths that are and are not whole groups of 8 values.
    let cases =
        ["100x80-224x224", "112x112-224x224", "224x150-224x224", "3x3-226x226", "150x300-230x224", "75x75-227x229", "201x199-224x225", "57x133-224x224"];
    let cubic = haidef_wsi::serve::cubic_rgb8;
    for (case, (differ, _)) in cases.iter().zip(against_opencv("cubic", &["--no-ipp"], &cases, cubic)) {
        assert_eq!(differ, 0, "cubic {case}: {differ} values differ from OpenCV's own cubic");
    }
    // What Google's server runs (IPP on x86-64): never more than one grey level away.
    for (case, (_, worst)) in cases.iter().zip(against_opencv("cubic", &[], &cases, cubic)) {
        assert!(worst <= 1, "cubic {case}: up to {worst} grey levels from OpenCV with IPP");
    }
}

#[test]
fn ezwsi_patches_of_resized_dicom_levels_equal_the_offline_embeddings_of_ezwsis_pixels() {
    // Uncompressed TILED_FULL frames: EZ-WSI's pixels and ours are then the same before
    // resampling (with JPEG frames the two JPEG decoders differ by a grey level here and there).
    let Some((python, store, slide, relay, endpoint)) = stored("ihc-raw-tiled-full", Setup::default()) else { return };
    // Level 0 (600×400) shrunk by fractional factors, by a whole one (2×), on one axis only,
    // barely; enlarged (INTER_CUBIC) on both axes, on one, and enlarged on one while shrunk on
    // the other; level 1 (300×200) enlarged by fractional factors.
    let patches = json!({"dicom": [
        {"level": 0, "x": 0, "y": 0, "resize": [500, 333]},
        {"level": 0, "x": 270, "y": 100, "resize": [500, 333]},
        {"level": 0, "x": 3, "y": 0, "resize": [300, 224]},
        {"level": 0, "x": 200, "y": 1, "resize": [600, 250]},
        {"level": 0, "x": 20, "y": 30, "resize": [260, 256]},
        {"level": 0, "x": 370, "y": 170, "resize": [599, 399]},
        {"level": 0, "x": 333, "y": 111, "resize": [901, 517]},
        {"level": 0, "x": 0, "y": 0, "resize": [901, 517]},
        {"level": 0, "x": 777, "y": 176, "resize": [1001, 400]},
        {"level": 0, "x": 123, "y": 45, "resize": [700, 300]},
        {"level": 1, "x": 17, "y": 29, "resize": [331, 263]},
    ], "images": []});
    let pixels = std::env::temp_dir().join(format!("haidef-ezwsi-pixels-{}", std::process::id()));
    let got = ezwsi(&python, &store, relay, &slide, &endpoint, &patches, &["--pixels", pixels.to_str().unwrap()]);
    let rows = got["dicom"].as_array().unwrap_or_else(|| panic!("{got}"));
    let n = patches["dicom"].as_array().unwrap().len();
    assert_eq!(rows.len(), n, "{got}");
    let theirs: Vec<Vec<u8>> = (0..n).map(|i| std::fs::read(pixels.join(format!("dicom-{i}.rgb"))).unwrap()).collect();
    let want = offline(&theirs);
    for (i, (row, want)) in rows.iter().zip(&want).enumerate() {
        let d = max_diff(&floats(&row["embedding"]), want);
        // Shrunk levels: OpenCV's INTER_AREA, equal value for value. Enlarged ones: OpenCV's
        // INTER_CUBIC runs Intel IPP's code on x86-64, one grey level away in a few per cent of
        // values (inter_cubic_resizes_match_opencv_…), which moves this untrained model's
        // embedding by up to 6.3e-4 here.
        let enlarged = patches["dicom"][i]["resize"][0].as_u64().unwrap() > [600, 300][patches["dicom"][i]["level"].as_u64().unwrap() as usize]
            || patches["dicom"][i]["resize"][1].as_u64().unwrap() > [400, 200][patches["dicom"][i]["level"].as_u64().unwrap() as usize];
        let tolerance = if enlarged { 2e-3 } else { 1e-5 };
        eprintln!("patch {i} enlarged {enlarged}: {d:.2e}");
        assert!(d <= tolerance, "patch {i} {}: the server's embedding differs from the offline embedding of EZ-WSI's pixels by {d}", patches["dicom"][i]);
    }
    std::fs::remove_dir_all(&pixels).unwrap();
}
