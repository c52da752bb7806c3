//! The DICOMweb source against a real server: Orthanc with its DICOMweb plugin (see
//! `orthanc/mod.rs`), loaded with the fixture slides over STOW-RS; plain HTTP, basic auth and
//! HTTPS. What Orthanc cannot be made to do (answer 503/429/400, stall, send broken multipart,
//! answer slowly to show concurrency) comes from a small fake server or a proxy in front of it.

mod common;
mod orthanc;

use common::slide_dir;
use haidef_wsi_dicom::{Auth, DicomWebOptions, PatchGridOptions, Slide, WsiError};
use orthanc::{Orthanc, Setup, PASSWORD, USER};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn series_url(server: &Orthanc, local: &Slide) -> String {
    server.series_url(local.study_instance_uid(), local.series_instance_uid())
}

/// Starts Orthanc (see `orthanc/mod.rs`) with the fixture slide `name` stored in it; returns it
/// with the same slide opened from its files.
fn serving(setup: Setup, name: &str) -> Option<(Orthanc, Slide)> {
    let server = Orthanc::start(setup)?;
    server.stow(&slide_dir(name));
    Some((server, Slide::open(slide_dir(name)).unwrap()))
}

/// Instances of a slide: pyramid levels and associated images.
fn instance_count(slide: &Slide) -> usize {
    slide.levels().len() + slide.associated().len()
}

/// Every patch of level 0's grid, byte for byte, at the same positions.
fn assert_same_level0_grid(remote: &Slide, local: &Slide) {
    let grid_r = remote.level(0).unwrap().patch_grid(PatchGridOptions::default()).unwrap();
    let grid_l = local.level(0).unwrap().patch_grid(PatchGridOptions::default()).unwrap();
    let mut n = 0;
    for (a, b) in grid_r.iter().zip(grid_l.iter()) {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.x, a.y), (b.x, b.y));
        assert!(a.rgb == b.rgb, "patch ({}, {}) differs", a.x, a.y);
        n += 1;
    }
    assert_eq!(n, grid_l.len());
}

/// Level 0's grid (as above) plus the whole lowest level.
fn assert_same_grid(remote: &Slide, local: &Slide) {
    assert_same_level0_grid(remote, local);
    let last = local.levels().len() - 1;
    assert!(remote.level(last).unwrap().read_all().unwrap() == local.level(last).unwrap().read_all().unwrap());
}

#[test]
fn dicomweb_reads_exactly_what_the_files_hold() {
    let Some((server, local)) = serving(Setup::default(), "ihc-sparse") else { return };
    let url = series_url(&server, &local);
    let remote = Slide::open_dicomweb(&url, &DicomWebOptions { frames_per_request: 16, ..Default::default() }).unwrap();
    assert_eq!(remote.levels().len(), local.levels().len());
    assert_eq!(remote.associated().len(), local.associated().len());
    for (r, l) in remote.levels().iter().zip(local.levels()) {
        assert_eq!((r.width(), r.height(), r.tile_size()), (l.width(), l.height(), l.tile_size()));
        assert_eq!(r.info().transfer_syntax, l.info().transfer_syntax);
        assert_eq!(r.info().organization, l.info().organization);
        assert_eq!(r.mpp(), l.mpp());
    }
    // The full level-0 patch grid, byte for byte.
    assert_same_grid(&remote, &local);
    // The ICC profile, given as a BulkDataURI in the metadata, is fetched.
    let icc_local = local.level(0).unwrap().info().icc_profile.clone();
    assert!(icc_local.as_ref().is_some_and(|p| p.len() > 1000), "fixture carries a profile");
    assert_eq!(remote.level(0).unwrap().info().icc_profile, icc_local);
    // A region crossing frame corners on another level.
    let (r, l) = (remote.level(1).unwrap(), local.level(1).unwrap());
    assert!(r.read_region(200, 230, 300, 290).unwrap() == l.read_region(200, 230, 300, 290).unwrap());

    // An unknown series is a clear not-found.
    let bad = server.series_url(local.study_instance_uid(), "1.2.3.4");
    let err = Slide::open_dicomweb(&bad, &DicomWebOptions::default()).unwrap_err();
    assert!(matches!(err, WsiError::DicomWeb { .. }) && err.to_string().contains("not found"), "{err}");
}

