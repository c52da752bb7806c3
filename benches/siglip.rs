//! SigLIP tower throughput (MedSigLIP-448's widths, seeded weights: speed does not depend on
//! them) on CPU in f32: the vision tower on 448×448 images (batch 2) and the text tower on
//! 64-token texts (batch 16), at `HAIDEF_SIGLIP_DEPTH` layers per tower (default 4; the full
//! model has 27 and costs in proportion).
//!
//! `cargo bench --bench siglip`; the peer is `benches/peers/siglip_transformers.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haidef_wsi::encoders::candle::{DType, Device, Tensor};
use haidef_wsi::encoders::{siglip::seeded_weights, Siglip, SiglipConfig};

fn towers(c: &mut Criterion) {
    haidef_wsi::encoders::tune_cpu_inference();
    let depth: usize = std::env::var("HAIDEF_SIGLIP_DEPTH").ok().and_then(|d| d.parse().ok()).unwrap_or(4);
    let cfg = SiglipConfig::medsiglip_448().with_depth(depth, depth);
    let device = Device::Cpu;
    let model = Siglip::new(&cfg, seeded_weights(&cfg, 1, &device, DType::F32).unwrap()).unwrap();
    let mut group = c.benchmark_group(format!("siglip_cpu_f32_depth{depth}"));
    group.sample_size(10);
    let (ib, tb) = (2usize, 16usize);
    let pixels = Tensor::rand(-1f32, 1f32, (ib, 3, 448, 448), &device).unwrap();
    group.throughput(Throughput::Elements(ib as u64));
    group.bench_function(format!("vision_batch{ib}"), |b| b.iter(|| model.vision.forward(&pixels).unwrap()));
    let ids: Vec<u32> = (0..tb * 64).map(|i| 3 + (i as u32 * 7919) % 31_990).collect();
    let ids = Tensor::from_vec(ids, (tb, 64), &device).unwrap();
    group.throughput(Throughput::Elements(tb as u64));
    group.bench_function(format!("text_batch{tb}"), |b| b.iter(|| model.text.forward(&ids).unwrap()));
    group.finish();
}

/// On the GPU (built with `--features cuda`): the full model (27 + 27 layers) in bf16, vision
/// batch 32, text batch 256 (tools/gpu_check.sh).
#[cfg(feature = "cuda")]
fn gpu(c: &mut Criterion) {
    let device = Device::new_cuda(0).expect("CUDA device 0");
    let cfg = SiglipConfig::medsiglip_448();
    let model = Siglip::new(&cfg, seeded_weights(&cfg, 1, &device, DType::BF16).unwrap()).unwrap();
    let mut group = c.benchmark_group("siglip_cuda_bf16_depth27");
    group.sample_size(10);
    let (ib, tb) = (32usize, 256usize);
    let pixels = Tensor::rand(-1f32, 1f32, (ib, 3, 448, 448), &device).unwrap().to_dtype(DType::BF16).unwrap();
    group.throughput(Throughput::Elements(ib as u64));
    group.bench_function(format!("vision_batch{ib}"), |b| {
        b.iter(|| {
            let e = model.vision.forward(&pixels).unwrap();
            device.synchronize().unwrap();
            e
        })
    });
    let ids: Vec<u32> = (0..tb * 64).map(|i| 3 + (i as u32 * 7919) % 31_990).collect();
    let ids = Tensor::from_vec(ids, (tb, 64), &device).unwrap();
    group.throughput(Throughput::Elements(tb as u64));
    group.bench_function(format!("text_batch{tb}"), |b| {
        b.iter(|| {
            let e = model.text.forward(&ids).unwrap();
            device.synchronize().unwrap();
            e
        })
    });
    group.finish();
}

#[cfg(not(feature = "cuda"))]
fn gpu(_: &mut Criterion) {}

criterion_group!(benches, towers, gpu);
criterion_main!(benches);
