//! Cohort throughput against the single-slide pipeline: the same tiled slides embedded by
//! `CohortJob` (one shard, manifest → staging → verified, renamed outputs) and by `SlideJob`
//! one slide after another (open, run), both with the same model and options, runs
//! interleaved; prints embeddings/hour of each run and the median ratio. The cohort's extra
//! work per slide is its bookkeeping (settings check, SHA-256 of the Parquet file, renames,
//! records), which should cost under 10% (issue 15).
//!
//! `cargo bench --bench cohort_throughput` (defaults: 4 slides of 8×8 frames, 81 patches each at level 0,
//! 3 rounds); `HAIDEF_COHORT_SLIDES`, `HAIDEF_COHORT_FRAMES` (frames across and down),
//! `HAIDEF_COHORT_ROUNDS`, `HAIDEF_DEVICE=cuda` (bf16, batch 256).

#[path = "support/tiled_slide.rs"]
mod tiled_slide;

use haidef_wsi::cohort::{CohortJob, Manifest, Shard};
use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::{device_name, registry};
use haidef_wsi::wsi::Slide;
use haidef_wsi::{LevelChoice, PipelineOptions, SlideJob};
use std::path::PathBuf;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    haidef_wsi::encoders::tune_cpu_inference();
    let (slides, frames, rounds) = (env("HAIDEF_COHORT_SLIDES", 4), env("HAIDEF_COHORT_FRAMES", 8) as u32, env("HAIDEF_COHORT_ROUNDS", 3));
    let (device, dtype, batch) = match std::env::var("HAIDEF_DEVICE").as_deref() {
        Ok("cuda") => (Device::new_cuda(0).expect("HAIDEF_DEVICE=cuda: no CUDA device (build with --features cuda)"), DType::BF16, 256),
        _ => (Device::Cpu, DType::F32, 32),
    };
    let model = registry::find("path-foundation").unwrap().untrained(&device, dtype).unwrap();
    let work = std::env::temp_dir().join("haidef-bench-cohort");
    let _ = std::fs::remove_dir_all(&work);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dirs: Vec<PathBuf> = (0..slides).map(|i| tiled_slide::build(&fixtures, &work.join(format!("slide-{i}")), frames, frames)).collect();
    let csv: String = std::iter::once("path,slide_id\n".to_string()).chain(dirs.iter().enumerate().map(|(i, d)| format!("{},s{i}\n", d.display()))).collect();
    std::fs::write(work.join("manifest.csv"), csv).unwrap();
    let manifest = Manifest::open(&work.join("manifest.csv")).unwrap();
    let opts = PipelineOptions::default().level(LevelChoice::Index(0)).all_patches(true);
    eprintln!("{slides} slides of {frames}x{frames} frames, device {} {dtype:?}, batch {batch}", device_name(&device));

    let pipeline = |round: usize| {
        let start = Instant::now();
        let mut rows = 0;
        for (i, d) in dirs.iter().enumerate() {
            let slide = Slide::open(d).unwrap();
            rows +=
                SlideJob::new(&slide, model.as_ref(), work.join(format!("single-{round}-{i}"))).options(opts.clone()).batch_size(batch).run().unwrap().embedded;
        }
        rows as f64 * 3600.0 / start.elapsed().as_secs_f64()
    };
    let cohort = |round: usize| {
        let out = work.join(format!("cohort-{round}"));
        let start = Instant::now();
        let report = CohortJob::new(&manifest, model.as_ref(), &out, Shard::new(0, 1).unwrap()).options(opts.clone()).batch_size(batch).run().unwrap();
        assert!(report.complete(), "{report:?}");
        report.rows as f64 * 3600.0 / start.elapsed().as_secs_f64()
    };
    pipeline(0); // warm-up (page cache, allocator)
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let (p, c) = if round % 2 == 1 {
            let p = pipeline(round);
            (p, cohort(round))
        } else {
            let c = cohort(round);
            (pipeline(round), c)
        };
        eprintln!("round {round}: single-slide pipeline {p:.0} embeddings/hour, cohort {c:.0} embeddings/hour, ratio {:.3}", c / p);
        ratios.push(c / p);
    }
    ratios.sort_by(f64::total_cmp);
    eprintln!("median ratio cohort / single-slide pipeline: {:.3} over {rounds} interleaved rounds", ratios[ratios.len() / 2]);
    let _ = std::fs::remove_dir_all(&work);
}
