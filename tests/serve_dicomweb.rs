//! The server's `dicom_path` instances against a real Orthanc (see `wsi/tests/orthanc/mod.rs`)
//! behind a bearer-token gate (`tests/support/store_gate.rs`): embeddings equal the library's
//! offline embeddings of the same regions read from the slide's files; every refusal (store
//! not approved, redirect off the allowlist, a name for loopback, wrong token) has Google's
//! code, fails only its instance, and leaks no token; a dead store fails only its requests.

#[path = "../wsi/tests/orthanc/mod.rs"]
mod orthanc;
#[path = "support/server.rs"]
mod server;
#[path = "support/store_gate.rs"]
mod store_gate;

use haidef_wsi::serve::{DicomStores, ServeOptions};
use haidef_wsi::wsi::{DicomWebOptions, Slide};
use haidef_wsi::ToSrgb;
use orthanc::{Orthanc, Setup};
use serde_json::{json, Value};
use server::{b64, crop, max_diff, offline, post, start};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "tok-3f9a1c-good";

fn folder(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/slides").join(name)
}

/// A server approving `prefixes`, with a short store timeout.
fn server(prefixes: &[String]) -> String {
    let options = DicomWebOptions { timeout: Duration::from_secs(2), attempts: 1, ..Default::default() };
    server_with(prefixes, options, ServeOptions::default())
}

/// A server approving `prefixes`, read with `options`, with `opts` otherwise.
fn server_with(prefixes: &[String], options: DicomWebOptions, opts: ServeOptions) -> String {
    let stores = DicomStores::new(prefixes, options, 16).unwrap();
    start(ServeOptions { dicom: Some(Arc::new(stores)), ..opts })
}

/// A store that accepts connections and never answers: its DICOMweb root and how many
/// connections it has taken.
fn dead_store() -> (String, Arc<AtomicUsize>) {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/dicom-web", dead.local_addr().unwrap());
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in dead.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(c);
        }
    });
    (url, taken)
}

fn dicom(series: &str, uid: &str, token: &str, patches: Value, extensions: Value) -> Value {
    json!({"dicom_path": {"series_path": series, "instance_uids": [uid]}, "bearer_token": token, "patch_coordinates": patches, "extensions": extensions})
}

/// (SOP instance UID, width, height, RGB8 pixels) of level `index`, read from the files.
fn level_pixels(slide: &Slide, index: usize) -> (String, usize, usize, Vec<u8>) {
    let level = slide.level(index).unwrap();
    let all = level.read_all().unwrap();
    (level.info().sop_instance_uid.clone(), all.width as usize, all.height as usize, all.data)
}

/// An Orthanc holding the fixture slide `name` behind the token gate: the store, the slide read
/// from its files, the gate's URL, what the gate saw, and the series path through the gate.
fn gated(name: &str) -> Option<(Orthanc, Slide, String, Arc<store_gate::Seen>, String)> {
    let store = Orthanc::start(Setup::default())?;
    store.stow(&folder(name));
    let local = Slide::open(folder(name)).unwrap();
    let (gate, seen) = store_gate::start(&store.direct(), TOKEN);
    let path = format!("{gate}/dicom-web/studies/{}/series/{}", local.study_instance_uid(), local.series_instance_uid());
    Some((store, local, gate, seen, path))
}

