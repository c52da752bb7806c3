//! `dicom_path` instances: patches read from DICOMweb stores through the library's client
//! (frames fetched many per request, cached, decoded on the slide's cache), only from stores on
//! the server's allowlist (deny by default; each redirect hop and bulk-data URI checked too).
//!
//! The caller's `bearer_token` goes to the store and nowhere else. Slides stay open between
//! requests (their metadata, frames and decoded tiles cached), one per series URL and token, so
//! that a token the store refused, or another caller's token, never reads from a slide it did
//! not open. Errors carry Google's codes: a token the store refuses is
//! `INVALID_CREDENTIALS_ERROR` for that instance only.

use super::api::{ApiError, Code, Patch};
use super::icc::IccTargets;
use super::pixels::cut;
use super::resize::{area_rgb8, cubic_rgb8};
use haidef_wsi_dicom::{parse_series_url, Auth, DicomWebOptions, OutOfBounds, Slide, StopWhen, UrlAllowlist, WsiError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How one `dicom_path` instance is read: the caller's token and extensions, and the flag set
/// when its request has ended (answered, timed out, caller gone), at which the read stops.
pub(crate) struct Read<'a> {
    /// `bearer_token` (empty: none).
    pub token: &'a str,
    /// `require_patches_fully_in_source_image`.
    pub fully_inside: bool,
    /// `transform_imaging_to_icc_profile` (NONE, SRGB, ADOBERGB, ROMMRGB).
    pub icc: &'a str,
    /// `image_dimensions`.
    pub dims: Option<(u32, u32)>,
    /// Set when the request has ended.
    pub ended: &'a Arc<AtomicBool>,
}

/// One cached slide: opened once, whoever asks first; later askers wait for it. With the
/// `ended` flags of the requests reading from it now: when all of those have ended, its reads
/// stop (see [`DicomWebOptions::stop`]).
#[derive(Default)]
struct Opened {
    slide: Mutex<Option<Arc<Slide>>>,
    readers: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

type Entry = Arc<Opened>;

/// A request reading from a slide, registered while it reads.
struct Reading<'a> {
    entry: &'a Opened,
    ended: Arc<AtomicBool>,
}

impl<'a> Reading<'a> {
    fn new(entry: &'a Opened, ended: &Arc<AtomicBool>) -> Self {
        entry.readers.lock().unwrap_or_else(|e| e.into_inner()).push(ended.clone());
        Reading { entry, ended: ended.clone() }
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut readers = self.entry.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = readers.iter().position(|r| Arc::ptr_eq(r, &self.ended)) {
            readers.swap_remove(i);
        }
    }
}

/// The approved DICOMweb stores and the slides open on them.
pub struct DicomStores {
    allowlist: Arc<UrlAllowlist>,
    options: DicomWebOptions,
    /// (series URL, bearer token) → slide, most recently used last.
    open: Mutex<VecDeque<((String, String), Entry)>>,
    max_open: usize,
}

impl std::fmt::Debug for DicomStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys hold bearer tokens: only the count is shown.
        let open = self.open.lock().map_or(0, |o| o.len());
        f.debug_struct("DicomStores").field("approved", &self.allowlist.prefixes().collect::<Vec<_>>()).field("open_slides", &open).finish()
    }
}

impl DicomStores {
    /// Stores under the `approved` URL prefixes (none: every `dicom_path` is refused), read
    /// with `options` (its `auth` and `allowlist` are set per request), keeping up to
    /// `max_open` slides open (each with `options.cache_bytes` of frames and tiles).
    pub fn new<S: AsRef<str>>(approved: &[S], options: DicomWebOptions, max_open: usize) -> crate::error::Result<Self> {
        let allowlist = Arc::new(UrlAllowlist::new(approved)?);
        let options = DicomWebOptions { allowlist: Some(allowlist.clone()), auth: Auth::None, ..options };
        Ok(DicomStores { allowlist, options, open: Mutex::new(VecDeque::new()), max_open: max_open.max(1) })
    }

    /// The approved prefixes, normalised.
    pub fn approved(&self) -> Vec<String> {
        self.allowlist.prefixes().map(str::to_string).collect()
    }

    /// The store (origin) of `series_path` when it is approved: the key of its reading slots.
    pub(crate) fn store_of(&self, series_path: &str) -> Option<String> {
        let (series_url, _, _) = parse_series_url(series_path).ok()?;
        self.allowlist.allowed_origin(&series_url)
    }

