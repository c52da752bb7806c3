//! Opening a slide from a DICOMweb series URL: series metadata (WADO-RS), one pyramid level or
//! associated image per instance, built by the same code as local files.

use super::client::{Client, DicomWebOptions};
use super::source::DicomWebFrames;
use crate::cache::SlideCache;
use crate::decode::Codec;
use crate::error::{Result, WsiError};
use crate::image_info::ImageInfo;
use crate::slide::{OpenOptions, OpenedInstance, Slide};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use std::sync::Arc;

/// Splits `http(s)://host[:port]/<prefix>/studies/<study>/series/<series>` into
/// (series URL without a trailing slash, study UID, series UID).
pub fn parse_series_url(url: &str) -> Result<(String, String, String)> {
    match parse_url(url)? {
        (base, study, Some(series)) => Ok((format!("{base}/studies/{study}/series/{series}"), study, series)),
        (_, _, None) => Err(bad_url(url)),
    }
}

fn bad_url(url: &str) -> WsiError {
    WsiError::InvalidArgument(format!(
        "{url}: expected a DICOMweb series URL http(s)://host[:port]/<root>/studies/<study UID>/series/<series UID> (or a study URL, when the study holds one slide)"
    ))
}

/// (DICOMweb root, study UID, series UID if given) of a study or series URL.
fn parse_url(url: &str) -> Result<(String, String, Option<String>)> {
    // user:password@host would end up in every error message and log line: never repeat an
    // input that may hold one.
    let shown = if url.contains('@') { "<the URL, not repeated here as it may hold credentials>" } else { url };
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| WsiError::InvalidArgument(format!("{shown}: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad_url(shown));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(WsiError::InvalidArgument(format!(
            "{}://<credentials>@{}/…: credentials in the URL are not accepted (they would show in messages); give them with --basic-auth / HAIDEF_BASIC_AUTH (DicomWebOptions::auth)",
            parsed.scheme(),
            parsed.host_str().unwrap_or("")
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(WsiError::InvalidArgument(format!("{shown}: drop the ?query / #fragment: a series URL has none")));
    }
    let trimmed = parsed.as_str().trim_end_matches('/');
    let (base, rest) = trimmed.rsplit_once("/studies/").ok_or_else(|| bad_url(shown))?;
    let (study, series) = match rest.split_once("/series/") {
        Some((study, series)) => (study, Some(series)),
        None => (rest, None),
    };
    // DICOM UIDs: digits and dots, at most 64 characters.
    let uid = |u: &str| !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !uid(study) || series.is_some_and(|s| !uid(s)) {
        return Err(bad_url(shown));
    }
    Ok((base.to_string(), study.to_string(), series.map(str::to_string)))
}

/// Finds the study's slide-microscopy series with QIDO-RS (`/studies/<study>/series?Modality=SM`):
/// its UID when there is exactly one, else an error listing what there is.
fn find_sm_series(client: &Client, base: &str, study: &str) -> Result<String> {
    let query = format!("{base}/studies/{study}/series?Modality=SM&includefield=0008103E&includefield=00201209");
    let fail = |problem: String| WsiError::DicomWeb { location: query.clone(), problem };
    let (_, body) = client.get(&query, "application/dicom+json")?;
    // An empty answer (204, or no body) means no match.
    let json: serde_json::Value =
        if body.is_empty() { serde_json::json!([]) } else { serde_json::from_slice(&body).map_err(|e| fail(format!("not DICOM JSON: {e}")))? };
    let text = |item: &serde_json::Value, tag: &str| {
        item[tag]["Value"][0].as_str().map(str::to_string).or_else(|| item[tag]["Value"][0].as_i64().map(|n| n.to_string()))
    };
    let series: Vec<(String, String)> = json
        .as_array()
        .ok_or_else(|| fail("expected a JSON array of series".into()))?
        .iter()
        .filter_map(|item| {
            let uid = text(item, "0020000E")?;
            let description = text(item, "0008103E").unwrap_or_else(|| "no description".into());
            let instances = text(item, "00201209").map(|n| format!(", {n} instances")).unwrap_or_default();
            Some((uid, format!("{description}{instances}")))
        })
        .collect();
    match series.as_slice() {
        [] => Err(fail(format!("study {study} holds no slide-microscopy (Modality SM) series"))),
        [(uid, _)] => Ok(uid.clone()),
        several => Err(fail(format!(
            "study {study} holds {} slide-microscopy series; open one of them by its series URL:\n{}",
            several.len(),
            several.iter().map(|(uid, what)| format!("  {base}/studies/{study}/series/{uid}  ({what})")).collect::<Vec<_>>().join("\n")
        ))),
    }
}

impl Slide {
    /// Opens a slide from a DICOMweb series URL
    /// (`http(s)://host:port/<root>/studies/<study>/series/<series>`), or from a study URL
    /// (`…/studies/<study>`) when QIDO-RS finds exactly one slide-microscopy series in it.
    pub fn open_dicomweb(url: &str, options: &DicomWebOptions) -> Result<Slide> {
        open_series(url, options)
    }
}

/// Opens the slide at a DICOMweb series URL, or at a study URL when the study holds exactly one
/// slide-microscopy series (found with QIDO-RS).
fn open_series(url: &str, options: &DicomWebOptions) -> Result<Slide> {
    let (base, study, series) = parse_url(url)?;
    let client = Arc::new(Client::new(options)?);
    let series = match series {
        Some(series) => series,
        None => find_sm_series(&client, &base, &study)?,
    };
    let series_url = format!("{base}/studies/{study}/series/{series}");
    let (_, body) = client.get(&format!("{series_url}/metadata"), "application/dicom+json")?;
    let fail = |problem: String| WsiError::DicomWeb { location: format!("{series_url}/metadata"), problem };
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| fail(format!("not DICOM JSON: {e}")))?;
    let items = json.as_array().ok_or_else(|| fail("expected a JSON array of instances".into()))?;
    // One cache for the slide: fetched frames of every instance and decoded tiles.
    let cache = Arc::new(SlideCache::new(options.cache_bytes));
    let mut pending = Vec::new();
    let mut skipped = Vec::new();
    for item in items {
        let obj = dataset_from_json(item).map_err(|e| fail(format!("cannot read an instance's metadata: {e}")))?;
        let sop = obj
            .get(tags::SOP_INSTANCE_UID)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches('\0').trim().to_string())
            .ok_or_else(|| fail("an instance has no SOPInstanceUID".into()))?;
        let instance_url = format!("{series_url}/instances/{sop}");
        match ImageInfo::from_dataset(&obj, "", instance_url.clone()) {
            Err(e @ WsiError::NotWsi { .. }) => skipped.push(e.to_string()),
            other => {
                let info = other?;
                let frames = DicomWebFrames::new(client.clone(), instance_url, info.number_of_frames, options.frames_per_request, cache.clone());
                pending.push((info, frames, item));
            }
        }
    }
    // Each instance's first frame (for its transfer syntax) and ICC profile, all instances at
    // once within the client's bound on requests in flight: on a distant server this is one
    // round trip instead of one per instance.
    let opened = std::thread::scope(|scope| {
        let handles: Vec<_> = pending.into_iter().map(|(info, frames, item)| scope.spawn(|| finish_instance(&client, info, frames, item))).collect();
        handles.into_iter().map(|h| h.join().expect("instance set-up does not panic")).collect::<Result<Vec<_>>>()
    })?;
    let options = OpenOptions { series_instance_uid: Some(series), cache_bytes: options.cache_bytes };
    Slide::assemble(series_url, opened, skipped, &options, cache)
}