#[test]
fn basic_auth_works_and_wrong_credentials_are_clear() {
    let Some((server, local)) = serving(Setup { auth: true, ..Setup::default() }, "ihc-full") else { return };
    let url = series_url(&server, &local);
    let good = DicomWebOptions { auth: Auth::Basic { user: USER.into(), password: PASSWORD.into() }, ..Default::default() };
    let remote = Slide::open_dicomweb(&url, &good).unwrap();
    let (r, l) = (remote.level(2).unwrap(), local.level(2).unwrap());
    assert!(r.read_all().unwrap() == l.read_all().unwrap());
    for auth in [Auth::None, Auth::Basic { user: USER.into(), password: "wrong-pw".into() }, Auth::Bearer("tok-123".into())] {
        let err = Slide::open_dicomweb(&url, &DicomWebOptions { auth, ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("not authorised"), "{err}");
        assert!(!err.contains("wrong-pw") && !err.contains("tok-123") && !err.contains(PASSWORD), "credentials leaked: {err}");
    }
    let debug = format!("{:?}", good);
    assert!(!debug.contains(PASSWORD), "{debug}");
}

#[test]
fn a_server_that_dies_mid_read_gives_a_clear_error() {
    let Some((mut server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let options = DicomWebOptions { attempts: 2, frames_per_request: 4, ..Default::default() };
    let remote = Slide::open_dicomweb(&series_url(&server, &local), &options).unwrap();
    // Frame 1 of each level was read while opening; read one more, then kill the server.
    assert!(remote.level(0).unwrap().read_region(0, 0, 300, 10).is_ok());
    server.kill();
    let err = remote.level(0).unwrap().read_region(1000, 1000, 10, 10).unwrap_err().to_string();
    assert!(err.contains("gave up after 2 attempts") && err.contains("while reading frames"), "{err}");
}

/// What a fake server answers: status, Content-Type, body.
type Answer = (u16, String, Vec<u8>);

/// A fake HTTP server on a loopback port, one thread per connection, answering each GET with
/// `answer(path, accept)`; counts requests and the most in flight at once.
struct FakeServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

fn serve(answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> FakeServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let (req, max) = (requests.clone(), max_in_flight.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (answer, req, max, in_flight) = (answer.clone(), req.clone(), max.clone(), in_flight.clone());
            std::thread::spawn(move || {
                let Some((path, headers)) = orthanc::read_request(stream.try_clone().unwrap()) else { return };
                let accept = headers.into_iter().find(|(k, _)| k == "accept").map(|(_, v)| v).unwrap_or_default();
                req.fetch_add(1, Ordering::SeqCst);
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let (status, content_type, body) = answer(&path, &accept);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                orthanc::write_answer(&mut stream, status, &content_type, &body);
            });
        }
    });
    FakeServer { port, requests, max_in_flight }
}

impl FakeServer {
    fn series_url(&self, local: &Slide) -> String {
        format!("http://127.0.0.1:{}/dicom-web/studies/{}/series/{}", self.port, local.study_instance_uid(), local.series_instance_uid())
    }
}

/// A proxy in front of Orthanc that forwards GETs (with their Accept header), after `delay`,
/// unless `fault(request number, path)` names an HTTP status to answer instead.
fn proxy(server: &Orthanc, delay: Duration, fault: impl Fn(usize, &str) -> Option<u16> + Send + Sync + 'static) -> FakeServer {
    let count = AtomicUsize::new(0);
    relay(server, move |path, answer| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(delay);
        match fault(n, path) {
            Some(status) => (status, "text/plain".into(), b"injected fault".to_vec()),
            None => answer(),
        }
    })
}

/// `body` with every `transfer-syntax=<from>` replaced by `transfer-syntax=<to>` (UIDs of the
/// same length), the first `skip` occurrences left alone.
fn relabel_from(mut body: Vec<u8>, from: &str, to: &str, skip: usize) -> Vec<u8> {
    let (from, to) = (format!("transfer-syntax={from}").into_bytes(), format!("transfer-syntax={to}").into_bytes());
    assert_eq!(from.len(), to.len());
    let hits: Vec<usize> = body.windows(from.len()).enumerate().filter(|(_, w)| *w == &from[..]).map(|(i, _)| i).collect();
    for &at in hits.iter().skip(skip) {
        body[at..at + to.len()].copy_from_slice(&to);
    }
    body
}

