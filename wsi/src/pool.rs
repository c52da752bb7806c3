//! A bounded pool of byte buffers, so that streaming decode reuses memory instead of asking the
//! allocator (and the kernel) for fresh pages for every frame and patch.

use std::sync::Mutex;

/// Reusable `Vec<u8>` buffers, at most `max` kept.
#[derive(Debug)]
pub(crate) struct BufferPool {
    buffers: Mutex<Vec<Vec<u8>>>,
    max: usize,
}

impl BufferPool {
    pub fn new(max: usize) -> Self {
        BufferPool { buffers: Mutex::new(Vec::new()), max }
    }

    /// A buffer with its old contents (possibly empty); callers overwrite or clear it.
    pub fn take(&self) -> Vec<u8> {
        self.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default()
    }

    /// Returns a buffer for reuse; dropped when the pool is full.
    pub fn give(&self, buffer: Vec<u8>) {
        let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        if buffers.len() < self.max && buffer.capacity() > 0 {
            buffers.push(buffer);
        }
    }
}