/// One instance's DICOM JSON metadata as a dataset (dicom-json), after checking that every
/// attribute key is a tag written as 8 hexadecimal digits: dicom-core 0.10.1 panics on a key of
/// 8 bytes that are not all ASCII (it slices the string at byte 4; found by the `metadata_json`
/// fuzzer, reported upstream as docs/FUZZING.md says), and a server's answer must not be able
/// to stop the process.
pub fn dataset_from_json(item: &serde_json::Value) -> std::result::Result<InMemDicomObject, String> {
    fn check(v: &serde_json::Value, depth: usize) -> std::result::Result<(), String> {
        if depth > 64 {
            return Err("sequences nested more than 64 deep".into());
        }
        let obj = v.as_object().ok_or("a dataset is not a JSON object")?;
        for (key, element) in obj {
            if key.len() != 8 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("attribute key {key:?} is not a tag (8 hexadecimal digits)"));
            }
            if element.get("vr").and_then(|vr| vr.as_str()) == Some("SQ") {
                for item in element.get("Value").and_then(|v| v.as_array()).into_iter().flatten() {
                    check(item, depth + 1)?;
                }
            }
        }
        Ok(())
    }
    check(item, 0)?;
    dicom_json::from_value(item.clone()).map_err(|e| e.to_string())
}

