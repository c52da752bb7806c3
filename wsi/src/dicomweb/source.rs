//! Frames of one instance over WADO-RS, fetched many per request, as stored (no transcoding),
//! kept in the slide's cache, with the patch grid's prefetch hints.

use super::client::{Client, STOPPED};
use crate::cache::{Bytes, CacheKey, SlideCache};
use crate::error::{Result, WsiError};
use crate::frame_source::FrameSource;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

/// What WADO-RS frames requests ask for: frames exactly as stored.
pub(crate) const ACCEPT_FRAMES: &str = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";

/// Frames decoded by the server into Explicit VR Little Endian, for stored syntaxes this crate
/// cannot decode.
pub(crate) const ACCEPT_EXPLICIT_LE: &str = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1";

/// The stored bytes of one frame, shared between the cache and its readers.
type Frame = Bytes;

/// The requests of one instance: what is wanted next, in flight, waited for, failed. The
/// frames themselves are kept in the slide's cache.
#[derive(Debug, Default)]
struct Requests {
    /// Frames the patch grid said it will read soon, oldest first.
    wanted: VecDeque<u32>,
    /// Frames in a request now in flight.
    pending: HashSet<u32>,
    /// Readers waiting for a frame in flight, per frame.
    waiting: HashMap<u32, usize>,
    /// Why the request for a frame failed, kept only while readers that waited on it have not
    /// all seen it: a later read asks again.
    failed: HashMap<u32, (String, String)>,
    /// The transfer syntax the server's answers have named so far.
    syntax: Option<String>,
}

/// Frames of one instance on a DICOMweb server.
#[derive(Debug)]
pub(crate) struct DicomWebFrames {
    client: Arc<Client>,
    url: String,
    accept: &'static str,
    number_of_frames: u32,
    per_request: usize,
    cache: Arc<SlideCache>,
    cache_id: u32,
    requests: Mutex<Requests>,
    /// Signalled whenever a request ends.
    arrived: Condvar,
}

impl DicomWebFrames {
    /// Frames of the instance at `url`, kept in `cache` (the slide's).
    pub(crate) fn new(client: Arc<Client>, url: String, number_of_frames: u32, per_request: usize, cache: Arc<SlideCache>) -> Self {
        let cache_id = cache.register();
        DicomWebFrames {
            client,
            url,
            accept: ACCEPT_FRAMES,
            number_of_frames,
            per_request: per_request.max(1),
            cache,
            cache_id,
            requests: Mutex::default(),
            arrived: Condvar::new(),
        }
    }

    /// From now on, ask the server to decode frames to Explicit VR Little Endian (frames
    /// fetched before, in the stored syntax, are forgotten: they are kept under a new id).
    pub(crate) fn decoded_by_server(mut self) -> Self {
        self.accept = ACCEPT_EXPLICIT_LE;
        self.cache_id = self.cache.register();
        *self.requests.get_mut().unwrap_or_else(|e| e.into_inner()) = Requests::default();
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(&self, frame: u32) -> CacheKey {
        CacheKey { image: self.cache_id, frame }
    }

    fn cached(&self, frame: u32) -> bool {
        self.cache.contains(self.key(frame))
    }

    /// Fetches `frames` (0-based) in one request and caches them; returns the transfer syntax
    /// the server gave and the frames' bytes, in the order asked.
    pub(crate) fn fetch(&self, frames: &[u32]) -> Result<(Option<String>, Vec<Frame>)> {
        let list: Vec<String> = frames.iter().map(|f| (f + 1).to_string()).collect();
        let url = format!("{}/frames/{}", self.url, list.join(","));
        let (t, parts) = self.client.get_multipart(&url, self.accept, true)?;
        let fail = |problem: String| WsiError::DicomWeb { location: url.clone(), problem };
        // The transfer syntax: on the whole answer (Orthanc), on each part (others), or, for
        // unlabelled application/octet-stream, the standard's default, Explicit VR Little
        // Endian (compressed bytes taken for raw ones fail the size check when decoded).
        let media = parts.first().and_then(|p| p.media_type()).or_else(|| t.part_type.clone());
        let syntax = t
            .transfer_syntax
            .clone()
            .or_else(|| parts.first().and_then(|p| p.transfer_syntax()))
            .or_else(|| (media.as_deref() == Some("application/octet-stream")).then(|| "1.2.840.10008.1.2.1".to_string()));
        for (i, part) in parts.iter().enumerate() {
            if let (Some(own), Some(all)) = (part.transfer_syntax(), &syntax) {
                if &own != all {
                    return Err(fail(format!("part {} is in transfer syntax {own}, the answer in {all}", i + 1)));
                }
            }
        }
        if parts.len() != frames.len() {
            return Err(fail(format!("asked for frames {} but got {} parts", list.join(","), parts.len())));
        }
        for (&frame, part) in frames.iter().zip(&parts) {
            if let Some(loc) = part.header("content-location") {
                if !loc.ends_with(&format!("/frames/{}", frame + 1)) {
                    return Err(fail(format!("part for frame {} is labelled {loc}", frame + 1)));
                }
            }
        }
        let bodies: Vec<Frame> = parts.into_iter().map(|p| Arc::new(p.body)).collect();
        let mut state = self.lock();
        // Every answer must be in the syntax the frames are decoded as.
        match (&state.syntax, &syntax) {
            (Some(known), Some(now)) if known != now => {
                return Err(fail(format!("the answer is in transfer syntax {now}, but this instance's frames came as {known} before")));
            }
            (None, Some(now)) => state.syntax = Some(now.clone()),
            _ => {}
        }
        for (&frame, body) in frames.iter().zip(&bodies) {
            state.failed.remove(&frame);
            // Kept before the request is settled, so that readers waiting on it find them (or,
            // if evicted meanwhile, ask again).
            self.cache.insert(self.key(frame), body.clone());
        }
        Ok((syntax, bodies))
    }
}

impl DicomWebFrames {
    /// Splits `index` and the wanted frames not yet cached or in flight into requests of
    /// `per_request` frames, at most `max_in_flight` of them; marks them pending. The first
    /// request holds `index`. A band smaller than `per_request` stays one request: Orthanc 1.x
    /// loads the whole instance for every request, so splitting it finer costs more than the
    /// overlap gains (measured: docs/BENCHMARKS.md).
    fn plan(&self, state: &mut Requests, index: u32) -> Vec<Vec<u32>> {
        let mut frames = vec![index];
        let mut seen = HashSet::from([index]);
        while let Some(f) = state.wanted.pop_front() {
            if !self.cached(f) && !state.pending.contains(&f) && seen.insert(f) {
                frames.push(f);
            }
        }
        let mut taken = frames.len().min(self.per_request * self.client.max_in_flight());
        // No more than the cache keeps for new entries (by the average entry held now), so
        // that one plan's answers do not evict each other before their readers get them.
        if let Some(average) = self.cache.bytes().checked_div(self.cache.len()).filter(|a| *a > 0) {
            taken = taken.min((self.cache.room_for_new() / average).max(1));
        }
        state.wanted.extend(frames.drain(taken..));
        state.pending.extend(frames.iter().copied());
        frames.chunks(self.per_request).map(<[u32]>::to_vec).collect()
    }

