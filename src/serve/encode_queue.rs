//! The encoder behind the server: one thread owns the model, and the patches of concurrent
//! requests are packed together into full batches. The thread takes the first waiting job,
//! then whatever else arrives within `max_wait` or until a batch is full, embeds one batch at
//! a time from the jobs in arrival order, and answers each job with its own rows once all are
//! embedded. Before every batch, jobs whose request has ended (timed out, caller gone) are
//! dropped with their remaining patches. The queue is bounded in patches: a job that does not
//! fit is refused at once (the server answers 503 with `Retry-After`) rather than held in
//! memory.

use haidef_wsi_encoders::Batcher;
use haidef_wsi_encoders::{Encoder, ImageRef};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Rows of one job, or why the encoder failed.
pub type Reply = Result<Vec<Vec<f32>>, String>;

struct Job {
    /// RGB8 patches of the model's input size.
    patches: Vec<Vec<u8>>,
    reply: oneshot::Sender<Reply>,
}

/// A job being embedded: its rows so far.
struct Pending {
    job: Job,
    done: Vec<Vec<f32>>,
}

impl Pending {
    /// Patches not yet embedded.
    fn left(&self) -> usize {
        self.job.patches.len() - self.done.len()
    }
}

/// How busy the encoder has been.
#[derive(Debug, Default)]
pub struct Stats {
    busy_ns: AtomicU64,
    patches: AtomicU64,
    batches: AtomicU64,
}

impl Stats {
    /// Seconds spent embedding, patches embedded, batches run.
    pub fn snapshot(&self) -> (f64, u64, u64) {
        (self.busy_ns.load(Ordering::Relaxed) as f64 * 1e-9, self.patches.load(Ordering::Relaxed), self.batches.load(Ordering::Relaxed))
    }
}