/// Learns an instance's transfer syntax from its first frame (the metadata does not carry it),
/// switching to server-side decoding when this crate cannot decode that syntax, and fetches its
/// ICC profile when the metadata gives it as a BulkDataURI.
fn finish_instance(client: &Client, mut info: ImageInfo, frames: DicomWebFrames, item: &serde_json::Value) -> Result<OpenedInstance> {
    let instance_url = info.location.clone();
    let ts = frames
        .fetch(&[0])?
        .0
        .ok_or_else(|| WsiError::DicomWeb { location: format!("{instance_url}/frames/1"), problem: "the answer names no transfer syntax".into() })?;
    // A stored syntax we cannot decode (JPEG-LS, HTJ2K, ...): let the server decode it.
    let (frames, ts, decoded_by_server) = if Codec::for_transfer_syntax(&ts, &instance_url).is_err() {
        let frames = frames.decoded_by_server();
        let ts = frames.fetch(&[0])?.0.unwrap_or_else(|| "1.2.840.10008.1.2.1".to_string());
        (frames, ts, true)
    } else {
        (frames, ts, false)
    };
    info.transfer_syntax = ts.clone();
    if decoded_by_server {
        // Photometric interpretations that exist only in compressed form come back as RGB.
        if matches!(info.photometric.as_str(), "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT" | "YBR_PARTIAL_420") {
            info.photometric = "RGB".into();
        }
        info.warnings.push(format!("stored transfer syntax not decodable here; frames decoded by the server to {ts}"));
    }
    if info.icc_profile.is_none() {
        // The profile is optional: without it colour conversion is unavailable, nothing else.
        match fetch_icc(client, item, &instance_url) {
            Ok(icc) => info.icc_profile = icc,
            Err(e) => {
                info.warnings.push(format!("ICC profile not fetched, so no colour conversion for this image: {e}"));
                info.icc_profile_error = Some(Arc::new(e));
            }
        }
    }
    Ok(OpenedInstance { info, frames: Arc::new(frames) })
}

/// The ICC profile of the first optical path when the metadata gives it as a BulkDataURI
/// (as Orthanc does): fetched, since colour conversion needs it. A relative URI is resolved
/// against the instance URL; credentials go only to the DICOMweb server's own origin.
fn fetch_icc(client: &Client, item: &serde_json::Value, instance_url: &str) -> Result<Option<Vec<u8>>> {
    let uri = item
        .get("00480105")
        .and_then(|seq| seq.get("Value"))
        .and_then(|v| v.get(0))
        .and_then(|path| path.get("00282000"))
        .and_then(|icc| icc.get("BulkDataURI"))
        .and_then(|u| u.as_str());
    let Some(uri) = uri else { return Ok(None) };
    let fail = |problem: String| WsiError::DicomWeb { location: uri.to_string(), problem };
    let base = reqwest::Url::parse(&format!("{instance_url}/")).map_err(|e| fail(e.to_string()))?;
    let url = base.join(uri).map_err(|e| fail(format!("not a usable BulkDataURI: {e}")))?;
    let same_origin = url.origin() == base.origin();
    let accept = "multipart/related; type=\"application/octet-stream\"";
    let (_, parts) = client.get_multipart(url.as_str(), accept, same_origin)?;
    let first = parts.into_iter().next().ok_or_else(|| fail("the bulk data answer is empty".into()))?;
    Ok(Some(first.body).filter(|b| !b.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_urls() {
        let (u, st, se) = parse_series_url("http://127.0.0.1:8042/dicom-web/studies/1.2/series/3.4/").unwrap();
        assert_eq!((u.as_str(), st.as_str(), se.as_str()), ("http://127.0.0.1:8042/dicom-web/studies/1.2/series/3.4", "1.2", "3.4"));
        assert!(parse_series_url("ftp://x/studies/1/series/2").is_err());
        assert!(parse_series_url("http://x/studies/1").is_err());
        assert!(parse_series_url("http://x/studies/1/series/2/instances/3").is_err());
        assert_eq!(parse_url("https://x/root/studies/1.2/").unwrap(), ("https://x/root".into(), "1.2".into(), None));
        assert!(parse_url("http://x/studies/").is_err());
        assert_eq!(parse_url("HTTP://[::1]:8042/dicom-web/studies/1.2/series/3").unwrap().0, "http://[::1]:8042/dicom-web");
        for with_password in [
            "http://bob:hunter2@x/studies/1/series/2",
            "HTTPS://bob:hunter2@x/studies/1/series/2",
            "http://bob:hun/ter2@x/studies/1/series/2",
            "htps://bob:hunter2@x/studies/1",
        ] {
            let err = parse_url(with_password).unwrap_err().to_string();
            assert!(!err.contains("hunter2") && !err.contains("ter2"), "{err}");
        }
        assert!(parse_url("http://bob:hunter2@x/studies/1/series/2").unwrap_err().to_string().contains("--basic-auth"));
        for junk in [
            "http://x/studies/1.2/series/3.4?x=1",
            "http://x/studies/1.2/series/3.4#f",
            "http://x/studies/1.2/series/abc",
            "http://x/studies/1.2/series/3.4/instances/5",
        ] {
            assert!(parse_url(junk).is_err(), "{junk}");
        }
    }
}
