//! The DICOMweb source against a real server: Orthanc with its DICOMweb plugin (Debian packages
//! `orthanc orthanc-dicomweb`, installed by .ci/run), started here on a free loopback port with
//! a temporary storage directory, loaded with the fixture slide, stopped at the end.

mod common;

use common::slide_dir;
use haidef_wsi_dicom::{Auth, DicomWebOptions, PatchGridOptions, Slide, WsiError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const ORTHANC: &str = "/usr/sbin/Orthanc";
const PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

struct Orthanc {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

/// Starts Orthanc (with basic authentication for `alice` when `auth`), or returns None (with a
/// message) where it is not installed and this is not CI.
fn start(auth: bool) -> Option<Orthanc> {
    if !Path::new(ORTHANC).exists() || !Path::new(PLUGIN).exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must install orthanc and orthanc-dicomweb (.ci/run does)");
        eprintln!("Orthanc or its DICOMweb plugin is not installed: DICOMweb tests not run");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("haidef-orthanc-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let config = serde_json::json!({
        "Name": "haidef-wsi-test", "HttpPort": port, "DicomServerEnabled": false,
        "RemoteAccessAllowed": false, "AuthenticationEnabled": auth,
        "RegisteredUsers": { USER: PASSWORD },
        "StorageDirectory": dir.join("db"), "IndexDirectory": dir.join("db"),
        "Plugins": [PLUGIN],
        "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "Host": format!("127.0.0.1:{port}") }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let log = std::fs::File::create(dir.join("orthanc.log")).unwrap();
    let child = Command::new(ORTHANC).arg(dir.join("config.json")).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    let server = Orthanc { child, port, dir };
    let http = reqwest::blocking::Client::new();
    let start = Instant::now();
    while http.get(format!("http://127.0.0.1:{port}/system")).basic_auth(USER, Some(PASSWORD)).send().map(|r| !r.status().is_success()).unwrap_or(true) {
        assert!(start.elapsed() < Duration::from_secs(20), "Orthanc did not start; see {}", server.dir.join("orthanc.log").display());
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

fn upload(server: &Orthanc, folder: &Path) {
    let http = reqwest::blocking::Client::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let body = std::fs::read(entry.unwrap().path()).unwrap();
        let r = http.post(format!("http://127.0.0.1:{}/instances", server.port)).basic_auth(USER, Some(PASSWORD)).body(body).send().unwrap();
        assert!(r.status().is_success(), "upload: {}", r.status());
    }
}

#[test]
fn dicomweb_reads_exactly_what_the_files_hold() {
    let Some(server) = start(false) else { return };
    upload(&server, &slide_dir("ihc-sparse"));
    let local = Slide::open(slide_dir("ihc-sparse")).unwrap();
    let url = format!(
        "http://127.0.0.1:{}/dicom-web/studies/{}/series/{}",
        server.port,
        local.study_instance_uid(),
        local.series_instance_uid()
    );
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
    // The ICC profile, given as a BulkDataURI in the metadata, is fetched.
    let icc_local = local.level(0).unwrap().info().icc_profile.clone();
    assert!(icc_local.as_ref().is_some_and(|p| p.len() > 1000), "fixture carries a profile");
    assert_eq!(remote.level(0).unwrap().info().icc_profile, icc_local);
    // A region crossing frame corners on another level.
    let (r, l) = (remote.level(1).unwrap(), local.level(1).unwrap());
    assert!(r.read_region(200, 230, 300, 290).unwrap() == l.read_region(200, 230, 300, 290).unwrap());

    // An unknown series is a clear not-found.
    let bad = format!("http://127.0.0.1:{}/dicom-web/studies/{}/series/1.2.3.4", server.port, local.study_instance_uid());
    let err = Slide::open_dicomweb(&bad, &DicomWebOptions::default()).unwrap_err();
    assert!(matches!(err, WsiError::DicomWeb { .. }) && err.to_string().contains("not found"), "{err}");
}

fn series_url(server: &Orthanc, local: &Slide) -> String {
    format!("http://127.0.0.1:{}/dicom-web/studies/{}/series/{}", server.port, local.study_instance_uid(), local.series_instance_uid())
}

#[test]
fn basic_auth_works_and_wrong_credentials_are_clear() {
    let Some(server) = start(true) else { return };
    upload(&server, &slide_dir("ihc-full"));
    let local = Slide::open(slide_dir("ihc-full")).unwrap();
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
    let Some(mut server) = start(false) else { return };
    upload(&server, &slide_dir("ihc-full"));
    let local = Slide::open(slide_dir("ihc-full")).unwrap();
    let options = DicomWebOptions { attempts: 2, frames_per_request: 4, ..Default::default() };
    let remote = Slide::open_dicomweb(&series_url(&server, &local), &options).unwrap();
    // Frame 1 of each level was read while opening; read one more, then kill the server.
    assert!(remote.level(0).unwrap().read_region(0, 0, 300, 10).is_ok());
    let _ = server.child.kill();
    let _ = server.child.wait();
    let err = remote.level(0).unwrap().read_region(1000, 1000, 10, 10).unwrap_err().to_string();
    assert!(err.contains("gave up after 2 attempts") && err.contains("while reading frames"), "{err}");
}

/// A one-connection-at-a-time HTTP server answering every request with `answer(path)`.
fn fake_server(answer: impl Fn(&str) -> (String, Vec<u8>) + Send + 'static) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (content_type, body) = answer(&path);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

#[test]
fn a_malformed_multipart_answer_is_an_error_not_a_panic() {
    // Metadata from Orthanc, then frames answers that are broken in different ways.
    let Some(server) = start(false) else { return };
    upload(&server, &slide_dir("ihc-full"));
    let local = Slide::open(slide_dir("ihc-full")).unwrap();
    let metadata = reqwest::blocking::Client::new()
        .get(format!("{}/metadata", series_url(&server, &local)))
        .header("Accept", "application/dicom+json")
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    for (what, ct, body) in [
        ("garbage", "multipart/related; type=\"application/octet-stream\"; boundary=XYZ", b"garbage".to_vec()),
        ("truncated", "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.4.50; boundary=XYZ", b"--XYZ\r\nContent-Length: 500\r\n\r\nshort".to_vec()),
        ("not multipart", "application/json", b"{}".to_vec()),
    ] {
        let meta = metadata.clone();
        let port = fake_server(move |path| {
            if path.ends_with("/metadata") {
                ("application/dicom+json".into(), meta.clone())
            } else {
                (ct.to_string(), body.clone())
            }
        });
        let url = format!("http://127.0.0.1:{port}/dicom-web/studies/{}/series/{}", local.study_instance_uid(), local.series_instance_uid());
        let err = Slide::open_dicomweb(&url, &DicomWebOptions::default()).unwrap_err();
        assert!(matches!(err, WsiError::DicomWeb { .. }), "{what}: {err:?}");
    }
}

#[test]
fn a_syntax_we_cannot_decode_is_decoded_by_the_server() {
    // Orthanc transcodes level 2 to JPEG-LS (which this crate does not decode) and stores only
    // that; reading it over DICOMweb must fall back to Explicit VR Little Endian from the server.
    let Some(server) = start(false) else { return };
    let http = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{}", server.port);
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
