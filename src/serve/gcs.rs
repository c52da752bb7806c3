//! `image_file_uri` (`gs://bucket/object`): images fetched from Cloud Storage buckets on the
//! server's allowlist (deny by default, as Google's `APPROVED_GCS_SOURCE_LIST`), with the
//! caller's `bearer_token` sent to Cloud Storage and nowhere else. Objects are read through the
//! XML API's path form (`{endpoint}/{bucket}/{object}`, endpoint `https://storage.googleapis.com`
//! or an emulator's), redirects are not followed, and answers are bounded in bytes.

use super::api::{ApiError, Code};
use std::io::Read;
use std::time::Duration;

/// The approved buckets and how to reach them.
#[derive(Debug)]
pub struct GcsBuckets {
    /// (bucket, object prefix) pairs; an empty prefix approves the whole bucket.
    approved: Vec<(String, String)>,
    endpoint: reqwest::Url,
    http: reqwest::blocking::Client,
    max_bytes: u64,
}

/// (bucket, object) of `gs://bucket/object`, or why not.
pub(crate) fn split(uri: &str) -> Option<(&str, &str)> {
    let (bucket, object) = uri.strip_prefix("gs://")?.split_once('/')?;
    // Bucket names: 3–222 of lower-case letters, digits, dots, dashes and underscores.
    let bucket_ok = (3..=222).contains(&bucket.len()) && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    // No empty, "." or ".." segments (they would change the path the request names).
    let object_ok = !object.is_empty()
        && object.len() <= 1024
        && object.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        && !object.contains(['\r', '\n', '#', '?', '%', '\\']);
    (bucket_ok && object_ok).then_some((bucket, object))
}

impl GcsBuckets {
    /// Buckets `approved` (`gs://bucket` or `gs://bucket/prefix/`) at `endpoint`, each request
    /// within `timeout`, objects of at most `max_bytes`.
    pub fn new<S: AsRef<str>>(approved: &[S], endpoint: &str, timeout: Duration, max_bytes: u64) -> Result<Self, String> {
        let approved = approved
            .iter()
            .map(|a| {
                let a = a.as_ref().trim();
                let with_slash = if a.strip_prefix("gs://").is_some_and(|r| !r.contains('/')) { format!("{a}/") } else { a.to_string() };
                let bad = || format!("approved bucket {a:?}: expected gs://BUCKET or gs://BUCKET/PREFIX/");
                match with_slash.strip_prefix("gs://").and_then(|r| r.split_once('/')) {
                    // A prefix names a folder: `cases` approves `cases/…`, not `cases-private/…`.
                    Some((bucket, prefix)) if split(&format!("gs://{bucket}/x")).is_some() => {
                        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
                        Ok((bucket.to_string(), prefix))
                    }
                    _ => Err(bad()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let endpoint = reqwest::Url::parse(endpoint).map_err(|e| format!("Cloud Storage endpoint {endpoint:?}: {e}"))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(format!("Cloud Storage endpoint {endpoint}: expected http(s)://"));
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(GcsBuckets { approved, endpoint, http, max_bytes })
    }

    /// Whether `uri` is a well-formed `gs://` URI under an approved bucket and prefix.
    pub(crate) fn is_approved(&self, uri: &str) -> bool {
        split(uri).is_some_and(|(bucket, object)| self.approved.iter().any(|(b, prefix)| b == bucket && object.starts_with(prefix.as_str())))
    }

    /// The object at `uri`, read with `token` (none when empty).
    pub fn fetch(&self, uri: &str, token: &str) -> Result<Vec<u8>, ApiError> {
        let (bucket, object) = split(uri).ok_or_else(|| ApiError::new(Code::GcsImagePathFormat, "image_file_uri must be gs://BUCKET/OBJECT"))?;
        if !self.is_approved(uri) {
            return Err(ApiError::new(
                Code::UnapprovedGcsBucket,
                format!("gs://{bucket} is not a bucket approved on this server (the operator approves buckets with --allow-gcs gs://BUCKET)"),
            ));
        }
        let mut url = self.endpoint.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| ApiError::new(Code::HttpError, "the Cloud Storage endpoint cannot take a path"))?;
            path.pop_if_empty().push(bucket);
            for segment in object.split('/') {
                path.push(segment);
            }
        }
        let mut request = self.http.get(url);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let shown = format!("gs://{bucket}/{object}");
        let fail = |code: Code, m: String| ApiError::new(code, format!("{shown}: {m}"));
        let response =
            request.send().map_err(|e| fail(Code::HttpError, format!("request failed: {}", if e.is_timeout() { "timed out" } else { "no answer" })))?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            401 | 403 => {
                return Err(fail(
                    Code::InvalidCredentials,
                    format!("Cloud Storage answered HTTP {status}: the instance's bearer_token is missing, wrong or expired"),
                ))
            }
            300..=399 => return Err(fail(Code::HttpError, format!("Cloud Storage answered a redirect (HTTP {status}), which this server does not follow"))),
            _ => return Err(fail(Code::HttpError, format!("Cloud Storage answered HTTP {status}"))),
        }
        if response.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(fail(Code::ImageDimension, format!("the object is larger than the server's limit of {} bytes", self.max_bytes)));
        }
        let mut bytes = Vec::new();
        response.take(self.max_bytes + 1).read_to_end(&mut bytes).map_err(|e| fail(Code::HttpError, format!("the answer broke off: {e}")))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(fail(Code::ImageDimension, format!("the object is larger than the server's limit of {} bytes", self.max_bytes)));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn gs_uris_are_split_and_odd_ones_refused() {
        assert_eq!(split("gs://my-bucket/slides/a b.png"), Some(("my-bucket", "slides/a b.png")));
        for bad in [
            "gs:///placeholder.png",
            "gs://b/x.png",
            "gs://Bucket/x.png",
            "gs://bucket",
            "gs://bucket/",
            "gs://bucket/a/../b.png",
            "gs://bucket/a//b",
            "gs://bucket/a?b",
            "https://bucket/x.png",
            "gs:/bucket/x",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