fn relabel(body: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    relabel_from(body, from, to, 0)
}

/// A proxy in front of Orthanc whose answers `edit(path, forward)` makes: `forward()` gets
/// Orthanc's answer to the same GET (with the same Accept header).
fn relay(server: &Orthanc, edit: impl Fn(&str, &dyn Fn() -> Answer) -> Answer + Send + Sync + 'static) -> FakeServer {
    let (http, base) = (server.http(), server.base());
    serve(move |path, accept| {
        let forward = || {
            let r = http.get(format!("{base}{path}")).header("Accept", accept).send().unwrap();
            let status = r.status().as_u16();
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (status, ct, r.bytes().unwrap().to_vec())
        };
        edit(path, &forward)
    })
}

#[test]
fn a_malformed_multipart_answer_is_an_error_not_a_panic() {
    // Metadata from Orthanc, then frames answers that are broken in different ways.
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let metadata = server
        .http()
        .get(format!("{}/metadata", series_url(&server, &local)))
        .header("Accept", "application/dicom+json")
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    for (what, ct, body) in [
        ("garbage", "multipart/related; type=\"application/octet-stream\"; boundary=XYZ", b"garbage".to_vec()),
        (
            "truncated",
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.4.50; boundary=XYZ",
            b"--XYZ\r\nContent-Length: 500\r\n\r\nshort".to_vec(),
        ),
        ("not multipart", "application/json", b"{}".to_vec()),
    ] {
        let meta = metadata.clone();
        let fake = serve(
            move |path, _| {
                if path.ends_with("/metadata") {
                    (200, "application/dicom+json".into(), meta.clone())
                } else {
                    (200, ct.to_string(), body.clone())
                }
            },
        );
        let err = Slide::open_dicomweb(&fake.series_url(&local), &DicomWebOptions::default()).unwrap_err();
        assert!(matches!(err, WsiError::DicomWeb { .. }), "{what}: {err:?}");
        // Without its closing boundary an answer may have been cut short: asked again, then
        // named as such.
        let cut = err.to_string().contains("gave up after 4 attempts") && err.to_string().contains("ended before its closing multipart boundary");
        assert_eq!(cut, what != "not multipart", "{what}: {err}");
    }
}

#[test]
fn a_frames_answer_cut_short_is_asked_for_again() {
    // The first frames answer stops halfway, yet its HTTP framing says it is whole (as from a
    // proxy that lost its upstream and closed cleanly): asked for again, the same pixels.
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let frames_requests = Arc::new(AtomicUsize::new(0));
    let seen = frames_requests.clone();
    let cutting = relay(&server, move |path, forward| {
        let (status, ct, body) = forward();
        if path.contains("/frames/") && seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return (status, ct, body[..body.len() / 2].to_vec());
        }
        (status, ct, body)
    });
    let options = DicomWebOptions { frames_per_request: 4, ..Default::default() };
    let remote = Slide::open_dicomweb(&cutting.series_url(&local), &options).unwrap();
    let last = local.levels().len() - 1;
    assert!(remote.level(last).unwrap().read_all().unwrap() == local.level(last).unwrap().read_all().unwrap());
    assert!(frames_requests.load(Ordering::SeqCst) >= 2, "the cut answer was asked for again");
}

