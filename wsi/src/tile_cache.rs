//! A byte-capped cache of decoded tiles, shared by the levels of a slide, so that region reads
//! that touch the same frames (neighbouring or overlapping regions) decode each frame once.
//! Least recently used tiles are evicted first. The streaming patch grid bypasses it: it holds
//! its own band of decoded rows and would only flush the cache.

use crate::level::Tile;
use std::collections::HashMap;
use std::sync::Mutex;

/// Default capacity of a slide's tile cache: 64 MiB, about 340 decoded 256×256 RGB tiles.
pub const DEFAULT_TILE_CACHE_BYTES: usize = 64 << 20;

#[derive(Debug, Default)]
struct Inner {
    /// (image key, frame) → (tile, last use).
    tiles: HashMap<(usize, u32), (Tile, u64)>,
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

    /// The cached tile, if present.
    pub fn get(&self, key: (usize, u32)) -> Option<Tile> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.tiles.get_mut(&key).map(|(tile, used)| {
            *used = now;
            tile.clone()
        })
    }

    /// Stores a tile, evicting the least recently used ones beyond the capacity.
    pub fn put(&self, key: (usize, u32), tile: Tile) {
        let size = tile.len();
        if size > self.capacity {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, _)) = inner.tiles.insert(key, (tile, now)) {
            inner.bytes -= old.len();
        }
        inner.bytes += size;
        while inner.bytes > self.capacity {
            let oldest = inner.tiles.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k);
            let Some(oldest) = oldest else { break };
            let (old, _) = inner.tiles.remove(&oldest).expect("present");
            inner.bytes -= old.len();
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
    use std::sync::Arc;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let cache = TileCache::new(3 * 100);
        let tile = || Arc::new(vec![0u8; 100]);
        for f in 0..3 {
            cache.put((0, f), tile());
        }
        assert!(cache.get((0, 0)).is_some()); // 0 is now the most recent
        cache.put((0, 3), tile()); // evicts 1, the least recently used
        assert!(cache.get((0, 1)).is_none());
        assert!(cache.get((0, 0)).is_some() && cache.get((0, 2)).is_some() && cache.get((0, 3)).is_some());
        assert_eq!(cache.bytes(), 300);
        cache.put((1, 0), Arc::new(vec![0u8; 1000])); // larger than the cache: not stored
        assert!(cache.get((1, 0)).is_none());
        cache.clear();
        assert_eq!(cache.bytes(), 0);
    }
}
