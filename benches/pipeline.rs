//! End to end: local fixture slide → tissue mask → patches → Path Foundation ViT-S/16 →
//! Parquet + k-means heatmap, on CPU (and on the GPU when built with `--features cuda`).
//! Throughput is embeddings per second; ×3600 for embeddings/hour.
//!
//! `cargo bench --bench pipeline`; the peer is `benches/peers/python_pipeline.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::path_foundation;
use haidef_wsi::wsi::Slide;
use haidef_wsi::{run, LevelChoice, PipelineOptions};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

fn bench(c: &mut Criterion, device: Device, dtype: DType, batch: usize, label: &str) {
    let slide = Slide::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/slides/ihc-full")).unwrap();
    let model = path_foundation::untrained(&device, dtype).unwrap();
    let out = std::env::temp_dir().join(format!("haidef-bench-pipeline-{label}"));
    // Level 0, every patch: the same 88 patches as the Python peer.
    let opts = PipelineOptions { level: LevelChoice::Index(0), all_patches: true, batch_size: batch, ..Default::default() };
    let n = run(&slide, &model, &out, &opts, &AtomicBool::new(false), &|_, _| {}).unwrap().patches_embedded;
    let mut group = c.benchmark_group("embeddings_per_hour");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("{label}_level0_{n}_patches_batch{batch}"), |b| {
        b.iter(|| {
            let s = run(&slide, &model, &out, &opts, &AtomicBool::new(false), &|_, _| {}).unwrap();
            assert_eq!(s.patches_embedded, n);
            s
        })
    });
    group.finish();
    let s = run(&slide, &model, &out, &opts, &AtomicBool::new(false), &|_, _| {}).unwrap();
    eprintln!(
        "{label}: {:.0} embeddings/hour; busy: read {:.2} s, encode {:.2} s (waited {:.2} s), write {:.3} s of {:.2} s",
        s.patches_per_second() * 3600.0,
        s.stages.read.as_secs_f64(),
        s.stages.encode.as_secs_f64(),
        s.stages.encode_waited.as_secs_f64(),
        s.stages.write.as_secs_f64(),
        s.seconds
    );
}

fn cpu(c: &mut Criterion) {
    haidef_wsi::encoders::tune_cpu_inference();
    bench(c, Device::Cpu, DType::F32, 32, "cpu_f32");
}

#[cfg(feature = "cuda")]
fn gpu(c: &mut Criterion) {
    bench(c, Device::new_cuda(0).expect("CUDA device 0"), DType::BF16, 256, "cuda_bf16");
}

#[cfg(not(feature = "cuda"))]
fn gpu(_: &mut Criterion) {}

criterion_group!(benches, cpu, gpu);
criterion_main!(benches);