#[test]
fn a_syntax_we_cannot_decode_is_decoded_by_the_server() {
    // Orthanc transcodes level 2 to JPEG-LS (which this crate does not decode) and stores only
    // that; reading it over DICOMweb must fall back to Explicit VR Little Endian from the server.
    let Some(server) = Orthanc::start(Setup::default()) else { return };
    let http = server.http();
    let base = server.base();
    let original = std::fs::read(slide_dir("ihc-full").join("level-2.dcm")).unwrap();
    let id: serde_json::Value = serde_json::from_slice(&http.post(format!("{base}/instances")).body(original).send().unwrap().bytes().unwrap()).unwrap();
    let id = id["ID"].as_str().unwrap().to_string();
    let body = serde_json::json!({"Transcode": "1.2.840.10008.1.2.4.80", "Keep": ["StudyInstanceUID", "SeriesInstanceUID"], "Force": true});
    let jls = http.post(format!("{base}/instances/{id}/modify")).body(body.to_string()).send().unwrap().bytes().unwrap().to_vec();
    assert!(http.delete(format!("{base}/instances/{id}")).send().unwrap().status().is_success());
    assert!(http.post(format!("{base}/instances")).body(jls).send().unwrap().status().is_success());
    let local = Slide::open(slide_dir("ihc-full").join("level-2.dcm")).unwrap();
    let remote = Slide::open_dicomweb(&series_url(&server, &local), &DicomWebOptions::default()).unwrap();
    let level = remote.level(0).unwrap();
    assert_eq!(level.info().transfer_syntax, "1.2.840.10008.1.2.1");
    assert!(remote.warnings().iter().any(|w| w.contains("decoded by the server")), "{:?}", remote.warnings());
    // The server decoded the JPEG frames with its own decoder: within the JPEG tolerance.
    common::assert_close("server-decoded level 2", &level.read_all().unwrap().data, &local.level(0).unwrap().read_all().unwrap().data);
}

#[test]
fn https_with_basic_auth_reads_the_same_pixels_and_an_untrusted_certificate_is_clear() {
    let Some((server, local)) = serving(Setup { auth: true, tls: true }, "ihc-full") else { return };
    let url = series_url(&server, &local);
    assert!(url.starts_with("https://"), "{url}");
    let auth = Auth::Basic { user: USER.into(), password: PASSWORD.into() };
    let trusted = DicomWebOptions { auth: auth.clone(), ca_certificates: vec![orthanc::test_ca()], ..Default::default() };
    let remote = Slide::open_dicomweb(&url, &trusted).unwrap();
    assert_same_grid(&remote, &local);
    // The ICC profile's BulkDataURI is an https URL too.
    assert_eq!(remote.level(0).unwrap().info().icc_profile, local.level(0).unwrap().info().icc_profile);

    // Neither the system's roots nor an unrelated CA vouch for the test certificate: a clear
    // error, at once (a certificate problem is not retried).
    let other_ca = orthanc::fixtures().join("dicomweb/tls/other-ca.pem");
    for ca_certificates in [vec![], vec![other_ca]] {
        let options = DicomWebOptions { auth: auth.clone(), ca_certificates, ..Default::default() };
        let err = Slide::open_dicomweb(&url, &options).unwrap_err().to_string();
        assert!(err.contains("TLS failed") && err.contains("--ca-cert") && !err.contains("gave up"), "{err}");
        assert!(!err.contains(PASSWORD), "{err}");
    }
    // A CA file that is not PEM names the file.
    let not_pem = slide_dir("ihc-full").join("label.dcm");
    let err = Slide::open_dicomweb(&url, &DicomWebOptions { ca_certificates: vec![not_pem], ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("label.dcm") && err.contains("PEM"), "{err}");
    // Plain http to the TLS port: an error, not a hang or a panic.
    let plain = url.replacen("https://", "http://", 1);
    let options = DicomWebOptions { auth, attempts: 1, timeout: Duration::from_secs(5), ..Default::default() };
    assert!(matches!(Slide::open_dicomweb(&plain, &options), Err(WsiError::DicomWeb { .. })));
}

#[test]
fn requests_go_out_together_within_the_bound_and_give_the_same_pixels() {
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    for (bound, expected) in [(1usize, 1..=1usize), (3, 2..=3)] {
        // A slow server (40 ms per answer) makes overlapping requests visible.
        let slow = proxy(&server, Duration::from_millis(40), |_, _| None);
        let options = DicomWebOptions { max_concurrent_requests: bound, frames_per_request: 4, ..Default::default() };
        let remote = Slide::open_dicomweb(&slow.series_url(&local), &options).unwrap();
        assert_same_grid(&remote, &local);
        let most = slow.max_in_flight.load(Ordering::SeqCst);
        assert!(expected.contains(&most), "bound {bound}: {most} requests were in flight at once");
    }
}

#[test]
fn server_failures_are_retried_and_client_errors_are_not() {
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };

    // The first three frames requests fail (503, 429, then a timeout); the fourth attempt works.
    let frames_requests = Arc::new(AtomicUsize::new(0));
    let seen = frames_requests.clone();
    let flaky = proxy(&server, Duration::ZERO, move |_, path| {
        if !path.contains("/frames/") {
            return None;
        }
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => Some(503),
            1 => Some(429),
            2 => {
                std::thread::sleep(Duration::from_millis(1500));
                None
            }
            _ => None,
        }
    });
    let options = DicomWebOptions { attempts: 4, timeout: Duration::from_millis(1000), ..Default::default() };
    let remote = Slide::open_dicomweb(&flaky.series_url(&local), &options).unwrap();
    let last = local.levels().len() - 1;
    assert!(remote.level(last).unwrap().read_all().unwrap() == local.level(last).unwrap().read_all().unwrap());
    assert!(frames_requests.load(Ordering::SeqCst) >= 4);

    // 400 on frames: not retried, the error says what the server answered.
    let refusing = proxy(&server, Duration::ZERO, |_, path| path.contains("/frames/").then_some(400));
    let err = Slide::open_dicomweb(&refusing.series_url(&local), &options).unwrap_err().to_string();
    assert!(err.contains("HTTP 400"), "{err}");
    // The instances are set up concurrently: the metadata, then one frames request per
    // instance, none repeated.
    let instances = instance_count(&local);
    assert_eq!(refusing.requests.load(Ordering::SeqCst), 1 + instances, "metadata + one frames request per instance, no retry");
}

