//! The engine every job runs on: a [`Source`] of keyed inputs → batching and the encoder → a
//! [`Sink`], as three stages joined by bounded channels, so reading, inference and writing
//! overlap and memory stays bounded (at most `queue_depth` batches between two stages).
//!
//! The source runs on a reader thread (it may decode in parallel on rayon), packing and the
//! model on an encoder thread, and the sink on the calling thread. Each stage's busy time is
//! measured, so a run tells whether the model waited for its inputs. `cancel` stops every stage
//! promptly; the first error in pipeline order is the one reported.

use crate::error::{PipelineError, Result};
use crate::files::Skipped;
use haidef_wsi_encoders::Batcher;
use haidef_wsi_encoders::{Encoder, EncoderError, ImageRef};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

/// Something the encoder can take.
pub trait Input: Send {
    /// The image to pack.
    fn image(&self) -> ImageRef<'_>;
}

/// A source of keyed inputs: slide patches, image files, ...
pub trait Source: Send {
    /// What identifies an input in the output (its key columns).
    type Key: Send;
    /// The input itself.
    type Input: Input;
    /// How many inputs it expects to yield (for progress).
    fn len(&self) -> usize;
    /// Whether it expects none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Yields every input in order through `emit`, which returns false once downstream has
    /// stopped (then return `Ok`: downstream reports its own error), and each input that cannot
    /// be used through `skip` (the job reports and lists it, and goes on). Check `cancel`
    /// between inputs.
    fn run(&mut self, emit: &mut dyn FnMut(Self::Key, Self::Input) -> bool, skip: &mut dyn FnMut(Skipped), cancel: &AtomicBool) -> Result<()>;
}

/// Where embeddings go, on the calling thread.
pub trait Sink<K> {
    /// Takes a batch: `keys.len() * dim` floats, row-major.
    fn write(&mut self, keys: Vec<K>, embeddings: &[f32]) -> Result<()>;
}

/// Batch size and channel depth.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineOptions {
    /// Inputs per encoder batch.
    pub batch_size: usize,
    /// Batches in flight between two stages.
    pub queue_depth: usize,
}

/// Busy time of each stage (time spent working, not waiting on a channel).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct StageTimes {
    /// Reading and decoding inputs.
    pub read: Duration,
    /// Packing batches and running the encoder.
    pub encode: Duration,
    /// Writing rows.
    pub write: Duration,
    /// Time the encoder stage waited for the reader.
    pub encode_waited: Duration,
}

/// What the engine did.
#[derive(Debug, Clone, Default)]
pub(crate) struct EngineReport {
    /// Rows written.
    pub rows: usize,
    /// Inputs the source could not use, in order.
    pub skipped: Vec<Skipped>,
    /// Busy time per stage.
    pub stages: StageTimes,
}

/// The callbacks a run reports to: `progress(rows written, expected)` after each batch is
/// written, `on_skip` with each input the source cannot use, as it happens.
#[derive(Clone, Copy)]
pub(crate) struct Reporting<'r> {
    pub cancel: &'r AtomicBool,
    pub progress: &'r (dyn Fn(usize, usize) + Sync),
    pub on_skip: &'r (dyn Fn(&Skipped) + Sync),
}

/// Runs `source` through `encoder` into `sink`. `opts` are at least 1 each: the job runner
/// checks them before it creates anything.
pub(crate) fn run<S: Source>(
    source: &mut S,
    encoder: &dyn Encoder,
    sink: &mut dyn Sink<S::Key>,
    opts: EngineOptions,
    report_to: &Reporting<'_>,
) -> Result<EngineReport> {
    let Reporting { cancel, progress, on_skip } = *report_to;
    let expected = source.len();
    let mut batcher = Batcher::new(encoder.input_spec().clone(), opts.batch_size, encoder.device().clone(), encoder.input_dtype())?;
    let (to_encoder, from_reader) = sync_channel::<(Vec<S::Key>, Vec<S::Input>)>(opts.queue_depth);
    let (to_writer, from_encoder) = sync_channel::<(Vec<S::Key>, Vec<f32>)>(opts.queue_depth);
    let mut report = EngineReport::default();
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<(Duration, Vec<Skipped>)> {
            let mut busy = Duration::ZERO;
            let mut t = Instant::now();
            let (mut keys, mut inputs) = (Vec::with_capacity(opts.batch_size), Vec::with_capacity(opts.batch_size));
            let mut stopped = false;
            let mut skipped = Vec::new();
            source.run(
                &mut |key, input| {
                    keys.push(key);
                    inputs.push(input);
                    if inputs.len() == opts.batch_size {
                        busy += t.elapsed();
                        stopped = to_encoder.send((std::mem::take(&mut keys), std::mem::take(&mut inputs))).is_err();
                        t = Instant::now();
                    }
                    !stopped
                },
                &mut |s| {
                    on_skip(&s);
                    skipped.push(s);
                },
                cancel,
            )?;
            busy += t.elapsed();
            if !inputs.is_empty() && !stopped {
                let _ = to_encoder.send((keys, inputs));
            }
            Ok((busy, skipped))
        });
        let encode = s.spawn(move || -> Result<(Duration, Duration)> {
            let (mut busy, mut waited) = (Duration::ZERO, Duration::ZERO);
            loop {
                let t = Instant::now();
                let Ok((keys, inputs)) = from_reader.recv() else { break };
                waited += t.elapsed();
                if cancel.load(Ordering::Relaxed) {
                    return Err(PipelineError::Cancelled);
                }
                let t = Instant::now();
                let images: Vec<ImageRef<'_>> = inputs.iter().map(Input::image).collect();
                let emb = encoder.embed(&batcher.pack(&images)?)?;
                let emb = emb.flatten_all().and_then(|e| e.to_vec1::<f32>()).map_err(EncoderError::from)?;
                drop(images);
                drop(inputs);
                busy += t.elapsed();
                if to_writer.send((keys, emb)).is_err() {
                    break;
                }
            }
            Ok((busy, waited))
        });
        // The sink: this thread.
        let mut written = Ok(());
        for (keys, emb) in from_encoder.iter() {
            if cancel.load(Ordering::Relaxed) {
                written = Err(PipelineError::Cancelled);
                break;
            }
            let t = Instant::now();
            let n = keys.len();
            if let Err(e) = sink.write(keys, &emb) {
                written = Err(e);
                break;
            }
            report.rows += n;
            report.stages.write += t.elapsed();
            progress(report.rows, expected);
        }
        drop(from_encoder);
        // Report the first error in pipeline order.
        let (read, skipped) = reader.join().map_err(|_| PipelineError::Options("internal: the reader stage panicked".into()))??;
        let (enc, waited) = encode.join().map_err(|_| PipelineError::Options("internal: the encoder stage panicked".into()))??;
        written?;
        report.stages.read = read;
        report.skipped = skipped;
        report.stages.encode = enc;
        report.stages.encode_waited = waited;
        Ok::<(), PipelineError>(())
    })?;
    if cancel.load(Ordering::Relaxed) {
        return Err(PipelineError::Cancelled);
    }
    Ok(report)
}
