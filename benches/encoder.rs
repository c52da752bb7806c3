//! Encoder throughput: Path Foundation's ViT-S/16 (seeded weights: speed does not depend on
//! them) on CPU in f32 at batch 8 and 32 and, built with `--features cuda`, on the GPU in bf16
//! at batch 256 and 1024. Packing of RGB8 patches into the input tensor is measured separately.
//!
//! `cargo bench --bench encoder`; the peer is `benches/peers/torch_vit_cpu.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::{path_foundation, Encoder};
use haidef_wsi::encoders::{Batcher, ImageRef};

fn patches(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| (0..224 * 224 * 3).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()).collect()
}

fn run(c: &mut Criterion, device: Device, dtype: DType, batches: &[usize], label: &str) {
    let model = path_foundation::untrained(&device, dtype).expect("model");
    let mut group = c.benchmark_group(format!("encoder_{label}"));
    group.sample_size(10);
    for &b in batches {
        let data = patches(b);
        let images: Vec<ImageRef<'_>> = data.iter().map(|p| ImageRef::rgb(224, 224, p)).collect();
        let mut batcher = Batcher::new(model.input_spec().clone(), b, device.clone(), dtype).unwrap();
        let batch = batcher.pack(&images).unwrap();
        group.throughput(Throughput::Elements(b as u64));
        group.bench_function(format!("vit_s16_batch{b}"), |bench| {
            bench.iter(|| {
                let e = model.embed(&batch).unwrap();
                device.synchronize().unwrap();
                e
            })
        });
        group.bench_function(format!("pack_batch{b}"), |bench| bench.iter(|| batcher.pack(&images).unwrap()));
    }
    group.finish();
}

fn cpu(c: &mut Criterion) {
    haidef_wsi::encoders::tune_cpu_inference();
    run(c, Device::Cpu, DType::F32, &[8, 32], "cpu_f32");
}

#[cfg(feature = "cuda")]
fn gpu(c: &mut Criterion) {
    let device = Device::new_cuda(0).expect("CUDA device 0");
    run(c, device, DType::BF16, &[256, 1024], "cuda_bf16");
}

#[cfg(not(feature = "cuda"))]
fn gpu(_: &mut Criterion) {}

criterion_group!(benches, cpu, gpu);
criterion_main!(benches);