#[test]
fn dicom_patches_equal_the_offline_embeddings_and_refusals_have_googles_codes() {
    let Some((store, local, gate, seen, path)) = gated("ihc-sparse") else { return };
    let (study, series) = (local.study_instance_uid(), local.series_instance_uid());
    let base = server(&[
        format!("{gate}/dicom-web"),
        format!("{gate}/moved/dicom-web"),
        format!("{gate}/garbled/dicom-web"),
        format!("{gate}/broken-frames/dicom-web"),
    ]);
    let predict = format!("{base}/predict");

    // Level 1 (1250×900): patches inside, across frame borders, and one past the edge (black).
    let (uid, w, h, rgb) = level_pixels(&local, 1);
    assert_eq!((w, h), (1250, 900));
    let origins = [(0i64, 0i64), (300, 200), (1100, 800)];
    let want = offline(&origins.iter().map(|(x, y)| crop(&rgb, w, h, *x, *y)).collect::<Vec<_>>());
    let coords: Vec<Value> = origins.iter().map(|(x, y)| json!({"x_origin": x, "y_origin": y, "width": 224, "height": 224})).collect();
    let png = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reference/ihc-full-l0-frame-corner.png")).unwrap();
    let body = json!({"instances": [
        dicom(&path, &uid, TOKEN, json!(coords), json!({"require_patches_fully_in_source_image": "False", "transform_imaging_to_icc_profile": "NONE"})),
        // Wrong and missing tokens: the store refuses; only these instances fail.
        dicom(&path, &uid, "tok-wrong", json!([coords[0]]), json!({})),
        dicom(&path, &uid, "", json!([coords[0]]), json!({})),
        // Past the edge when the patch must be inside (the default).
        dicom(&path, &uid, TOKEN, json!([coords[2]]), json!({})),
        // Not a level of the series.
        dicom(&path, "1.2.3.4.5", TOKEN, json!([coords[0]]), json!({})),
        // Not approved: Orthanc's own port, loopback by name; a file (not a DICOMweb path at
        // all); a look-alike path.
        dicom(&format!("{}/dicom-web/studies/{study}/series/{series}", store.direct()), &uid, TOKEN, json!([coords[0]]), json!({})),
        dicom(&path.replace("127.0.0.1", "localhost"), &uid, TOKEN, json!([coords[0]]), json!({})),
        dicom("file:///etc/passwd", &uid, TOKEN, json!([coords[0]]), json!({})),
        dicom(&path.replace("/dicom-web/", "/dicom-webX/"), &uid, TOKEN, json!([coords[0]]), json!({})),
        // Approved, but the gate redirects to Orthanc's own port, which is not.
        dicom(&format!("{gate}/moved/dicom-web/studies/{study}/series/{series}"), &uid, TOKEN, json!([coords[0]]), json!({})),
        // Approved prefix, not a series URL; a series the store does not hold.
        dicom(&format!("{gate}/dicom-web/studies/{study}"), &uid, TOKEN, json!([coords[0]]), json!({})),
        dicom(&format!("{gate}/dicom-web/studies/{study}/series/1.2.3"), &uid, TOKEN, json!([coords[0]]), json!({})),
        // Metadata that is not JSON; frames that are not JPEG.
        dicom(&format!("{gate}/garbled/dicom-web/studies/{study}/series/{series}"), &uid, TOKEN, json!([coords[0]]), json!({})),
        dicom(&format!("{gate}/broken-frames/dicom-web/studies/{study}/series/{series}"), &uid, TOKEN, json!([coords[1]]), json!({})),
        // A resized level shrunk more than 8× (Google's limit); a patch of one shrunk 5× whose
        // source rectangle leaves the level.
        dicom(&path, &uid, TOKEN, json!([coords[0]]), json!({"image_dimensions": {"width_px": 100, "height_px": 100}})),
        dicom(&path, &uid, TOKEN, json!([{"x_origin": 100, "y_origin": 0}]), json!({"image_dimensions": {"width_px": 250, "height_px": 180}})),
        // An inline image in the same request is unaffected.
        {"raw_image_bytes": b64(&png), "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]},
    ]});
    let (status, answer) = post(&predict, &body.to_string());
    assert_eq!(status, 200, "{answer}");
    let text = answer.to_string();
    assert!(!text.contains("tok-"), "a token leaked into the answer: {text}");
    let p = answer["predictions"].as_array().unwrap();
    let rows = p[0]["result"]["patch_embeddings"].as_array().unwrap_or_else(|| panic!("{}", p[0]));
    assert_eq!(rows.len(), 3);
    for (i, (row, want)) in rows.iter().zip(&want).enumerate() {
        assert_eq!(row["patch_coordinate"], coords[i]);
        let d = max_diff(&row["embedding_vector"], want);
        assert!(d <= 1e-5, "patch {:?}: embeddings differ by {d}", origins[i]);
    }
    let codes: Vec<&str> = p[1..16].iter().map(|x| x["error"]["code"].as_str().unwrap_or_else(|| panic!("expected an error: {x}"))).collect();
    assert_eq!(
        codes,
        [
            "INVALID_CREDENTIALS_ERROR",
            "INVALID_CREDENTIALS_ERROR",
            "PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR",
            "LEVEL_NOT_FOUND_ERROR",
            "UNAPPROVED_DICOM_STORE_ERROR",
            "UNAPPROVED_DICOM_STORE_ERROR",
            "DICOM_PATH_ERROR",
            "UNAPPROVED_DICOM_STORE_ERROR",
            "UNAPPROVED_DICOM_STORE_ERROR",
            "DICOM_PATH_ERROR",
            "HTTP_ERROR",
            "INVALID_RESPONSE_ERROR",
            "DICOM_ERROR",
            "DICOM_IMAGE_DOWNSAMPLING_TOO_LARGE_ERROR",
            "PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR",
        ],
        "{text}"
    );
    // The refusal names where the redirect pointed (Orthanc's own port), not the gate's URL asked.
    let refused = p[9]["error"]["description"].as_str().unwrap();
    assert!(refused.contains(&format!("redirected to {}/dicom-web/studies/{study}/series/{series}", store.direct())), "{}", p[9]);
    assert!(p[16]["result"]["patch_embeddings"][0]["embedding_vector"].is_array());
    assert!(seen.refused.load(Ordering::SeqCst) >= 2, "the wrong and missing tokens reached the store");

    // The slide stays open: a second request is served from the cache (no new store requests
    // for frames already fetched) and gives the same embeddings.
    let before = seen.good.load(Ordering::SeqCst);
    let again = json!({"instances": [dicom(&path, &uid, TOKEN, json!([coords[1]]), json!({}))]});
    let (_, answer) = post(&predict, &again.to_string());
    assert!(max_diff(&answer["predictions"][0]["result"]["patch_embeddings"][0]["embedding_vector"], &want[1]) <= 1e-5, "{answer}");
    assert_eq!(seen.good.load(Ordering::SeqCst), before, "fetched again: {:?}", &seen.paths.lock().unwrap()[before..]);
}

#[test]
fn icc_transforms_start_from_the_levels_profile() {
    let Some((_store, local, gate, _, path)) = gated("ihc-raw-prophoto") else { return };
    let base = server(&[format!("{gate}/dicom-web")]);
    let (uid, w, h, rgb) = level_pixels(&local, 0);
    let profile = local.level(0).unwrap().info().icc_profile.clone().expect("the fixture carries a ProPhoto profile");
    let mut srgb = crop(&rgb, w, h, 10, 20);
    ToSrgb::from_icc(&profile).unwrap().apply(&mut srgb);
    let mut romm = crop(&rgb, w, h, 10, 20);
    ToSrgb::to_profile(&profile, &haidef_wsi::romm_rgb()).unwrap().apply(&mut romm);
    let want = offline(&[crop(&rgb, w, h, 10, 20), srgb, romm]);
    let coords = json!([{"x_origin": 10, "y_origin": 20}]);
    let body = json!({"instances": [
        dicom(&path, &uid, TOKEN, coords.clone(), json!({"transform_imaging_to_icc_profile": "NONE"})),
        dicom(&path, &uid, TOKEN, coords.clone(), json!({"transform_imaging_to_icc_profile": "srgb"})),
        dicom(&path, &uid, TOKEN, coords, json!({"transform_imaging_to_icc_profile": "ROMMRGB"})),
    ]});
    let (_, answer) = post(&format!("{base}/predict"), &body.to_string());
    let p = answer["predictions"].as_array().unwrap();
    let got = |i: usize| p[i]["result"]["patch_embeddings"][0]["embedding_vector"].clone();
    assert!(p.iter().all(|x| x["result"].is_object()), "{:?}", p.iter().map(|x| &x["error"]).collect::<Vec<_>>());
    for (i, name) in ["NONE", "SRGB", "ROMMRGB"].iter().enumerate() {
        let d = max_diff(&got(i), &want[i]);
        assert!(d <= 1e-5, "{name}: differs from the reference by {d}");
    }
    assert!(max_diff(&got(1), &want[0]) > 1e-3, "the transform changed nothing");

    // The same slide where the profile's BulkDataURI points off the allowlist (Orthanc's own
    // port): a transform is refused for that instance, never silently skipped; NONE still works.
    let off = path.replacen("/dicom-web/", "/own-bulk/dicom-web/", 1);
    let base = server(&[format!("{gate}/own-bulk/dicom-web")]);
    let body = json!({"instances": [
        dicom(&off, &uid, TOKEN, json!([{"x_origin": 10, "y_origin": 20}]), json!({"transform_imaging_to_icc_profile": "SRGB"})),
        dicom(&off, &uid, TOKEN, json!([{"x_origin": 10, "y_origin": 20}]), json!({"transform_imaging_to_icc_profile": "ADOBERGB"})),
        dicom(&off, &uid, TOKEN, json!([{"x_origin": 10, "y_origin": 20}]), json!({"transform_imaging_to_icc_profile": "NONE"})),
    ]});
    let (_, answer) = post(&format!("{base}/predict"), &body.to_string());
    let p = answer["predictions"].as_array().unwrap();
    for refused in &p[..2] {
        assert_eq!(refused["error"]["code"], "UNAPPROVED_DICOM_STORE_ERROR", "{refused}");
        assert!(refused["error"]["description"].as_str().unwrap().contains("ICC profile could not be read"), "{refused}");
    }
    assert!(max_diff(&p[2]["result"]["patch_embeddings"][0]["embedding_vector"], &want[0]) <= 1e-5, "{}", p[2]);
}

#[test]
fn a_dead_store_fails_only_the_requests_that_need_it() {
    // A store that accepts connections and never answers.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/dicom-web", dead.local_addr().unwrap());
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in dead.incoming() {
            held.push(c);
        }
    });
    let base = server(std::slice::from_ref(&dead_url));
    let predict = format!("{base}/predict");
    let png = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reference/ihc-full-l0-frame-corner.png")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let slow = {
        let (predict, tx) = (predict.clone(), tx.clone());
        let body = json!({"instances": [dicom(&format!("{dead_url}/studies/1.2/series/3.4"), "5.6", "", json!([{"x_origin": 0, "y_origin": 0}]), json!({}))]});
        std::thread::spawn(move || {
            let r = post(&predict, &body.to_string());
            tx.send("dicom").unwrap();
            r
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let inline = json!({"instances": [{"raw_image_bytes": b64(&png), "patch_coordinates": [{"x_origin": 0, "y_origin": 0}]}]});
    let (status, r) = post(&predict, &inline.to_string());
    tx.send("inline").unwrap();
    assert_eq!(status, 200);
    assert!(r["predictions"][0]["result"].is_object(), "{r}");
    let (status, r) = slow.join().unwrap();
    assert_eq!((status, r["predictions"][0]["error"]["code"].as_str()), (200, Some("HTTP_ERROR")), "{r}");
    assert_eq!(rx.recv().unwrap(), "inline", "the inline request waited for the dead store");
}

#[test]
fn a_dead_store_does_not_hold_up_another_store() {
    let Some((_store, local, gate, _, path)) = gated("ihc-sparse") else { return };
    let (dead, _) = dead_store();
    let options = DicomWebOptions { timeout: Duration::from_secs(5), attempts: 1, ..Default::default() };
    let opts = ServeOptions { max_dicom_reads: 2, request_timeout: Duration::from_secs(6), ..ServeOptions::default() };
    let base = server_with(&[format!("{gate}/dicom-web"), dead.clone()], options, opts);
    let predict = format!("{base}/predict");
    let (uid, ..) = level_pixels(&local, 1);
    let live = |x: i64| json!({"instances": [dicom(&path, &uid, TOKEN, json!([{"x_origin": x, "y_origin": 0}]), json!({}))]}).to_string();
    // The live slide opened first, so that the time below is that of reading frames.
    assert!(post(&predict, &live(0)).1["predictions"][0]["result"].is_object());
    // Eight instances on the dead store, more than its two reading slots.
    let stuck = {
        let predict = predict.clone();
        let instances: Vec<Value> =
            (0..8).map(|i| dicom(&format!("{dead}/studies/1.2/series/3.{i}"), "5.6", "", json!([{"x_origin": 0, "y_origin": 0}]), json!({}))).collect();
        let body = json!({ "instances": instances }).to_string();
        std::thread::spawn(move || post(&predict, &body))
    };
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    let (_, answer) = post(&predict, &live(1000));
    let took = t.elapsed();
    assert!(answer["predictions"][0]["result"].is_object(), "{answer}");
    // The dead store's reads end after 5 s: the live store's read did not wait for a slot
    // they hold.
    assert!(took < Duration::from_millis(2500), "the live store's request took {took:?} while another store was dead");
    assert_eq!(stuck.join().unwrap().0, 504);
}

#[test]
fn reads_of_requests_that_ended_stop() {
    let (dead, taken) = dead_store();
    // Three attempts of 8 s each per read; requests give up after 0.5 s, six in a row (about
    // 3 s, well within the first reads' 8 s even on a loaded machine).
    let options = DicomWebOptions { timeout: Duration::from_secs(8), attempts: 3, ..Default::default() };
    let opts = ServeOptions { max_dicom_reads: 2, request_timeout: Duration::from_millis(500), ..ServeOptions::default() };
    let base = server_with(std::slice::from_ref(&dead), options, opts);
    let t0 = std::time::Instant::now();
    for r in 0..6 {
        let instances: Vec<Value> =
            (0..2).map(|i| dicom(&format!("{dead}/studies/1.2/series/{r}.{i}"), "5.6", "", json!([{"x_origin": 0, "y_origin": 0}]), json!({}))).collect();
        let status = server::client().post(format!("{base}/predict")).body(json!({ "instances": instances }).to_string()).send().unwrap().status();
        assert_eq!(status.as_u16(), 504);
    }
    assert!(t0.elapsed() < Duration::from_secs(7), "six 0.5 s requests took {:?}: the test's timing does not hold here", t0.elapsed());
    // Past the first attempts' 8 s and any retry's: only the two reads holding the store's slots
    // ever reached it (the later requests' reads waited for a slot, and ended with their
    // requests), and, their requests gone, they did not try again.
    std::thread::sleep(Duration::from_secs(11).saturating_sub(t0.elapsed()));
    let n = taken.load(Ordering::SeqCst);
    assert!(n <= 2, "the dead store took {n} connections: reads of ended requests piled up or kept retrying");
}
