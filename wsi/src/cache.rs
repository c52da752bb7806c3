//! One byte-capped cache per slide, shared by everything that reads the slide: decoded tiles
//! for region reads and, over DICOMweb, fetched (still compressed) frames. One bound per
//! slide, however many instances it has. Built on `quick_cache` (a concurrent, weighted
//! CLOCK-PRO/S3-FIFO-like cache): threads asking for the same missing entry wait for one load,
//! and a failed load is not cached, so a later read tries again.
//!
//! quick_cache keeps entries that were read again ("hot") apart from new ones ("cold"), and
//! evicts new ones first. By default 97% of it is for hot entries, which suits repeated
//! lookups but not a slide read as a stream: frames fetched ahead would evict each other in
//! the remaining 3% before anyone reads them. Here half is kept for hot entries, so new
//! entries always have at least half of the cache (see [`SlideCache::room_for_new`]). The streaming patch grid does not keep
//! decoded tiles here: it holds its own band of decoded rows and would only flush the cache.

use quick_cache::sync::{Cache, GuardResult};
use quick_cache::{OptionsBuilder, Weighter};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Default capacity of a slide's cache: 64 MiB, about 340 decoded 256×256 RGB tiles, or a few
/// thousand compressed frames.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Entries are shared byte buffers: decoded RGB8 tiles or a frame's stored bytes.
pub(crate) type Bytes = Arc<Vec<u8>>;

/// Which image of the slide and what of it an entry holds; see [`SlideCache::register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The image's id in this cache.
    pub image: u32,
    /// 0-based frame number.
    pub frame: u32,
}

#[derive(Debug, Clone, Copy)]
struct ByLength;

impl Weighter<CacheKey, Bytes> for ByLength {
    fn weight(&self, _key: &CacheKey, value: &Bytes) -> u64 {
        // quick_cache treats weight 0 as "never evicted": an empty buffer still takes a slot.
        (value.len() as u64).max(1)
    }
}

/// The cache of one slide. Cheap to share (`Arc`); all methods take `&self`.
pub struct SlideCache {
    /// `None` when the capacity is 0: every read loads.
    entries: Option<Cache<CacheKey, Bytes, ByLength>>,
    capacity: usize,
    next_image: AtomicU32,
}

impl std::fmt::Debug for SlideCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlideCache").field("capacity", &self.capacity).field("bytes", &self.bytes()).field("entries", &self.len()).finish()
    }
}

/// Each shard of the cache is bounded on its own; at least this much per shard, so that large
/// tiles (a 1024×1024 RGB tile is 3 MiB) still fit in one.
const MIN_SHARD_BYTES: usize = 16 << 20;

/// The share of the cache for entries read more than once; also the largest entry a shard
/// takes, as a share of the shard (so with 16 MiB shards, entries up to 8 MiB are kept).
const HOT_SHARE: f64 = 0.5;

impl SlideCache {
    /// A cache holding at most `capacity` bytes (0 disables it).
    pub fn new(capacity: usize) -> Self {
        let entries = (capacity > 0).then(|| {
            let shards = (capacity / MIN_SHARD_BYTES).clamp(1, 16);
            let options = OptionsBuilder::new()
                // ~64 KiB per entry on average: decoded 256×256 tiles are 192 KiB, compressed
                // frames tens of KiB. Only sizes the tables; the bound is in bytes.
                .estimated_items_capacity((capacity / (64 << 10)).max(64))
                .weight_capacity(capacity as u64)
                .hot_allocation(HOT_SHARE)
                .shards(shards)
                .build()
                .expect("capacity and item estimate are positive");
            Cache::with_options(options, ByLength, Default::default(), Default::default())
        });
        SlideCache { entries, capacity, next_image: AtomicU32::new(0) }
    }