    /// The cache entry of the slide at `series_url` as `token` sees it (made now, or earlier).
    fn entry(&self, series_url: &str, token: &str) -> Entry {
        let key = (series_url.to_string(), token.to_string());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match open.iter().position(|(k, _)| *k == key) {
            Some(i) => open.remove(i).map(|(_, e)| e).unwrap_or_default(),
            None => Entry::default(),
        };
        open.push_back((key, entry.clone()));
        while open.len() > self.max_open {
            open.pop_front();
        }
        entry
    }

    /// The slide of `entry`, opened now or earlier.
    fn slide(&self, entry: &Opened, series_url: &str, token: &str) -> Result<Arc<Slide>, WsiError> {
        let mut slot = entry.slide.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slide) = slot.as_ref() {
            return Ok(slide.clone());
        }
        let auth = if token.is_empty() { Auth::None } else { Auth::Bearer(token.to_string()) };
        // Its reads stop once every request reading from it has ended.
        let readers = entry.readers.clone();
        let stop = StopWhen(Arc::new(move || {
            let r = readers.lock().unwrap_or_else(|e| e.into_inner());
            !r.is_empty() && r.iter().all(|ended| ended.load(Ordering::Relaxed))
        }));
        match Slide::open_dicomweb(series_url, &DicomWebOptions { auth, stop: Some(stop), ..self.options.clone() }) {
            Ok(slide) => {
                let slide = Arc::new(slide);
                *slot = Some(slide.clone());
                Ok(slide)
            }
            Err(e) => {
                drop(slot);
                self.forget(&(series_url.to_string(), token.to_string()));
                Err(e)
            }
        }
    }

    fn forget(&self, key: &(String, String)) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|(k, _)| k != key);
    }

    /// The RGB8 patches of a `dicom_path` instance, in order: `instance_uids[0]` names the
    /// level (Google's server reads the same). Outside the level is black where the caller
    /// allows patches past its edge.
    /// `read.icc` is the target profile's name (NONE, SRGB, ADOBERGB, ROMMRGB); the level's own
    /// profile is the source (no profile: no transform, as Google's server; a profile the
    /// metadata points at but that could not be fetched: an error, never the untransformed
    /// pixels). With `read.dims` (`image_dimensions`) the patches are cut from the level
    /// resized to that size, each resampled from its part of the level as EZ-WSI does (see
    /// [`source_span`]). Once `read.ended` is set, the read stops before its next request to
    /// the store.
    pub(crate) fn patches(
        &self,
        series_path: &str,
        instance_uids: &[String],
        patches: &[Patch],
        read: &Read<'_>,
        targets: &IccTargets,
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        let Read { token, fully_inside, icc, dims, ended } = *read;
        let stop = || ApiError::new(Code::DicomError, "the request ended before the instance was read");
        // As Google's server: the path is parsed first, then its store checked.
        let (series_url, _, _) = parse_series_url(series_path).map_err(|e| ApiError::new(Code::DicomPath, e.to_string()))?;
        if !self.allowlist.allows_str(&series_url) {
            return Err(ApiError::new(
                Code::UnapprovedDicomStore,
                "series_path is not under a DICOMweb store approved on this server (the operator approves stores with --allow-dicomweb URL_PREFIX)",
            ));
        }
        if ended.load(Ordering::Relaxed) {
            return Err(stop());
        }
        let entry = self.entry(&series_url, token);
        let _reading = Reading::new(&entry, ended);
        let slide = self.slide(&entry, &series_url, token).map_err(|e| {
            if matches!(e, WsiError::DicomWebDenied { .. }) {
                // A slide opened with a token the store has since refused is opened afresh next time.
                self.forget(&(series_url.clone(), token.to_string()));
            }
            code_of(&e)
        })?;
        let uid = instance_uids.first().map(String::as_str).unwrap_or_default();
        let level = slide
            .levels()
            .iter()
            .find(|l| l.info().sop_instance_uid == uid)
            .ok_or_else(|| ApiError::new(Code::LevelNotFound, format!("instance {uid} is not a pyramid level of series {series_url}")))?;
        let (w, h) = (i64::from(level.width()), i64::from(level.height()));
        if let (Some(e), "SRGB" | "ADOBERGB" | "ROMMRGB") = (&level.info().icc_profile_error, icc) {
            // The slide is opened afresh next time: the failure may have been passing (a store's
            // 503, a timeout, a read stopped because its request had ended).
            self.forget(&(series_url.clone(), token.to_string()));
            let e = code_of(e);
            return Err(ApiError::new(
                e.code,
                format!("the level's ICC profile could not be read, so its colours cannot be transformed to {icc}: {}", e.description),
            ));
        }
        let to_srgb = targets.transform(icc, level.info().icc_profile.as_deref(), Code::DicomError)?;
        let resize = match dims {
            Some((dw, dh)) if (i64::from(dw), i64::from(dh)) != (w, h) => Some(resized(w, h, i64::from(dw), i64::from(dh))?),
            _ => None,
        };
        // Each patch's rectangle on the level (for a resized level, the part of the level it
        // is resampled from, as EZ-WSI computes it), and its part inside the level; the frames
        // under all of them are announced first, so that the client fetches them many per
        // request.
        let mut rects = Vec::with_capacity(patches.len());
        let mut spans = Vec::with_capacity(patches.len());
        let mut clipped = Vec::with_capacity(patches.len());
        let mut frames = Vec::new();
        let (tw, th) = (i64::from(level.tile_size().0), i64::from(level.tile_size().1));
        for p in patches {
            let (sx, sy) = match resize {
                Some((dw, dh)) => (source_span(p.x, p.width, w, dw), source_span(p.y, p.height, h, dh)),
                None => (Span { start: p.x, len: p.width, target: p.width, pad: 0 }, Span { start: p.y, len: p.height, target: p.height, pad: 0 }),
            };
            spans.push((sx, sy));
            let ((sx, sw), (sy, sh)) = ((sx.start, sx.len), (sy.start, sy.len));
            let inside = sx >= 0 && sy >= 0 && sw > 0 && sh > 0 && sx + sw <= w && sy + sh <= h;
            if fully_inside && !inside {
                return Err(ApiError::new(
                    Code::PatchOutsideImage,
                    format!(
                        "patch at ({}, {}) of {}x{} is not inside the {w}x{h} level {uid}{}",
                        p.x,
                        p.y,
                        p.width,
                        p.height,
                        resize.map_or(String::new(), |(dw, dh)| format!(" resized to {dw}x{dh}"))
                    ),
                ));
            }
            let (x0, y0, x1, y1) = (sx.max(0), sy.max(0), (sx + sw).min(w), (sy + sh).min(h));
            if x0 < x1 && y0 < y1 {
                for ty in y0 / th..=(y1 - 1) / th {
                    frames.extend((x0 / tw..=(x1 - 1) / tw).filter_map(|tx| level.frame_at(tx as u32, ty as u32)));
                }
                clipped.push(Some((x0, y0, (x1 - x0) as u32, (y1 - y0) as u32)));
            } else {
                clipped.push(None);
            }
            rects.push((sx, sy, sw, sh));
        }
        frames.sort_unstable();
        frames.dedup();
        level.frame_source().prefetch(&frames);
        // Read, transform and shrink in chunks: a source rectangle of a level shrunk 8× is 64
        // times a patch, so a whole request's rectangles at once could take gigabytes.
        let mut out = Vec::with_capacity(patches.len());
        let all: Vec<_> = patches.iter().zip(&clipped).zip(rects).zip(spans).collect();
        // 64 patches' worth of source pixels per chunk, whatever the shrink.
        let per_patch = resize.map_or(1, |(dw, dh)| ((w as f64 / dw as f64).max(h as f64 / dh as f64).ceil() as usize).pow(2));
        for chunk in all.chunks((64 / per_patch).max(1)) {
            if ended.load(Ordering::Relaxed) {
                return Err(stop());
            }
            let reads: Vec<_> = chunk.iter().filter_map(|(((_, c), _), _)| **c).collect();
            let mut regions = level.read_regions(&reads, OutOfBounds::Error).map_err(|e| {
                if matches!(e, WsiError::DicomWebDenied { .. }) {
                    self.forget(&(series_url.clone(), token.to_string()));
                }
                code_of(&e)
            })?;
            regions.reverse();
            for &(((p, c), (sx, sy, sw, sh)), (span_x, span_y)) in chunk {
                // The source rectangle, black outside the level; its colours transformed, then
                // (resized levels) shrunk to the patch, in Google's order.
                let rect = (sx, sy, sw, sh);
                let mut pixels = match (c, c.and_then(|_| regions.pop())) {
                    (Some((x0, y0, cw, ch)), Some(region)) => cut(&region.data, (*x0, *y0, i64::from(*cw), i64::from(*ch)), rect),
                    _ => cut(&[], (0, 0, 0, 0), rect),
                };
                if let Some(t) = &to_srgb {
                    t.apply(&mut pixels);
                }
                if resize.is_some() && (sw, sh) != (p.width, p.height) {
                    if sw <= 0 || sh <= 0 {
                        return Err(ApiError::new(Code::PatchOutsideImage, format!("patch at ({}, {}) covers no pixel of the level", p.x, p.y)));
                    }
                    pixels = if p.width > sw || p.height > sh {
                        // Enlarged (on either axis): the part of the level resized with OpenCV's
                        // INTER_CUBIC to its size in the resized level, the patch cut from it.
                        enlarge(&pixels, (sw, sh), (span_x, span_y), (p.width, p.height))?
                    } else {
                        area_rgb8(&pixels, sw as usize, sh as usize, p.width as usize, p.height as usize)
                    };
                }
                out.push(pixels);
            }
        }
        Ok(out)
    }
}