/// The queue in front of the encoder thread.
pub struct EncodeQueue {
    tx: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    /// Busy time and counts.
    pub stats: Arc<Stats>,
    /// Side of the square RGB patches the model takes.
    pub patch_size: usize,
    /// Floats per embedding.
    pub dim: usize,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

/// Marks the encoder thread stopped when it ends, however it ends.
struct Alive(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The queue was full: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl EncodeQueue {
    /// Starts the encoder thread. `batch_size` patches per batch, at most `max_wait` spent
    /// gathering one, at most `max_queued` patches waiting.
    pub fn start(encoder: Box<dyn Encoder>, batch_size: usize, max_wait: Duration, max_queued: usize) -> Result<Self, String> {
        let spec = encoder.input_spec().clone();
        if spec.height != spec.width || spec.channels != 3 {
            return Err(format!("the server embeds square RGB patches; {} takes {}", encoder.model_id(), spec.describe()));
        }
        let batch_size = batch_size.max(1);
        let mut batcher = Batcher::new(spec.clone(), batch_size, encoder.device().clone(), encoder.input_dtype()).map_err(|e| e.to_string())?;
        let (tx, rx) = sync_channel::<Job>(max_queued.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let stats = Arc::new(Stats::default());
        let (q, s) = (queued.clone(), stats.clone());
        let (side, dim) = (spec.width, encoder.embedding_dim());
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let guard = Alive(alive.clone());
        std::thread::Builder::new()
            .name("haidef-encoder".into())
            .spawn(move || {
                let _alive = guard;
                let mut pending: VecDeque<Pending> = VecDeque::new();
                loop {
                    if pending.is_empty() {
                        match rx.recv() {
                            Ok(j) => pending.push_back(Pending { job: j, done: Vec::new() }),
                            Err(_) => break,
                        }
                    }
                    // Whatever else arrives within max_wait, until a batch's worth is waiting.
                    let deadline = Instant::now() + max_wait;
                    while pending.iter().map(Pending::left).sum::<usize>() < batch_size {
                        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                            Ok(j) => pending.push_back(Pending { job: j, done: Vec::new() }),
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    // Jobs whose request has gone (timed out, or its caller hung up) are dropped
                    // before every batch, with the patches they had left: a request that ends
                    // stops taking the encoder's time within one batch.
                    pending.retain(|p| {
                        let gone = p.job.reply.is_closed();
                        if gone {
                            q.fetch_sub(p.left(), Ordering::Relaxed);
                        }
                        !gone
                    });
                    if pending.is_empty() {
                        continue;
                    }
                    // One batch from the jobs in arrival order, front first: (job, its patches
                    // taken), for jobs 0..taken.len().
                    let mut images: Vec<ImageRef<'_>> = Vec::with_capacity(batch_size);
                    let mut taken = Vec::new();
                    for (i, p) in pending.iter().enumerate() {
                        let (from, n) = (p.done.len(), p.left().min(batch_size - images.len()));
                        images.extend(p.job.patches[from..from + n].iter().map(|px| ImageRef::rgb(side, side, px)));
                        taken.push((i, n));
                        if images.len() == batch_size {
                            break;
                        }
                    }
                    let count = images.len();
                    let t = Instant::now();
                    // A panic in the model fails this batch's requests, not the thread (which
                    // would leave every later request refused).
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        batcher.pack(&images).and_then(|b| encoder.embed(&b)).and_then(|e| Ok(e.to_vec2::<f32>()?))
                    }))
                    .map_err(|_| "the encoder panicked".to_string())
                    .and_then(|r| r.map_err(|e| format!("the encoder failed: {e}")))
                    // One row per patch, or the batch fails (never rows shifted between requests).
                    .and_then(|rows| {
                        if rows.len() == count {
                            Ok(rows)
                        } else {
                            Err(format!("the encoder returned {} rows for {count} patches", rows.len()))
                        }
                    });
                    drop(images);
                    s.batches.fetch_add(1, Ordering::Relaxed);
                    s.busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    let failed = match out {
                        Ok(rows) => {
                            s.patches.fetch_add(count as u64, Ordering::Relaxed);
                            q.fetch_sub(count, Ordering::Relaxed);
                            let mut rows = rows.into_iter();
                            for &(i, n) in &taken {
                                pending[i].done.extend(rows.by_ref().take(n));
                            }
                            None
                        }
                        Err(e) => Some(e),
                    };
                    // Jobs complete or failed (every job with patches in a failed batch fails,
                    // whole) leave; the others wait for the next batch (jobs gone meanwhile are
                    // dropped before it).
                    let mut kept = VecDeque::with_capacity(pending.len());
                    for (i, p) in std::mem::take(&mut pending).into_iter().enumerate() {
                        if let Some(e) = failed.as_ref().filter(|_| i < taken.len()) {
                            q.fetch_sub(p.left(), Ordering::Relaxed);
                            let _ = p.job.reply.send(Err(e.clone()));
                        } else if p.left() == 0 {
                            let _ = p.job.reply.send(Ok(p.done));
                        } else {
                            kept.push_back(p);
                        }
                    }
                    pending = kept;
                }
            })
            .map_err(|e| format!("cannot start the encoder thread: {e}"))?;
        Ok(EncodeQueue { tx, queued, max_queued, stats, patch_size: side, dim, alive })
    }

    /// Whether the encoder thread still runs (the health route answers 503 once it does not).
    pub fn is_running(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Patches accepted and not yet embedded (or dropped): the queue's depth, at most
    /// `max_queued` (or one request's patches, when a single request is larger).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues `patches` (RGB8, `patch_size`² each); the receiver gets their embeddings in order.
    pub fn submit(&self, patches: Vec<Vec<u8>>) -> Result<oneshot::Receiver<Reply>, Busy> {
        let n = patches.len();
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max_queued && before > 0 {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return Err(Busy);
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.try_send(Job { patches, reply }).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return Err(Busy);
        }
        Ok(rx)
    }
}