    /// A new id for an image (or a frame source) that keeps entries here, distinct from every
    /// other id of this cache.
    pub fn register(&self) -> u32 {
        self.next_image.fetch_add(1, Ordering::Relaxed)
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes that new entries can take before they start evicting each other: what a batch
    /// fetched ahead of its readers may use. A quarter of the capacity, half of the share
    /// reserved for new entries, as the shards never fill evenly.
    pub fn room_for_new(&self) -> usize {
        self.capacity / 4
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.entries.as_ref().map_or(0, |c| c.weight() as usize)
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry, if held.
    pub fn get(&self, key: CacheKey) -> Option<Bytes> {
        self.entries.as_ref()?.get(&key)
    }

    /// Whether the entry is held (does not count as a use).
    pub fn contains(&self, key: CacheKey) -> bool {
        self.entries.as_ref().is_some_and(|c| c.contains_key(&key))
    }

    /// Keeps `value` under `key`, evicting other entries as needed. A value larger than a
    /// shard of the cache is not kept.
    pub fn insert(&self, key: CacheKey, value: Bytes) {
        if let Some(c) = &self.entries {
            c.insert(key, value);
        }
    }

    /// The entry for `key`, loading it with `load` when absent. Threads asking for the same
    /// entry at the same time wait for one load; when it fails, the next waiter loads (and
    /// gets its own error), and nothing is kept.
    pub fn get_or_load<E>(&self, key: CacheKey, load: impl FnOnce() -> Result<Bytes, E>) -> Result<Bytes, E> {
        let Some(c) = &self.entries else { return load() };
        match c.get_value_or_guard(&key, None) {
            GuardResult::Value(v) => Ok(v),
            GuardResult::Guard(guard) => {
                let value = load()?;
                let _ = guard.insert(value.clone());
                Ok(value)
            }
            GuardResult::Timeout => unreachable!("no timeout was given"),
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        if let Some(c) = &self.entries {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn key(image: u32, frame: u32) -> CacheKey {
        CacheKey { image, frame }
    }

    #[test]
    fn stays_within_its_bytes_and_keeps_recent_entries() {
        let cache = SlideCache::new(1 << 20);
        for f in 0..100 {
            cache.insert(key(0, f), Arc::new(vec![0u8; 64 << 10]));
            assert!(cache.bytes() <= 1 << 20, "{} bytes after {f}", cache.bytes());
        }
        // 16 fit. Entries nobody read again are evicted oldest first once the share for new
        // entries is full: the newest quarter of the cache is there.
        let held: Vec<u32> = (0..100).filter(|f| cache.contains(key(0, *f))).collect();
        assert!(held.len() >= 8, "{held:?}");
        assert!((96..100).all(|f| held.contains(&f)), "{held:?}");
        // Read entries survive a stream of new ones that are not read.
        cache.get(key(0, 99)).unwrap();
        for f in 100..200 {
            cache.insert(key(0, f), Arc::new(vec![0u8; 64 << 10]));
        }
        assert!(cache.contains(key(0, 99)) && !cache.contains(key(0, 100)));
        // Larger than the cache: handed out, not kept, and the rest stays.
        let before = cache.len();
        let big = cache.get_or_load::<()>(key(1, 0), || Ok(Arc::new(vec![0u8; 2 << 20]))).unwrap();
        assert_eq!(big.len(), 2 << 20);
        assert!(cache.get(key(1, 0)).is_none() && cache.len() == before);
        cache.clear();
        assert_eq!((cache.bytes(), cache.len()), (0, 0));
    }

    #[test]
    fn concurrent_readers_share_one_load_and_failures_are_not_kept() {
        let cache = SlideCache::new(1 << 20);
        let loads = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let t = cache
                        .get_or_load::<()>(key(0, 7), || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(Arc::new(vec![1u8; 10]))
                        })
                        .unwrap();
                    assert_eq!(*t, vec![1u8; 10]);
                });
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.bytes(), 10);
        assert!(cache.get_or_load(key(0, 8), || Err("boom")).is_err());
        assert!(!cache.contains(key(0, 8)));
        assert_eq!(*cache.get_or_load::<()>(key(0, 8), || Ok(Arc::new(vec![2u8; 4]))).unwrap(), vec![2u8; 4]);
        // Ids keep images apart.
        let (a, b) = (cache.register(), cache.register());
        assert_ne!(a, b);
        cache.insert(key(a, 0), Arc::new(vec![3]));
        assert!(cache.get(key(b, 0)).is_none());
    }

    #[test]
    fn capacity_zero_loads_every_time() {
        let cache = SlideCache::new(0);
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .get_or_load::<()>(key(0, 0), || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(Arc::new(vec![0u8; 4]))
                })
                .unwrap();
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3);
        assert_eq!(cache.bytes(), 0);
    }
}