/// Checks `image_dimensions` (dw, dh) for a level of w×h, as Google's server: shrinking by
/// more than 8× is refused (enlarging is not limited).
fn resized(w: i64, h: i64, dw: i64, dh: i64) -> Result<(i64, i64), ApiError> {
    let factor = (w as f64 / dw as f64).max(h as f64 / dh as f64);
    if factor > 8.0 {
        return Err(ApiError::new(
            Code::DicomImageDownsamplingTooLarge,
            format!("image_dimensions {dw}x{dh} shrinks the {w}x{h} level {factor:.2}x; at most 8x"),
        ));
    }
    Ok((dw, dh))
}

/// Where a patch of a resized level comes from along one axis, as EZ-WSI's
/// `_DicomPatchAbstractSource` computes it: the part of the level (first pixel, length), and
/// when the level is enlarged on this axis, the length that part is enlarged to and the offset
/// of the patch in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: i64,
    len: i64,
    target: i64,
    pad: i64,
}

/// The [`Span`] of a patch at `start`, `len` long, of a level `size` pixels long resized to
/// `resized`. The ends are scaled (`pt * size / resized`, in double) and, when shrinking,
/// rounded half to even (Python's `round`), when enlarging, floored and ceiled.
fn source_span(start: i64, len: i64, size: i64, resized: i64) -> Span {
    // Products in i128: level sizes come from the store and coordinates from the caller.
    let scale = |pt: i64, from: i64, to: i64| (i128::from(pt) * i128::from(to)) as f64 / from as f64;
    let (a, b) = (scale(start, resized, size), scale(start + len, resized, size));
    let (s, e, pad) = if size >= resized {
        (a.round_ties_even() as i64, b.round_ties_even() as i64, 0)
    } else {
        (a.floor() as i64, b.ceil() as i64, ((a - a.floor()) * resized as f64 / size as f64).round_ties_even() as i64)
    };
    let target = scale(e, size, resized).round_ties_even() as i64 - scale(s, size, resized).round_ties_even() as i64;
    Span { start: s, len: e - s, target, pad }
}

