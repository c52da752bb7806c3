//! Peak memory of the slide job on a large slide: a TILED_FULL pyramid tiled from the fixture
//! (`benches/support/tiled_slide.rs`, default 160×128 frames of 256² = 40,960 × 32,768 px,
//! 26,642 patches of 224²), every level-0 patch embedded by a small untrained ViT (width 64,
//! depth 2: the model is not what is measured), Parquet + k-means + heatmaps written. Prints the
//! process's peak resident set (VmHWM) before and after, and what k-means keeps. The first run
//! builds the slide (in /tmp) and stops; the next runs measure the job alone.
//!
//! `cargo bench --bench memory` (`HAIDEF_BENCH_TILED=ACROSSxDOWN` for another size).

#[path = "support/tiled_slide.rs"]
mod tiled_slide;

use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::VitConfig;
use haidef_wsi::encoders::{Encoder, InputSpec, VitEncoder};
use haidef_wsi::wsi::Slide;
use haidef_wsi::{LevelChoice, PipelineOptions, SlideJob};
use std::path::PathBuf;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(f64::NAN);
    kb / 1024.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks harness=false benches for their names
    }
    haidef_wsi::encoders::tune_cpu_inference();
    let (across, down) = std::env::var("HAIDEF_BENCH_TILED")
        .ok()
        .and_then(|v| {
            let (a, d) = v.split_once('x')?;
            Some((a.parse().ok()?, d.parse().ok()?))
        })
        .unwrap_or((160u32, 128u32));
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = std::env::temp_dir().join(format!("haidef-tiled-{across}x{down}"));
    // Building the slide holds its frames in memory: build it in one run, measure in the next.
    if !dir.join("level-0.dcm").exists() {
        let t = std::time::Instant::now();
        tiled_slide::build(&fixtures, &dir, across, down);
        println!(
            "built the {across}x{down}-frame slide in {:.1} s (peak RSS {:.0} MiB); run again to measure the job alone",
            t.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
        return;
    }
    let slide_dir = dir;
    let cfg = VitConfig { width: 64, depth: 2, heads: 2, mlp_dim: 256, ..VitConfig::vit_s16() };
    let model = VitEncoder::untrained("tiny", InputSpec::rgb_unit(224), cfg, 1, &Device::Cpu, DType::F32).unwrap();
    let slide = Slide::open(&slide_dir).unwrap();
    let before = peak_rss_mib();
    let out = std::env::temp_dir().join("haidef-bench-memory");
    let opts = PipelineOptions::default().level(LevelChoice::Index(0)).all_patches(true);
    let s = SlideJob::new(&slide, &model, &out).options(opts).batch_size(32).run().unwrap();
    let after = peak_rss_mib();
    let kept_mib = (s.embedded * (model.embedding_dim() * 4 + 20)) as f64 / (1 << 20) as f64;
    println!(
        "memory: {} patches of level 0 ({}x{} px) in {:.1} s; peak RSS {before:.0} MiB before the job, {after:.0} MiB after; \
         k-means kept {kept_mib:.1} MiB of embeddings and positions (dim {})",
        s.embedded,
        slide.levels()[0].width(),
        slide.levels()[0].height(),
        s.seconds,
        model.embedding_dim()
    );
}