    /// Fetches one planned request and settles its frames: cached, or, for readers waiting on
    /// them, failed with the error. Settles them even if the fetch panics, so that no reader
    /// waits forever.
    fn run(&self, frames: &[u32]) -> Result<Vec<Frame>> {
        struct Settle<'a> {
            source: &'a DicomWebFrames,
            frames: &'a [u32],
            error: Option<(String, String)>,
        }
        impl Drop for Settle<'_> {
            fn drop(&mut self) {
                let error = self.error.take().or_else(|| std::thread::panicking().then(|| (self.source.url.clone(), "the request panicked".to_string())));
                let mut state = self.source.lock();
                for f in self.frames {
                    state.pending.remove(f);
                    if let Some(e) = &error {
                        if state.waiting.get(f).is_some_and(|n| *n > 0) {
                            state.failed.insert(*f, e.clone());
                        }
                    }
                }
                drop(state);
                self.source.arrived.notify_all();
            }
        }
        let mut settle = Settle { source: self, frames, error: None };
        let result = self.fetch(frames).map(|(_, bodies)| bodies).map_err(|e| match e {
            WsiError::DicomWeb { location, problem } => {
                WsiError::DicomWeb { location, problem: format!("{problem} (while reading frames {:?})", frames.iter().map(|f| f + 1).collect::<Vec<_>>()) }
            }
            other => other,
        });
        if let Err(e) = &result {
            settle.error = Some(match e {
                WsiError::DicomWeb { location, problem } => (location.clone(), problem.clone()),
                other => (self.url.clone(), other.to_string()),
            });
        }
        result
    }
}

impl FrameSource for DicomWebFrames {
    fn frame_bytes(&self, index: u32) -> Result<Vec<u8>> {
        if index >= self.number_of_frames {
            return Err(WsiError::frame(self.url.clone(), index, format!("does not exist: the image has {} frames", self.number_of_frames)));
        }
        let mut state = self.lock();
        loop {
            if let Some(f) = self.cache.get(self.key(index)) {
                drop(state);
                return Ok(f.to_vec());
            }
            if !state.pending.contains(&index) {
                break;
            }
            *state.waiting.entry(index).or_default() += 1;
            state = self.arrived.wait(state).unwrap_or_else(|e| e.into_inner());
            let left = state.waiting.get_mut(&index).map(|n| {
                *n -= 1;
                *n
            });
            if left == Some(0) {
                state.waiting.remove(&index);
            }
            // The request this reader waited on failed: report it (the last waiter clears it).
            if let Some((location, problem)) = state.failed.get(&index).cloned() {
                if left == Some(0) {
                    state.failed.remove(&index);
                }
                // Stopped because every reader that wanted it had gone (DicomWebOptions::stop),
                // yet this one is here: it asks again itself.
                if problem.starts_with(STOPPED) {
                    continue;
                }
                return Err(WsiError::DicomWeb { location, problem });
            }
        }
        let requests = self.plan(&mut state, index);
        drop(state);
        // This thread sends the request holding `index`; the others go out alongside it.
        let (first, others) = requests.split_first().expect("plan gives at least one request");
        let mine = std::thread::scope(|scope| {
            for frames in others {
                scope.spawn(move || self.run(frames));
            }
            self.run(first)
        });
        // The first frame of the first request is `index`.
        Ok(mine?[0].to_vec())
    }

    fn prefetch(&self, indices: &[u32]) {
        let mut state = self.lock();
        let new: Vec<u32> = indices.iter().copied().filter(|f| *f < self.number_of_frames && !self.cached(*f)).collect();
        state.wanted.extend(new);
    }

    fn location(&self) -> &str {
        &self.url
    }
}