/// EZ-WSI's enlarging: `region` (w×h) resized with INTER_CUBIC to the spans' targets, then
/// the patch cut at the spans' offsets.
fn enlarge(region: &[u8], (w, h): (i64, i64), (sx, sy): (Span, Span), (pw, ph): (i64, i64)) -> Result<Vec<u8>, ApiError> {
    let (tw, th) = (sx.target, sy.target);
    if tw < sx.pad + pw || th < sy.pad + ph || tw > 1 << 16 || th > 1 << 16 {
        return Err(ApiError::new(Code::DicomError, format!("cannot cut a {pw}x{ph} patch at ({}, {}) out of the {tw}x{th} enlarged region", sx.pad, sy.pad)));
    }
    let up = cubic_rgb8(region, w as usize, h as usize, tw as usize, th as usize);
    Ok(cut(&up, (0, 0, tw, th), (sx.pad, sy.pad, pw, ph)))
}

/// Google's code for a reader error.
fn code_of(e: &WsiError) -> ApiError {
    if let WsiError::DicomWebDenied { location, status } = e {
        return ApiError::new(
            Code::InvalidCredentials,
            format!("{location}: the DICOM store answered HTTP {status}: the instance's bearer_token is missing, wrong or expired"),
        );
    }
    let code = match e {
        WsiError::DicomWebDenied { .. } => Code::InvalidCredentials,
        WsiError::DicomWebRefused { .. } => Code::UnapprovedDicomStore,
        WsiError::DicomWeb { problem, .. } if problem.starts_with("not DICOM JSON") || problem.starts_with("malformed") || problem.starts_with("expected") => {
            Code::InvalidResponse
        }
        WsiError::DicomWeb { .. } => Code::HttpError,
        WsiError::InvalidArgument(_) => Code::DicomPath,
        _ => Code::DicomError,
    };
    ApiError::new(code, e.to_string())
}
