//! Frames of one instance over WADO-RS, fetched many per request, as stored (no transcoding),
//! with a byte-capped cache and the patch grid's prefetch hints.

use super::client::Client;
use super::multipart::{parse_body, parse_content_type};
use crate::error::{Result, WsiError};
use crate::frame_source::FrameSource;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What WADO-RS frames requests ask for: frames exactly as stored.
pub(crate) const ACCEPT_FRAMES: &str = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";

/// Frames decoded by the server into Explicit VR Little Endian, for stored syntaxes this crate
/// cannot decode.
pub(crate) const ACCEPT_EXPLICIT_LE: &str =
    "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1";

#[derive(Debug, Default)]
struct Cache {
    frames: HashMap<u32, Arc<Vec<u8>>>,
    order: VecDeque<u32>,
    bytes: usize,
    wanted: Vec<u32>,
}

/// Frames of one instance on a DICOMweb server.
#[derive(Debug)]
pub struct DicomWebFrames {
    client: Arc<Client>,
    url: String,
    accept: &'static str,
    number_of_frames: u32,
    per_request: usize,
    cap: usize,
    cache: Mutex<Cache>,
    /// One request in flight per instance; readers of other frames wait and then find them.
    fetching: Mutex<()>,
}

impl DicomWebFrames {
    pub(crate) fn new(client: Arc<Client>, url: String, number_of_frames: u32, per_request: usize, cap: usize) -> Self {
        DicomWebFrames { client, url, accept: ACCEPT_FRAMES, number_of_frames, per_request: per_request.max(1), cap, cache: Mutex::default(), fetching: Mutex::new(()) }
    }

    /// From now on, ask the server to decode frames to Explicit VR Little Endian.
    pub(crate) fn decoded_by_server(mut self) -> Self {
        self.accept = ACCEPT_EXPLICIT_LE;
        *self.cache.get_mut().unwrap_or_else(|e| e.into_inner()) = Cache::default();
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches `frames` (0-based) in one request; returns the transfer syntax the server gave.
    pub(crate) fn fetch(&self, frames: &[u32]) -> Result<Option<String>> {
        let list: Vec<String> = frames.iter().map(|f| (f + 1).to_string()).collect();
        let url = format!("{}/frames/{}", self.url, list.join(","));
        let (content_type, body) = self.client.get(&url, self.accept)?;
        let fail = |problem: String| WsiError::DicomWeb { location: url.clone(), problem };
        let t = parse_content_type(&content_type).map_err(fail)?;
        let parts = parse_body(&body, &t.boundary).map_err(|p| fail(format!("malformed multipart answer: {p}")))?;
        if parts.len() != frames.len() {
            return Err(fail(format!("asked for frames {} but got {} parts", list.join(","), parts.len())));
        }
        let mut cache = self.lock();
        for (&frame, part) in frames.iter().zip(parts) {
            if let Some(loc) = part.header("content-location") {
                if !loc.ends_with(&format!("/frames/{}", frame + 1)) {
                    return Err(fail(format!("part for frame {} is labelled {loc}", frame + 1)));
                }
            }
            if cache.frames.insert(frame, Arc::new(part.body.clone())).is_none() {
                cache.order.push_back(frame);
                cache.bytes += part.body.len();
            }
        }
        while cache.bytes > self.cap && cache.order.len() > frames.len() {
            let old = cache.order.pop_front().expect("non-empty");
            if let Some(f) = cache.frames.remove(&old) {
                cache.bytes -= f.len();
            }
        }
        Ok(t.transfer_syntax)
    }
}

impl FrameSource for DicomWebFrames {
    fn frame_bytes(&self, index: u32) -> Result<Vec<u8>> {
        if index >= self.number_of_frames {
            return Err(WsiError::frame(self.url.clone(), index, format!("does not exist: the image has {} frames", self.number_of_frames)));
        }
        if let Some(f) = self.lock().frames.get(&index) {
            return Ok(f.to_vec());
        }
        let _one_at_a_time = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        // Another thread may have fetched it meanwhile.
        if let Some(f) = self.lock().frames.get(&index) {
            return Ok(f.to_vec());
        }
        let batch: Vec<u32> = {
            let mut cache = self.lock();
            let mut batch = vec![index];
            let wanted = std::mem::take(&mut cache.wanted);
            let mut rest = Vec::new();
            for f in wanted {
                if f != index && !cache.frames.contains_key(&f) && !batch.contains(&f) {
                    if batch.len() < self.per_request {
                        batch.push(f);
                    } else {
                        rest.push(f);
                    }
                }
            }
            cache.wanted = rest;
            batch
        };
        self.fetch(&batch).map_err(|e| match e {
            WsiError::DicomWeb { location, problem } => WsiError::DicomWeb {
                location,
                problem: format!("{problem} (while reading frames {:?})", batch.iter().map(|f| f + 1).collect::<Vec<_>>()),
            },
            other => other,
        })?;
        self.lock()
            .frames
            .get(&index)
            .map(|f| f.to_vec())
            .ok_or_else(|| WsiError::frame(self.url.clone(), index, "the server's answer did not include it"))
    }

    fn prefetch(&self, indices: &[u32]) {
        let mut cache = self.lock();
        let new: Vec<u32> = indices.iter().copied().filter(|f| !cache.frames.contains_key(f)).collect();
        cache.wanted.extend(new);
    }

    fn location(&self) -> &str {
        &self.url
    }
}
