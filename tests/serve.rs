//! The embedding server over HTTP, as clients of Google's Path Foundation endpoint call it
//! (docs/SERVING_API.md): the answers' shapes and error codes, and embeddings equal to the
//! library's offline embeddings of the same pixels (decoded here with the png crate, not the
//! server's decoder).

use haidef_wsi::serve::ServeOptions;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

#[path = "support/bucket.rs"]
mod bucket;
#[path = "../fuzz/harness/serve.rs"]
mod fuzz_harness;
#[path = "support/server.rs"]
mod server;
use server::*;

fn png_file(rel: &str) -> (Vec<u8>, usize, usize, Vec<u8>) {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (bytes, info.width as usize, info.height as usize, buf)
}

#[test]
fn the_server_answers_as_googles_does() {
    let base = start(ServeOptions::default());
    let client = client();
    let h = client.get(format!("{base}/health")).send().unwrap();
    assert_eq!((h.status().as_u16(), h.text().unwrap().as_str()), (200, "ok"));
    let predict = format!("{base}/predict");
    assert_eq!(post(&predict, "{not json"), (400, json!({"error": "No JSON body."})));
    assert_eq!(post(&predict, "null"), (400, json!({"error": "No JSON body."})));
    assert_eq!(post(&predict, r#"{"instances": 5}"#), (200, json!({"error": "INVALID_REQUEST_FIELD_ERROR"})));
    assert_eq!(post(&predict, r#"{"instances": []}"#), (200, json!({"predictions": []})));
    for n in [4001, 10_000] {
        let big: Vec<Value> = (0..n).map(|i| json!({"x_origin": i, "y_origin": 0})).collect();
        let body = json!({"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": big}]}).to_string();
        assert_eq!(post(&predict, &body), (200, json!({"error": "TOO_MANY_PATCHES_ERROR"})), "{n} patches");
    }
    // Wrong types fail the request, as Google's server answers them.
    for bad in [
        json!({"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": [{"x_origin": "5", "y_origin": 0}]}]}),
        json!({"instances": [{"raw_image_bytes": "AA==", "patch_coordinates": {"x_origin": 5, "y_origin": 0}}]}),
        json!({"instances": [{"dicom_path": "https://store/dicomWeb/studies/1/series/2", "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]}]}),
        json!({"instances": [{"raw_image_bytes": "AA==", "bearer_token": 7, "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]}]}),
        json!({"instances": ["not an object"]}),
    ] {
        assert_eq!(post(&predict, &bad.to_string()), (200, json!({"error": "INVALID_REQUEST_FIELD_ERROR"})), "{bad}");
    }

    let (bytes, w, h, rgb) = png_file("fixtures/reference/ihc-full-l0-frame-corner.png");
    assert_eq!((w, h), (300, 290));
    let state_image = json!({"image": b64(&bytes)});
    let patch_png = {
        let p = crop(&rgb, w, h, 16, 40);
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 224, 224);
        enc.set_color(png::ColorType::Rgb);
        enc.write_header().unwrap().write_image_data(&p).unwrap();
        out
    };
    let body = json!({"instances": [
        // Inline bytes, two patches.
        {"raw_image_bytes": b64(&bytes), "patch_coordinates": [{"x_origin": 16, "y_origin": 40}, {"x_origin": 70, "y_origin": 60, "width": 224, "height": 224}]},
        // EZ-WSI's in-memory image: placeholder URI, pixels in ez_wsi_state, string booleans.
        {"image_file_uri": "gs:///placeholder.png", "patch_coordinates": [{"x_origin": 100, "y_origin": 100, "width": 224, "height": 224}],
         "extensions": {"ez_wsi_state": state_image, "require_patches_fully_in_source_image": "False", "transform_imaging_to_icc_profile": "NONE"}},
        // The same patch, but it must be fully inside (the default): an error for this instance only.
        {"image_file_uri": "gs:///placeholder.png", "patch_coordinates": [{"x_origin": 100, "y_origin": 100}], "extensions": {"ez_wsi_state": state_image}},
        // EZ-WSI's per-patch PNGs.
        {"image_file_uri": "gs:///placeholder.png", "patch_coordinates": [{"x_origin": 16, "y_origin": 40, "width": 224, "height": 224}],
         "extensions": {"ez_wsi_state": {"source_image_width_px": 300, "source_image_height_px": 290, "patches": [b64(&patch_png)]}}},
        {"dicom_path": {"series_path": "https://store/dicomWeb/studies/1/series/2", "instance_uids": ["3"]}, "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]},
        {"image_file_uri": "gs://bucket/slide.png", "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]},
        {"raw_image_bytes": b64(b"not an image at all"), "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]},
        // No bucket approved, and not a gs:// path anyway.
        {"image_file_uri": "gs:///nothing.png", "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]},
        // Both dicom_path and raw_image_bytes: dicom_path wins, as in Google's order.
        {"dicom_path": {"series_path": "https://store/dicomWeb/studies/1/series/2", "instance_uids": ["3"]}, "raw_image_bytes": b64(&bytes), "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]},
    ]});
    let (status, r) = post(&predict, &body.to_string());
    assert_eq!(status, 200);
    let p = r["predictions"].as_array().unwrap();
    assert_eq!(p.len(), 9);
    let want = offline(&[crop(&rgb, w, h, 16, 40), crop(&rgb, w, h, 70, 60), crop(&rgb, w, h, 100, 100)]);
    let rows = p[0]["result"]["patch_embeddings"].as_array().unwrap();
    assert_eq!(rows[1]["patch_coordinate"], json!({"x_origin": 70, "y_origin": 60, "width": 224, "height": 224}));
    for (row, want) in rows.iter().zip(&want[..2]) {
        assert!(max_diff(&row["embedding_vector"], want) <= 1e-5);
    }
    // A control: another patch's embedding is far from this one's (so a wrong crop would show).
    assert!(max_diff(&rows[0]["embedding_vector"], &want[1]) > 1e-2, "different patches embed alike");
    assert!(max_diff(&p[1]["result"]["patch_embeddings"][0]["embedding_vector"], &want[2]) <= 1e-5, "zero-padded patch");
    assert_eq!(p[2]["error"]["code"], "PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR");
    assert!(max_diff(&p[3]["result"]["patch_embeddings"][0]["embedding_vector"], &want[0]) <= 1e-5, "per-patch PNG");
    assert_eq!(p[4]["error"]["code"], "UNAPPROVED_DICOM_STORE_ERROR");
    assert_eq!(p[5]["error"]["code"], "UNAPPROVED_GCS_BUCKET_ERROR");
    assert_eq!(p[6]["error"]["code"], "IMAGE_ERROR");
    assert_eq!(p[7]["error"]["code"], "GCS_IMAGE_PATH_FORMAT_ERROR");
    assert_eq!(p[8]["error"]["code"], "UNAPPROVED_DICOM_STORE_ERROR");
}

#[test]
fn concurrent_requests_share_batches_and_each_gets_its_own_rows() {
    let opts = ServeOptions { max_wait: Duration::from_millis(50), batch_size: 8, ..ServeOptions::default() };
    let base = start(opts);
    let (bytes, w, h, rgb) = png_file("fixtures/reference/ihc-full-l0-frame-corner.png");
    let origins: Vec<(i64, i64)> = (0..6).map(|i| (i * 12, 60 - i * 9)).collect();
    let want = offline(&origins.iter().map(|(x, y)| crop(&rgb, w, h, *x, *y)).collect::<Vec<_>>());
    std::thread::scope(|s| {
        for (i, (x, y)) in origins.iter().enumerate() {
            let (base, bytes, want) = (&base, &bytes, &want);
            s.spawn(move || {
                let body = json!({"instances": [{"raw_image_bytes": b64(bytes), "patch_coordinates": [{"x_origin": x, "y_origin": y}]}]});
                let (status, r) = post(&format!("{base}/predict"), &body.to_string());
                assert_eq!(status, 200);
                let row = &r["predictions"][0]["result"]["patch_embeddings"][0];
                assert_eq!(row["patch_coordinate"]["x_origin"], json!(x));
                assert!(max_diff(&row["embedding_vector"], &want[i]) <= 1e-5, "request {i}");
            });
        }
    });
}

/// Every /predict body the `predict_request` fuzzer found a fault with (fixtures/fuzz-regressions/
/// predict_request/, none so far; docs/FUZZING.md), replayed through the same code.
#[test]
fn every_kept_fuzz_input_is_handled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz-regressions/predict_request");
    for file in std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| !p.ends_with("README.md")) {
        fuzz_harness::predict_request(&std::fs::read(&file).unwrap());
    }
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    // Room for 2 queued patches while a 3-patch request waits (max_wait 2 s keeps it queued).
    let opts = ServeOptions { max_wait: Duration::from_secs(2), batch_size: 64, max_queued_patches: 3, ..ServeOptions::default() };
    let base = start(opts);
    let (bytes, ..) = png_file("fixtures/reference/ihc-full-l0-frame-corner.png");
    let body = |n: usize| {
        json!({"instances": [{"raw_image_bytes": b64(&bytes), "patch_coordinates": (0..n).map(|i| json!({"x_origin": i, "y_origin": 0})).collect::<Vec<_>>()}]})
            .to_string()
    };
    let first = {
        let (base, b) = (base.clone(), body(3));
        std::thread::spawn(move || post(&format!("{base}/predict"), &b))
    };
    // Until the first request's patches are in the queue (a fixed sleep was a race on a busy machine).
    let t0 = std::time::Instant::now();
    loop {
        let m = metrics(&base);
        if m["patches_queued"] == 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the first request's 3 patches never showed as queued: {m}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = client().post(format!("{base}/predict")).body(body(2)).send().unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(first.join().unwrap().0, 200);
}

#[test]
fn keys_guard_predict_and_metrics_but_not_health() {
    let opts = ServeOptions { api_keys: haidef_wsi::serve::ApiKeys(vec!["k-one".into(), "k-two-longer".into()]), ..ServeOptions::default() };
    assert!(!format!("{opts:?}").contains("k-one"), "Debug printed a key");
    let base = start(opts);
    let c = client();
    assert_eq!(c.get(format!("{base}/health")).send().unwrap().status().as_u16(), 200);
    let body = r#"{"instances": []}"#;
    let r = c.post(format!("{base}/predict")).body(body).send().unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["www-authenticate"].to_str().unwrap()), (401, "Bearer"));
    let wrong = c.post(format!("{base}/predict")).bearer_auth("k-one-").body(body).send().unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(!wrong.text().unwrap().contains("k-one"), "the answer must not echo keys");
    let ok = c.post(format!("{base}/predict")).bearer_auth("k-two-longer").body(body).send().unwrap();
    assert_eq!((ok.status().as_u16(), ok.text().unwrap()), (200, r#"{"predictions":[]}"#.to_string()));
    let ok = c.post(format!("{base}/predict")).header("x-api-key", "k-one").body(body).send().unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(c.get(format!("{base}/metrics")).send().unwrap().status().as_u16(), 401);
    let m: Value = serde_json::from_str(&c.get(format!("{base}/metrics")).bearer_auth("k-one").send().unwrap().text().unwrap()).unwrap();
    assert_eq!((m["patches_embedded"].as_u64(), m["encoder_busy_fraction"].as_f64()), (Some(0), Some(0.0)), "{m}");
}

#[test]
fn metrics_count_patches_and_a_slow_request_gets_504() {
    let base = start(ServeOptions::default());
    let (bytes, ..) = png_file("fixtures/reference/ihc-full-l0-frame-corner.png");
    let body =
        json!({"instances": [{"raw_image_bytes": b64(&bytes), "patch_coordinates": [{"x_origin": 0, "y_origin": 0}, {"x_origin": 10, "y_origin": 10}]}]});
    assert_eq!(post(&format!("{base}/predict"), &body.to_string()).0, 200);
    let m = metrics(&base);
    assert_eq!((&m["patches_embedded"], &m["patches_queued"]), (&json!(2), &json!(0)), "{m}");
    assert!(m["batches"].as_u64().unwrap() >= 1 && m["encoder_busy_seconds"].as_f64().unwrap() > 0.0, "{m}");

    let slow = start(ServeOptions { request_timeout: Duration::from_millis(1), max_wait: Duration::from_millis(200), ..ServeOptions::default() });
    let r = client().post(format!("{slow}/predict")).body(body.to_string()).send().unwrap();
    assert_eq!(r.status().as_u16(), 504);
    // The request is gone: its patches are not embedded (after the encoder's 200 ms gather).
    std::thread::sleep(Duration::from_millis(800));
    let m = metrics(&slow);
    assert_eq!(m["patches_embedded"], 0, "{m}");
}

#[test]
fn a_request_cannot_resize_past_its_pixel_budget() {
    let base = start(ServeOptions { max_request_pixels: 2_000_000, ..ServeOptions::default() });
    let (bytes, ..) = png_file("fixtures/reference/ihc-full-l0-frame-corner.png");
    let inst = |w: u32| json!({"raw_image_bytes": b64(&bytes), "patch_coordinates": [{"x_origin": 0, "y_origin": 0}], "extensions": {"image_dimensions": {"width_px": w, "height_px": w}}});
    // 300×290 decoded + 1000² resized fits; the next instance's 2000² does not.
    let body = json!({"instances": [inst(1000)]});
    let (_, a) = post(&format!("{base}/predict"), &body.to_string());
    assert!(a["predictions"][0]["result"].is_object(), "{a}");
    let body = json!({"instances": [inst(2000)]});
    let (_, a) = post(&format!("{base}/predict"), &body.to_string());
    assert_eq!(a["predictions"][0]["error"]["code"], "IMAGE_DIMENSION_ERROR", "{a}");
    assert!(a["predictions"][0]["error"]["description"].as_str().unwrap().contains("budget"), "{a}");
}

#[test]
fn https_with_a_certificate_and_key() {
    let port = start_tls(ServeOptions::default());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dicomweb/tls/ca.pem")).unwrap()).unwrap();
    let trusting = reqwest::blocking::Client::builder().tls_certs_merge([ca]).build().unwrap();
    let h = trusting.get(format!("https://127.0.0.1:{port}/health")).send().unwrap();
    assert_eq!((h.status().as_u16(), h.text().unwrap().as_str()), (200, "ok"));
    let r = trusting.post(format!("https://127.0.0.1:{port}/predict")).body(r#"{"instances": []}"#).send().unwrap();
    assert_eq!(r.text().unwrap(), r#"{"predictions":[]}"#);
    // Plain HTTP to the TLS port, and a client that does not trust the CA, get nothing.
    assert!(client().get(format!("http://127.0.0.1:{port}/health")).send().is_err(), "plain HTTP was answered on the TLS port");
    assert!(client().get(format!("https://127.0.0.1:{port}/health")).send().is_err(), "an untrusted certificate was accepted");
    // A key file without a key is a clear error.
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dicomweb/tls/ca.pem");
    let e = haidef_wsi::serve::tls_config(&ca, &ca).unwrap_err().to_string();
    assert!(e.contains("ca.pem") && e.contains("private key"), "{e}");
}

#[test]
fn images_from_approved_buckets_with_the_callers_token() {
    let token = "ya29.tok-bucket-1f";
    let (bytes, w, h, rgb) = png_file("fixtures/reference/ihc-full-l0-frame-corner.png");
    let objects = [("slides-ok/cases/a 1.png".to_string(), bytes.clone()), ("other-bkt/x.png".to_string(), bytes.clone())].into_iter().collect();
    let (gcs, seen) = bucket::start(objects, token);
    // A folder prefix without its slash still approves only that folder.
    let buckets = haidef_wsi::serve::GcsBuckets::new(&["gs://slides-ok/cases"], &gcs, Duration::from_secs(5), 1 << 20).unwrap();
    let base = start(ServeOptions { gcs: Some(std::sync::Arc::new(buckets)), ..ServeOptions::default() });
    let inst = |uri: &str, tok: &str| json!({"image_file_uri": uri, "bearer_token": tok, "patch_coordinates": [{"x_origin": 16, "y_origin": 40}]});
    let body = json!({"instances": [
        inst("gs://slides-ok/cases/a 1.png", token),
        inst("gs://slides-ok/cases/a 1.png", "tok-wrong"),
        inst("gs://other-bkt/x.png", token),
        inst("gs://slides-ok/elsewhere/x.png", token),
        inst("gs://slides-ok/cases/missing.png", token),
        inst("gs://slides-ok/cases/moved.png", token),
        inst("gs://slides-ok/cases/../../other-bkt/x.png", token),
        inst("https://slides-ok/cases/a.png", token),
        inst("gs://slides-ok/cases-private/x.png", token),
        inst("gs://slides-ok/cases/%2e%2e/x.png", token),
    ]});
    let (status, answer) = post(&format!("{base}/predict"), &body.to_string());
    assert_eq!(status, 200);
    assert!(!answer.to_string().contains("tok-"), "a token leaked");
    let p = answer["predictions"].as_array().unwrap();
    let want = offline(&[crop(&rgb, w, h, 16, 40)]);
    let d = max_diff(&p[0]["result"]["patch_embeddings"][0]["embedding_vector"], &want[0]);
    assert!(d <= 1e-5, "the fetched image's patch differs by {d}: {}", p[0]);
    let codes: Vec<&str> = p[1..].iter().map(|x| x["error"]["code"].as_str().unwrap_or("none")).collect();
    assert_eq!(
        codes,
        [
            "INVALID_CREDENTIALS_ERROR",
            "UNAPPROVED_GCS_BUCKET_ERROR",
            "UNAPPROVED_GCS_BUCKET_ERROR",
            "HTTP_ERROR",
            "HTTP_ERROR",
            "GCS_IMAGE_PATH_FORMAT_ERROR",
            "GCS_IMAGE_PATH_FORMAT_ERROR",
            "UNAPPROVED_GCS_BUCKET_ERROR",
            "GCS_IMAGE_PATH_FORMAT_ERROR",
        ],
        "{answer}"
    );
    assert!(p[5]["error"]["description"].as_str().unwrap().contains("redirect"), "{}", p[5]);
    // Only the approved objects were asked for: the good, the wrong token, missing, moved.
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 4);
}