#[test]
fn a_study_url_finds_its_one_slide_with_qido_and_lists_several() {
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let study_url = format!("{}/dicom-web/studies/{}", server.base(), local.study_instance_uid());
    let remote = Slide::open_dicomweb(&study_url, &DicomWebOptions::default()).unwrap();
    assert_eq!(remote.series_instance_uid(), local.series_instance_uid());
    assert_eq!(remote.levels().len(), local.levels().len());
    let last = local.levels().len() - 1;
    assert!(remote.level(last).unwrap().read_all().unwrap() == local.level(last).unwrap().read_all().unwrap());

    // A second SM series in the same study (Orthanc rewrites one instance's series UID): the
    // study URL is ambiguous, and the error lists both series URLs.
    let (http, direct) = (server.http(), server.direct());
    let body = std::fs::read(slide_dir("ihc-full").join("level-3.dcm")).unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&http.post(format!("{direct}/instances")).body(body).send().unwrap().bytes().unwrap()).unwrap();
    let modify =
        serde_json::json!({"Replace": {"SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.1", "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.2"}, "Force": true});
    let copy =
        http.post(format!("{direct}/instances/{}/modify", stored["ID"].as_str().unwrap())).body(modify.to_string()).send().unwrap().bytes().unwrap().to_vec();
    assert!(http.post(format!("{direct}/instances")).body(copy).send().unwrap().status().is_success());
    let err = Slide::open_dicomweb(&study_url, &DicomWebOptions::default()).unwrap_err().to_string();
    assert!(err.contains("holds 2 slide-microscopy series"), "{err}");
    assert!(err.contains(&format!("/series/{}", local.series_instance_uid())) && err.contains("/series/1.2.826.0.1.3680043.8.498.1 "), "{err}");

    // A study with no such series.
    let none = format!("{}/dicom-web/studies/1.2.3.999", server.base());
    let err = Slide::open_dicomweb(&none, &DicomWebOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no slide-microscopy") || err.contains("not found"), "{err}");
}

#[test]
fn a_failed_request_does_not_poison_later_reads_of_its_frames() {
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let instances = instance_count(&local);
    // The first frames request after opening (one per instance) gets a 400: the grid's first
    // band, all its frames in one request, fails.
    let frames_requests = Arc::new(AtomicUsize::new(0));
    let seen = frames_requests.clone();
    let once = proxy(&server, Duration::ZERO, move |_, path| (path.contains("/frames/") && seen.fetch_add(1, Ordering::SeqCst) == instances).then_some(400));
    let options = DicomWebOptions { max_concurrent_requests: 1, ..Default::default() };
    let remote = Slide::open_dicomweb(&once.series_url(&local), &options).unwrap();
    let grid = remote.level(0).unwrap().patch_grid(PatchGridOptions::default()).unwrap();
    let err = grid.rows_iter().next().unwrap().unwrap_err().to_string();
    assert!(err.contains("HTTP 400") && err.contains("while reading frames"), "{err}");
    // Reading again asks again: every frame of that band comes, none with the old error.
    assert_same_grid(&remote, &local);
}

