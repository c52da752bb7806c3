//! A thread pool per process. rayon's global pool does not survive `fork()`: the child gets the
//! pool's bookkeeping but none of its threads, so the first parallel read in a forked PyTorch
//! `DataLoader` worker would wait forever (tested in python/tests/test_slide.py). Every call into
//! the library runs inside this pool instead; rayon work started inside it stays in it. The pool
//! is made on first use and made again when the process id has changed.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, Mutex, OnceLock};

static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);
static FIRST_PID: OnceLock<u32> = OnceLock::new();

/// Records the process the module was loaded in.
pub fn loaded() {
    FIRST_PID.get_or_init(std::process::id);
}

/// Whether this process is a fork of the one that loaded the module.
pub fn forked() -> bool {
    FIRST_PID.get().is_some_and(|&pid| pid != std::process::id())
}

/// Runs `op` in this process's pool.
pub fn run<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    let pool = {
        let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        match slot.as_ref() {
            Some((owner, pool)) if *owner == pid => pool.clone(),
            _ => {
                // The parent's pool has no threads here: forget it rather than ask them to stop.
                if let Some(old) = slot.take() {
                    std::mem::forget(old);
                }
                let pool = Arc::new(ThreadPoolBuilder::new().thread_name(|i| format!("haidef-wsi-{i}")).build().expect("a thread pool"));
                *slot = Some((pid, pool.clone()));
                pool
            }
        }
    };
    pool.install(op)
}
