//! DICOMweb throughput from a real Orthanc (+ DICOMweb plugin) on loopback: the full level-0
//! patch grid of the biggest fixture read over WADO-RS, each pass on a freshly opened slide
//! (empty caches), for 1, 8 or 64 frames per request and 1 or 4 requests in flight, on
//! loopback and behind a door that adds 20 ms before each answer (a distant server). Needs the
//! Debian packages `orthanc orthanc-dicomweb`; the server is started by the same harness as the
//! tests (`wsi/tests/orthanc/mod.rs`). The peer is `benches/peers/wsidicom_web.py`, run against
//! the same server: this bench prints the series URL and keeps the server up for
//! `HAIDEF_KEEP_ORTHANC` seconds.
//!
//! `cargo bench --bench dicomweb`

#[path = "../wsi/tests/orthanc/mod.rs"]
mod orthanc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haidef_wsi::wsi::{DicomWebOptions, PatchGridOptions, Slide};
use orthanc::{Orthanc, Setup};
use std::time::Duration;

/// (frames per request, requests in flight).
type Case = (usize, usize);

fn bench(c: &mut Criterion) {
    let server = Orthanc::start(Setup::default()).expect("Orthanc (apt install orthanc orthanc-dicomweb)");
    let folder = orthanc::fixtures().join("slides/ihc-full");
    server.stow(&folder);
    let local = Slide::open(&folder).unwrap();
    let url = server.series_url(local.study_instance_uid(), local.series_instance_uid());
    let level = local.level(0).unwrap();
    let n = level.patch_grid(PatchGridOptions::default()).unwrap().len();
    let (across, down) = level.tile_grid();
    let frames = across * down;
    let mut group = c.benchmark_group("dicomweb");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    // On loopback, then behind a door that adds 20 ms before each answer (a same-region cloud
    // store's round trip), where requests in flight matter.
    let slow_url = url.replacen(&server.base(), &server.slow_door(Duration::from_millis(20)), 1);
    let runs: [(&str, &str, &[Case]); 2] =
        [(&url, "", &[(1, 1), (1, 4), (8, 1), (8, 4), (64, 1), (64, 4)]), (&slow_url, "_20ms_latency", &[(8, 1), (8, 4), (64, 1), (64, 4)])];
    for (target, label, cases) in runs {
        for &(per_request, in_flight) in cases {
            let options = DicomWebOptions { frames_per_request: per_request, max_concurrent_requests: in_flight, ..Default::default() };
            let name = format!("patch_grid_level0_{n}_patches_{frames}_frames{label}/{per_request}_frames_per_request/{in_flight}_in_flight");
            group.bench_function(name, |b| {
                b.iter(|| {
                    // A fresh slide each pass: nothing cached.
                    let slide = Slide::open_dicomweb(target, &options).unwrap();
                    let grid = slide.level(0).unwrap().patch_grid(PatchGridOptions::default()).unwrap();
                    let count: usize = grid.rows_iter().map(|r| r.unwrap().len()).sum();
                    assert_eq!(count, n);
                })
            });
        }
    }
    group.finish();
    if let Some(secs) = std::env::var("HAIDEF_KEEP_ORTHANC").ok().and_then(|s| s.parse::<u64>().ok()) {
        eprintln!("series URL for the peer: {url}");
        eprintln!("the same behind 20 ms of latency: {slow_url}");
        std::thread::sleep(Duration::from_secs(secs));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
