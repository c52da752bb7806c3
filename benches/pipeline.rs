//! End to end: local fixture slide → tissue mask → patches → Path Foundation ViT-S/16 →
//! Parquet + k-means heatmap, on CPU (and on the GPU when built with `--features cuda`).
//! Throughput is embeddings per second; ×3600 for embeddings/hour.
//!
//! `cargo bench --bench pipeline`; the peer is `benches/peers/python_pipeline.py`.
//!
//! `HAIDEF_BENCH_TILED=ACROSSxDOWN` (e.g. `160x128`) runs the GPU bench on a large slide built
//! from the fixture by tiling (`benches/support/tiled_slide.rs`) instead of the 88-patch fixture.

#[path = "support/tiled_slide.rs"]
mod tiled_slide;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::path_foundation;
use haidef_wsi::wsi::Slide;
use haidef_wsi::{LevelChoice, PipelineOptions, SlideJob};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn bench(c: &mut Criterion, slide: &Path, device: Device, dtype: DType, batch: usize, label: &str) {
    let slide = Slide::open(slide).unwrap();
    let model = path_foundation::untrained(&device, dtype).unwrap();
    let out = std::env::temp_dir().join(format!("haidef-bench-pipeline-{label}"));
    // Level 0, every patch (on the fixture: the same 88 patches as the Python peer).
    let opts = PipelineOptions::default().level(LevelChoice::Index(0)).all_patches(true);
    let job = || SlideJob::new(&slide, &model, &out).options(opts.clone()).batch_size(batch);
    let n = job().run().unwrap().embedded;
    let mut group = c.benchmark_group("embeddings_per_hour");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("{label}_level0_{n}_patches_batch{batch}"), |b| {
        b.iter(|| {
            let s = job().run().unwrap();
            assert_eq!(s.embedded, n);
            s
        })
    });
    group.finish();
    let s = job().run().unwrap();
    eprintln!(
        "{label}: {:.0} embeddings/hour; busy: read {:.2} s, encode {:.2} s (waited {:.2} s), write {:.3} s of {:.2} s",
        s.per_second() * 3600.0,
        s.stages.read.as_secs_f64(),
        s.stages.encode.as_secs_f64(),
        s.stages.encode_waited.as_secs_f64(),
        s.stages.write.as_secs_f64(),
        s.seconds
    );
}

fn cpu(c: &mut Criterion) {
    haidef_wsi::encoders::tune_cpu_inference();
    bench(c, &fixtures().join("slides/ihc-full"), Device::Cpu, DType::F32, 32, "cpu_f32");
}

#[cfg(feature = "cuda")]
fn gpu(c: &mut Criterion) {
    let device = Device::new_cuda(0).expect("CUDA device 0");
    bench(c, &fixtures().join("slides/ihc-full"), device.clone(), DType::BF16, 256, "cuda_bf16");
    if let Some((across, down)) = std::env::var("HAIDEF_BENCH_TILED").ok().and_then(|v| {
        let (a, d) = v.split_once('x')?;
        Some((a.parse().ok()?, d.parse().ok()?))
    }) {
        let dir = std::env::temp_dir().join(format!("haidef-tiled-{across}x{down}"));
        let t = std::time::Instant::now();
        let slide = tiled_slide::build(&fixtures(), &dir, across, down);
        eprintln!("built the {across}x{down}-frame tiled slide in {:.1} s", t.elapsed().as_secs_f64());
        bench(c, &slide, device, DType::BF16, 256, &format!("cuda_bf16_tiled_{across}x{down}"));
    }
}

#[cfg(not(feature = "cuda"))]
fn gpu(_: &mut Criterion) {}

criterion_group!(benches, cpu, gpu);
criterion_main!(benches);
