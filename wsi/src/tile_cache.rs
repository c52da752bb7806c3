//! A byte-capped cache of decoded tiles, shared by the levels of a slide, so that region reads
//! that touch the same frames (neighbouring or overlapping regions) decode each frame once.
//! Least recently used tiles are evicted first. The streaming patch grid bypasses it: it holds
//! its own band of decoded rows and would only flush the cache.

use crate::error::Result;
use crate::level::Tile;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Default capacity of a slide's tile cache: 64 MiB, about 340 decoded 256×256 RGB tiles.
pub const DEFAULT_TILE_CACHE_BYTES: usize = 64 << 20;

/// One cached tile; the cell lets concurrent readers of a frame wait for a single decode.
#[derive(Debug)]
struct Entry {
    cell: Arc<OnceLock<Tile>>,
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// (image key, frame) → tile, decoded or being decoded.
    tiles: HashMap<(usize, u32), Entry>,
    bytes: usize,
    clock: u64,
}

/// Decoded tiles keyed by (image, frame).
#[derive(Debug)]
pub struct TileCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl TileCache {
    /// A cache holding at most `capacity` bytes of decoded pixels (0 disables it).
    pub fn new(capacity: usize) -> Self {
        TileCache { inner: Mutex::new(Inner::default()), capacity }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached tile, if present and decoded.
    pub fn get(&self, key: (usize, u32)) -> Option<Tile> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.tiles.get_mut(&key)?;
        entry.used = now;
        entry.cell.get().cloned()
    }

    /// The tile for `key`, decoding it with `decode` when absent. Threads asking for the same
    /// tile at the same time wait for one decode instead of each decoding it.
    pub fn get_or_decode(&self, key: (usize, u32), decode: impl Fn() -> Result<Tile>) -> Result<Tile> {
        if self.capacity == 0 {
            return decode();
        }
        let cell = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            let entry = inner.tiles.entry(key).or_insert_with(|| Entry { cell: Arc::new(OnceLock::new()), used: now });
            entry.used = now;
            entry.cell.clone()
        };
        if let Some(tile) = cell.get() {
            return Ok(tile.clone());
        }
        let mut outcome = None;
        let tile = cell.get_or_init(|| match decode() {
            Ok(tile) => {
                outcome = Some(Ok(tile.len()));
                tile
            }
            Err(e) => {
                outcome = Some(Err(e));
                Arc::new(Vec::new())
            }
        });
        match outcome {
            // This thread decoded it: account for it and evict beyond the capacity.
            Some(Ok(size)) => {
                let mut inner = self.lock();
                if size > self.capacity {
                    // Larger than the whole cache: hand it out, keep nothing (and evict nothing).
                    if inner.tiles.get(&key).is_some_and(|en| Arc::ptr_eq(&en.cell, &cell)) {
                        inner.tiles.remove(&key);
                    }
                } else {
                    inner.bytes += size;
                    self.evict(&mut inner);
                }
                Ok(tile.clone())
            }
            // This thread's decode failed: forget the entry so a later read tries again.
            Some(Err(e)) => {
                let mut inner = self.lock();
                if inner.tiles.get(&key).is_some_and(|en| Arc::ptr_eq(&en.cell, &cell)) {
                    inner.tiles.remove(&key);
                }
                Err(e)
            }
            // Another thread decoded it; an empty tile means its decode failed: decode here to
            // get the error (or the tile) for this caller.
            None if tile.is_empty() => decode(),
            None => Ok(tile.clone()),
        }
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.bytes > self.capacity {
            let oldest = inner
                .tiles
                .iter()
                .filter(|(_, e)| e.cell.get().is_some())
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            let Some(oldest) = oldest else { break };
            let entry = inner.tiles.remove(&oldest).expect("present");
            inner.bytes -= entry.cell.get().map_or(0, |t| t.len());
        }
    }

    /// Drops every tile.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.tiles.clear();
        inner.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::WsiError;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let cache = TileCache::new(3 * 100);
        let tile = || Ok(Arc::new(vec![0u8; 100]));
        for f in 0..3 {
            cache.get_or_decode((0, f), tile).unwrap();
        }
        assert!(cache.get((0, 0)).is_some()); // 0 is now the most recent
        cache.get_or_decode((0, 3), tile).unwrap(); // evicts 1, the least recently used
        assert!(cache.get((0, 1)).is_none());
        assert!(cache.get((0, 0)).is_some() && cache.get((0, 2)).is_some() && cache.get((0, 3)).is_some());
        assert_eq!(cache.bytes(), 300);
        // Larger than the cache: returned, not stored, and nothing else evicted.
        let big = cache.get_or_decode((1, 0), || Ok(Arc::new(vec![0u8; 1000]))).unwrap();
        assert_eq!(big.len(), 1000);
        assert!(cache.get((1, 0)).is_none());
        assert_eq!(cache.bytes(), 300);
        assert!(cache.get((0, 3)).is_some());
        cache.clear();
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn concurrent_readers_share_one_decode() {
        let cache = TileCache::new(1 << 20);
        let decodes = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let t = cache
                        .get_or_decode((0, 7), || {
                            decodes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(Arc::new(vec![1u8; 10]))
                        })
                        .unwrap();
                    assert_eq!(t.len(), 10);
                });
            }
        });
        assert_eq!(decodes.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(cache.bytes(), 10);
        // A failed decode is not cached.
        let err = cache.get_or_decode((0, 8), || Err(WsiError::InvalidArgument("boom".into())));
        assert!(err.is_err() && cache.get((0, 8)).is_none());
        assert!(cache.get_or_decode((0, 8), || Ok(Arc::new(vec![2u8; 4]))).is_ok());
    }
}