#[test]
fn an_answer_in_another_transfer_syntax_is_refused() {
    const JPEG: &str = "1.2.840.10008.1.2.4.50";
    const J2K: &str = "1.2.840.10008.1.2.4.90";
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let instances = instance_count(&local);
    let frames_requests = AtomicUsize::new(0);
    // After opening, frames answers claim JPEG 2000 while carrying the stored JPEG frames.
    let lying = relay(&server, move |path, forward| {
        let (status, ct, body) = forward();
        if path.contains("/frames/") && frames_requests.fetch_add(1, Ordering::SeqCst) >= instances {
            // On the answer and on each part (same length: Content-Length stays right).
            return (status, ct.replace(JPEG, J2K), relabel(body, JPEG, J2K));
        }
        (status, ct, body)
    });
    let remote = Slide::open_dicomweb(&lying.series_url(&local), &DicomWebOptions::default()).unwrap();
    let err = match remote.level(0).unwrap().read_region(300, 300, 10, 10) {
        Ok(_) => panic!("a relabelled answer was decoded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("in transfer syntax {J2K}, but this instance's frames came as {JPEG} before")), "{err}");
}

#[test]
fn a_relative_icc_bulk_data_uri_is_resolved_and_a_missing_profile_is_only_a_warning() {
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let icc = local.level(0).unwrap().info().icc_profile.clone();
    assert!(icc.is_some());
    // The metadata's absolute BulkDataURIs (…/instances/<sop>/bulk/…) made relative to each
    // instance URL (../<sop>/bulk/…), and bulk data answered by this proxy, or refused.
    let prefix = format!("\"{}/instances/", series_url(&server, &local));
    for refuse in [false, true] {
        let prefix = prefix.clone();
        let relative = relay(&server, move |path, forward| {
            let (status, ct, body) = forward();
            if path.ends_with("/metadata") {
                return (status, ct, String::from_utf8(body).unwrap().replace(&prefix, "\"../").into_bytes());
            }
            if refuse && path.contains("/bulk/") {
                return (500, "text/plain".into(), b"no".to_vec());
            }
            (status, ct, body)
        });
        let options = DicomWebOptions { attempts: 1, ..Default::default() };
        let remote = Slide::open_dicomweb(&relative.series_url(&local), &options).unwrap();
        let got = remote.level(0).unwrap().info().icc_profile.clone();
        if refuse {
            assert_eq!(got, None);
            assert!(remote.warnings().iter().any(|w| w.contains("ICC profile not fetched")), "{:?}", remote.warnings());
        } else {
            assert_eq!(got, icc);
        }
    }
}

#[test]
fn a_transfer_syntax_given_only_on_the_parts_is_used_and_must_agree() {
    // The standard allows the transfer syntax on each part rather than on the whole answer
    // (Orthanc gives both): the relay drops it from Orthanc's answer header.
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    const JPEG: &str = "1.2.840.10008.1.2.4.50";
    for disagree in [false, true] {
        let per_part = relay(&server, move |path, forward| {
            let (status, ct, body) = forward();
            if !path.contains("/frames/") {
                return (status, ct, body);
            }
            assert!(ct.contains(JPEG), "{ct}");
            let ct = ct.replace(&format!("; transfer-syntax={JPEG}"), "");
            // Disagreeing: every part after the first claims JPEG 2000.
            let body = if disagree { relabel_from(body, JPEG, "1.2.840.10008.1.2.4.90", 1) } else { body };
            (status, ct, body)
        });
        let options = DicomWebOptions { frames_per_request: 16, ..Default::default() };
        let remote = Slide::open_dicomweb(&per_part.series_url(&local), &options).unwrap();
        assert_eq!(remote.level(0).unwrap().info().transfer_syntax, JPEG);
        if disagree {
            // The grid asks for a band of frames at once: a many-part answer.
            let grid = remote.level(0).unwrap().patch_grid(PatchGridOptions::default()).unwrap();
            let err = match grid.rows_iter().next().unwrap() {
                Ok(_) => panic!("a band with disagreeing parts was read"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("part 2 is in transfer syntax 1.2.840.10008.1.2.4.90"), "{err}");
        } else {
            assert_same_grid(&remote, &local);
        }
    }
}

#[test]
fn retry_after_is_honoured() {
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let first = AtomicUsize::new(0);
    // The first frames request: 503 with Retry-After: 1 (extra header lines ride on the
    // fake server's Content-Type).
    let busy = relay(&server, move |path, forward| {
        if path.contains("/frames/") && first.fetch_add(1, Ordering::SeqCst) == 0 {
            return (503, "text/plain\r\nRetry-After: 1".into(), b"busy".to_vec());
        }
        forward()
    });
    let started = std::time::Instant::now();
    let remote = Slide::open_dicomweb(&busy.series_url(&local), &DicomWebOptions::default()).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950), "retried after {:?}, before the server's Retry-After", started.elapsed());
    assert_eq!(remote.levels().len(), local.levels().len());
}

#[test]
fn jpeg_2000_and_uncompressed_slides_read_the_same_over_dicomweb() {
    let Some(server) = Orthanc::start(Setup::default()) else { return };
    for name in ["ihc-j2k", "ihc-raw", "ihc-raw-implicit"] {
        server.stow(&slide_dir(name));
        let local = Slide::open(slide_dir(name)).unwrap();
        let remote = Slide::open_dicomweb(&series_url(&server, &local), &DicomWebOptions::default()).unwrap();
        assert_eq!(remote.levels().len(), local.levels().len(), "{name}");
        for (r, l) in remote.levels().iter().zip(local.levels()) {
            assert_eq!((r.width(), r.height()), (l.width(), l.height()), "{name}");
            assert!(r.read_all().unwrap() == l.read_all().unwrap(), "{name} level {} differs", l.index());
        }
    }
}

#[test]
fn the_grid_asks_for_its_frames_in_few_full_requests() {
    // With the grid's hints (band + look-ahead), level 0's frames come in as few requests as
    // `frames_per_request` allows, not one (or one per band) at a time.
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let instances = instance_count(&local);
    let frames = {
        let (across, down) = local.level(0).unwrap().tile_grid();
        (across * down) as usize
    };
    for per_request in [64usize, 16] {
        let counting = proxy(&server, Duration::ZERO, |_, _| None);
        let options = DicomWebOptions { frames_per_request: per_request, ..Default::default() };
        let remote = Slide::open_dicomweb(&counting.series_url(&local), &options).unwrap();
        assert_same_level0_grid(&remote, &local);
        // The metadata, each instance's first frame, then level 0's other frames.
        let expected = 1 + instances + (frames - 1).div_ceil(per_request);
        let sent = counting.requests.load(Ordering::SeqCst);
        assert!(sent <= expected + 1, "{per_request} frames per request: {sent} requests, expected about {expected}");
    }
}

#[test]
fn one_cache_bounds_the_whole_slide() {
    // Fetched frames of every instance and decoded tiles share one cache per slide, bounded in
    // bytes over all of them (it was per instance); a cache far smaller than the slide still
    // reads every pixel right, fetching again what it evicted.
    let Some((server, local)) = serving(Setup::default(), "ihc-full") else { return };
    let cap = 1 << 20;
    let options = DicomWebOptions { cache_bytes: cap, frames_per_request: 16, ..Default::default() };
    let remote = Slide::open_dicomweb(&series_url(&server, &local), &options).unwrap();
    let cache = remote.level(0).unwrap().cache().clone();
    assert_eq!(cache.capacity(), cap);
    for image in remote.levels().iter().chain(remote.associated().iter().map(|a| &a.image)) {
        assert!(Arc::ptr_eq(image.cache(), &cache), "level {} has a cache of its own", image.index());
    }
    assert_same_level0_grid(&remote, &local);
    for (r, l) in remote.levels().iter().zip(local.levels()) {
        assert!(r.read_all().unwrap() == l.read_all().unwrap(), "level {}", l.index());
        assert!(cache.bytes() <= cap, "{} bytes held after level {}, cap {cap}", cache.bytes(), l.index());
    }
    let label_bytes = |s: &Slide| s.associated()[0].image.read_all().unwrap();
    assert!(label_bytes(&remote) == label_bytes(&local));
    assert!(cache.bytes() <= cap && !cache.is_empty(), "{} bytes, {} entries", cache.bytes(), cache.len());
}
