//! Throughput of the pathology presets (`--model uni`, `virchow2`, …) on the CPU in f32,
//! seeded weights of each architecture (speed does not depend on them), against timm /
//! transformers running the same architecture (`benches/peers/timm_presets.py`);
//! `tools/bench_presets.sh` interleaves the two and prints the ratios.
//!
//! `HAIDEF_PRESET=uni cargo bench --bench presets` (one preset per run);
//! `HAIDEF_PRESET_DEPTH` (blocks; default the published depth), `HAIDEF_PRESET_BATCH`
//! (default 8), `HAIDEF_PRESET_SECONDS` (timed at least this long after a warm-up pass,
//! default 10). Prints one line: `ours <preset> depth=D batch=B images_per_s=X`.

use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::VitConfig;
use haidef_wsi::encoders::{registry, Architecture};
use haidef_wsi::encoders::{Batcher, ImageRef};
use haidef_wsi::encoders::{Encoder, VitEncoder};
use std::time::Instant;

fn main() {
    haidef_wsi::encoders::tune_cpu_inference();
    let name = std::env::var("HAIDEF_PRESET").unwrap_or_else(|_| "uni".into());
    let entry = registry::find(&name).expect("HAIDEF_PRESET: a model name");
    let Architecture::Vit(full) = &entry.architecture else { panic!("{name} is not a ViT preset") };
    let env = |k: &str, d: f64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let depth = env("HAIDEF_PRESET_DEPTH", full.depth as f64) as usize;
    let batch = env("HAIDEF_PRESET_BATCH", 8.0) as usize;
    let seconds = env("HAIDEF_PRESET_SECONDS", 10.0);
    let cfg = VitConfig { depth, ..full.clone() };
    let model = VitEncoder::untrained(entry.model_id, entry.input.clone(), cfg, entry.untrained_seed, &Device::Cpu, DType::F32).unwrap();
    let data: Vec<Vec<u8>> = (0..batch).map(|i| (0..224 * 224 * 3).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()).collect();
    let images: Vec<ImageRef<'_>> = data.iter().map(|p| ImageRef::rgb(224, 224, p)).collect();
    let mut batcher = Batcher::new(model.input_spec().clone(), batch, Device::Cpu, DType::F32).unwrap();
    let input = batcher.pack(&images).unwrap();
    model.embed(&input).unwrap(); // warm-up
    let (start, mut n) = (Instant::now(), 0);
    while n == 0 || start.elapsed().as_secs_f64() < seconds {
        model.embed(&input).unwrap();
        n += batch;
    }
    println!("ours {name} depth={depth} batch={batch} images_per_s={:.4}", n as f64 / start.elapsed().as_secs_f64());
}
