//! Reader benchmarks: the full level-0 patch grid of the biggest fixture (patches/s), random
//! 224×224 regions (regions/s), and JPEG frame decoding with zune-jpeg vs jpeg-decoder.
//!
//! `cargo bench --bench reader`; the peer is `benches/peers/wsidicom_grid.py`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use haidef_wsi::wsi::{OpenOptions, OutOfBounds, PatchGridOptions, Slide};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/slides").join(name)
}

/// Small deterministic generator for region origins (xorshift64*).
struct Xorshift(u64);
impl Xorshift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % n
    }
}

fn patch_grid(c: &mut Criterion) {
    let slide = Slide::open(fixture("ihc-full")).expect("fixture slide");
    let level = slide.level(0).unwrap().clone();
    let grid = level.patch_grid(PatchGridOptions::default()).unwrap();
    let mut group = c.benchmark_group("reader");
    group.sample_size(20);
    group.throughput(Throughput::Elements(grid.len() as u64));
    group.bench_function(format!("patch_grid_level0_{}_patches", grid.len()), |b| {
        b.iter(|| {
            let mut n = 0usize;
            for row in grid.rows_iter() {
                n += row.unwrap().len();
            }
            assert_eq!(n, grid.len());
        })
    });

    const REGIONS: u64 = 500;
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let origins: Vec<(i64, i64)> =
        (0..REGIONS).map(|_| (rng.below(u64::from(level.width() - 224)) as i64, rng.below(u64::from(level.height() - 224)) as i64)).collect();
    group.throughput(Throughput::Elements(REGIONS));
    // Each pass starts with an empty tile cache (as wsidicom_grid.py's "random" figure clears
    // its caches before each pass); regions within a pass share decoded frames.
    group.bench_function("random_regions_224_cache_cleared_per_pass", |b| {
        b.iter(|| {
            level.cache().clear();
            for &(x, y) in &origins {
                let r = level.read_region(x, y, 224, 224).unwrap();
                assert_eq!(r.data.len(), 224 * 224 * 3);
            }
        })
    });
    // The same regions through the batch API, which reads them in parallel.
    let rects: Vec<(i64, i64, u32, u32)> = origins.iter().map(|&(x, y)| (x, y, 224, 224)).collect();
    group.bench_function("random_regions_224_batch_cache_cleared_per_pass", |b| {
        b.iter(|| {
            level.cache().clear();
            let regions = level.read_regions(&rects, OutOfBounds::Error).unwrap();
            assert_eq!(regions.len(), rects.len());
        })
    });
    // No cache: every region decodes all frames it touches (wsidicom's "_nocache" figure).
    let uncached = Slide::open_with(fixture("ihc-full"), &OpenOptions { cache_bytes: 0, ..Default::default() }).expect("fixture slide");
    let uncached_level = uncached.level(0).unwrap().clone();
    group.bench_function("random_regions_224_no_cache", |b| {
        b.iter(|| {
            for &(x, y) in &origins {
                let r = uncached_level.read_region(x, y, 224, 224).unwrap();
                assert_eq!(r.data.len(), 224 * 224 * 3);
            }
        })
    });
    group.finish();
}

fn jpeg_decoders(c: &mut Criterion) {
    let slide = Slide::open(fixture("ihc-full")).expect("fixture slide");
    let level = slide.level(0).unwrap();
    let n = level.info().number_of_frames;
    let frames: Vec<Vec<u8>> = (0..n).map(|i| level.frame_source().frame_bytes(i).unwrap()).collect();
    let (w, h) = level.tile_size();
    let mut group = c.benchmark_group("jpeg_decode_256");
    group.sample_size(20);
    group.throughput(Throughput::Elements(u64::from(n)));
    group.bench_function("zune-jpeg", |b| {
        let mut out = vec![0u8; (w * h * 3) as usize];
        b.iter(|| {
            for f in &frames {
                haidef_wsi::wsi::decode_jpeg_rgb(f, &mut out, w as usize, h as usize).unwrap();
            }
        })
    });
    group.bench_function("jpeg-decoder", |b| {
        b.iter_batched(
            || (),
            |_| {
                for f in &frames {
                    let mut d = jpeg_decoder::Decoder::new(f.as_slice());
                    let px = d.decode().unwrap();
                    assert_eq!(px.len(), (w * h * 3) as usize);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, patch_grid, jpeg_decoders);
criterion_main!(benches);
