//! The encoder behind the server: one thread owns the model, and the patches of concurrent
//! requests are packed together into full batches. The thread takes the first waiting job,
//! then whatever else arrives within `max_wait` or until a batch is full, embeds it, and
//! answers each job with its own rows. The queue is bounded in patches: a job that does not
//! fit is refused at once (the server answers 503 with `Retry-After`) rather than held in
//! memory.

use haidef_wsi_encoders::Batcher;
use haidef_wsi_encoders::{Encoder, ImageRef};
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
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    let mut count = jobs[0].patches.len();
                    let deadline = Instant::now() + max_wait;
                    while count < batch_size {
                        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                            Ok(j) => {
                                count += j.patches.len();
                                jobs.push(j);
                            }
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    // Jobs whose request has gone (timed out, or its caller hung up) are not
                    // embedded.
                    let (jobs, gone): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| !j.reply.is_closed());
                    let dropped: usize = gone.iter().map(|j| j.patches.len()).sum();
                    q.fetch_sub(dropped, Ordering::Relaxed);
                    let count = count - dropped;
                    if jobs.is_empty() {
                        continue;
                    }
                    let t = Instant::now();
                    let all: Vec<&Vec<u8>> = jobs.iter().flat_map(|j| j.patches.iter()).collect();
                    let mut rows: Result<Vec<Vec<f32>>, String> = Ok(Vec::with_capacity(all.len()));
                    for chunk in all.chunks(batch_size) {
                        let images: Vec<ImageRef<'_>> = chunk.iter().map(|p| ImageRef::rgb(side, side, p)).collect();
                        // A panic in the model fails this batch's requests, not the thread (which
                        // would leave every later request refused).
                        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            batcher.pack(&images).and_then(|b| encoder.embed(&b)).and_then(|e| Ok(e.to_vec2::<f32>()?))
                        }))
                        .map_err(|_| "the encoder panicked".to_string())
                        .and_then(|r| r.map_err(|e| format!("the encoder failed: {e}")));
                        s.batches.fetch_add(1, Ordering::Relaxed);
                        match (out, &mut rows) {
                            (Ok(r), Ok(rows)) => rows.extend(r),
                            (Err(e), _) => {
                                rows = Err(e);
                                break;
                            }
                            _ => break,
                        }
                    }
                    // One row per patch, or the batch fails (never rows shifted between requests).
                    if let Ok(r) = &rows {
                        if r.len() != count {
                            rows = Err(format!("the encoder returned {} rows for {count} patches", r.len()));
                        }
                    }
                    s.busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    s.patches.fetch_add(count as u64, Ordering::Relaxed);
                    q.fetch_sub(count, Ordering::Relaxed);
                    let mut rows = rows.map(|r| r.into_iter());
                    for job in jobs {
                        let n = job.patches.len();
                        let reply = match &mut rows {
                            Ok(it) => Ok(it.by_ref().take(n).collect()),
                            Err(e) => Err(e.clone()),
                        };
                        // The request may have gone (its caller hung up): nothing to do.
                        let _ = job.reply.send(reply);
                    }
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
