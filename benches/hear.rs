//! HeAR throughput on CPU in f32, batch 32 (2 s clips): the front end alone (32 clips →
//! 32 × 1 × 192 × 128 mel-PCEN) and front end + ViT-L (`HAIDEF_HEAR_DEPTH` blocks, default 24,
//! the full model; seeded weights: speed does not depend on them).
//!
//! `cargo bench --bench hear`; the peer is `benches/peers/hear_torch.py`.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use haidef_wsi::encoders::candle::{DType, Device, Tensor};
use haidef_wsi::encoders::VitConfig;
use haidef_wsi::encoders::{hear, FrontEnd, FrontEndConfig, HearEncoder};

/// 32 clips of speech-like test audio: a few harmonics with vibrato plus noise.
fn clips(n: usize, device: &Device) -> Tensor {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let v: Vec<f32> = (0..n * 32_000)
        .map(|i| {
            let (c, t) = ((i / 32_000) as f32, (i % 32_000) as f32 / 16_000.0);
            let f0 = 120.0 + 10.0 * c + 5.0 * (6.0 * t).sin();
            (1..5).map(|h| (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin() / h as f32).sum::<f32>() * 0.3 + 0.05 * noise()
        })
        .collect();
    Tensor::from_vec(v, (n, 32_000), device).unwrap()
}

fn cpu(c: &mut Criterion) {
    haidef_wsi::encoders::tune_cpu_inference();
    let device = Device::Cpu;
    let batch = 32;
    let x = clips(batch, &device);
    let mut group = c.benchmark_group("hear_cpu_f32");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    let fe = FrontEnd::new(FrontEndConfig::hear(), &device).unwrap();
    group.bench_function(format!("front_end_batch{batch}"), |b| b.iter(|| fe.forward(&x).unwrap()));
    let depth: usize = std::env::var("HAIDEF_HEAR_DEPTH").ok().and_then(|d| d.parse().ok()).unwrap_or(24);
    let cfg = VitConfig { depth, ..hear::vit_config() };
    let model = HearEncoder::untrained(hear::MODEL_ID, &cfg, 1, &device, DType::F32).unwrap();
    // One pass is seconds long: one pass per sample, not criterion's growing counts.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(format!("front_end_and_model_depth{depth}_batch{batch}"), |b| b.iter(|| model.embed_clips(&x).unwrap()));
    group.finish();
}

/// On the GPU (built with `--features cuda`): front end alone and the full model in bf16,
/// batch 256 (tools/gpu_check.sh).
#[cfg(feature = "cuda")]
fn gpu(c: &mut Criterion) {
    let device = Device::new_cuda(0).expect("CUDA device 0");
    let batch = 256;
    let x = clips(batch, &device);
    let mut group = c.benchmark_group("hear_cuda");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    let fe = FrontEnd::new(FrontEndConfig::hear(), &device).unwrap();
    group.bench_function(format!("front_end_f32_batch{batch}"), |b| {
        b.iter(|| {
            let s = fe.forward(&x).unwrap();
            device.synchronize().unwrap();
            s
        })
    });
    let model = HearEncoder::untrained(hear::MODEL_ID, &hear::vit_config(), 1, &device, DType::BF16).unwrap();
    group.bench_function(format!("front_end_and_model_bf16_batch{batch}"), |b| {
        b.iter(|| {
            let e = model.embed_clips(&x).unwrap();
            device.synchronize().unwrap();
            e
        })
    });
    group.finish();
}

#[cfg(not(feature = "cuda"))]
fn gpu(_: &mut Criterion) {}

criterion_group!(benches, cpu, gpu);
criterion_main!(benches);
