//! DICOMweb throughput from a real Orthanc (+ DICOMweb plugin) on loopback: the full level-0
//! patch grid of the biggest fixture read over WADO-RS, with 1 frame per request and with 64,
//! each pass on a freshly opened slide (empty caches). Needs the Debian packages `orthanc
//! orthanc-dicomweb`. The peer is `benches/peers/wsidicom_web.py`, run against the same server:
//! this bench prints the series URL and keeps the server up for `HAIDEF_KEEP_ORTHANC` seconds.
//!
//! `cargo bench --bench dicomweb`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haidef_wsi::wsi::{DicomWebOptions, PatchGridOptions, Slide};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Orthanc(Child, PathBuf);

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start(port: u16) -> Orthanc {
    let dir = std::env::temp_dir().join(format!("haidef-bench-orthanc-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let config = serde_json::json!({
        "HttpPort": port, "DicomServerEnabled": false, "RemoteAccessAllowed": false,
        "StorageDirectory": dir.join("db"), "IndexDirectory": dir.join("db"),
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "Host": format!("127.0.0.1:{port}") }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = Command::new("/usr/sbin/Orthanc").arg(dir.join("config.json")).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("Orthanc (apt install orthanc orthanc-dicomweb)");
    let server = Orthanc(child, dir);
    let http = reqwest::blocking::Client::new();
    let t = Instant::now();
    while http.get(format!("http://127.0.0.1:{port}/system")).send().map(|r| !r.status().is_success()).unwrap_or(true) {
        assert!(t.elapsed() < Duration::from_secs(20), "Orthanc did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn bench(c: &mut Criterion) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = start(port);
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/slides/ihc-full");
    let http = reqwest::blocking::Client::new();
    for e in std::fs::read_dir(&folder).unwrap() {
        let body = std::fs::read(e.unwrap().path()).unwrap();
        assert!(http.post(format!("http://127.0.0.1:{port}/instances")).body(body).send().unwrap().status().is_success());
    }
    let local = Slide::open(&folder).unwrap();
    let url = format!("http://127.0.0.1:{port}/dicom-web/studies/{}/series/{}", local.study_instance_uid(), local.series_instance_uid());
    let n = local.level(0).unwrap().patch_grid(PatchGridOptions::default()).unwrap().len();
    let mut group = c.benchmark_group("dicomweb");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for per_request in [1usize, 64] {
        let options = DicomWebOptions { frames_per_request: per_request, ..Default::default() };
        group.bench_function(format!("patch_grid_level0_{n}_patches_{per_request}_frames_per_request"), |b| {
            b.iter(|| {
                // A fresh slide each pass: nothing cached.
                let slide = Slide::open_dicomweb(&url, &options).unwrap();
                let grid = slide.level(0).unwrap().patch_grid(PatchGridOptions::default()).unwrap();
                let count: usize = grid.rows_iter().map(|r| r.unwrap().len()).sum();
                assert_eq!(count, n);
            })
        });
    }
    group.finish();
    if let Some(secs) = std::env::var("HAIDEF_KEEP_ORTHANC").ok().and_then(|s| s.parse::<u64>().ok()) {
        eprintln!("series URL for the peer: {url}");
        std::thread::sleep(Duration::from_secs(secs));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
