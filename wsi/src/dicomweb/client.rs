//! A small blocking DICOMweb HTTP client: authentication, retries with backoff and jitter on
//! server-side failures, errors that say what the server answered.

use crate::error::{Result, WsiError};
use std::time::Duration;

/// How to authenticate to the DICOMweb server.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never appear in logs or errors.
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { user, .. } => write!(f, "Auth::Basic {{ user: {user:?}, password: <redacted> }}"),
            Auth::Bearer(_) => f.write_str("Auth::Bearer(<redacted>)"),
        }
    }
}

/// Options for opening a slide over DICOMweb.
#[derive(Debug, Clone)]
pub struct DicomWebOptions {
    /// Credentials.
    pub auth: Auth,
    /// Frames asked for in one WADO-RS request (Orthanc 1.x reloads the whole instance for
    /// every frames request, so many per request is much faster).
    pub frames_per_request: usize,
    /// Attempts per request on 5xx, 429, timeouts and connection failures (4xx is not retried).
    pub attempts: u32,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Bytes of fetched (still compressed) frames kept per instance.
    pub frame_cache_bytes: usize,
}

impl Default for DicomWebOptions {
    fn default() -> Self {
        DicomWebOptions {
            auth: Auth::None,
            frames_per_request: 64,
            attempts: 4,
            timeout: Duration::from_secs(60),
            frame_cache_bytes: 64 << 20,
        }
    }
}

/// The HTTP side: one connection pool, shared by all instances of a slide.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::blocking::Client,
    auth: Auth,
    attempts: u32,
}

impl Client {
    pub fn new(options: &DicomWebOptions) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| WsiError::DicomWeb { location: "client".into(), problem: e.to_string() })?;
        Ok(Client { http, auth: options.auth.clone(), attempts: options.attempts.max(1) })
    }

    /// GETs `url` with `Accept: accept`; returns (Content-Type, body).
    pub fn get(&self, url: &str, accept: &str) -> Result<(String, Vec<u8>)> {
        let fail = |problem: String| WsiError::DicomWeb { location: url.to_string(), problem };
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                // Exponential backoff with jitter: 100 ms, 200 ms, 400 ms, ... ±50%.
                let base = 100u64 << (attempt - 1).min(6);
                let jitter = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) as u64) % base;
                std::thread::sleep(Duration::from_millis(base / 2 + jitter));
            }
            let mut req = self.http.get(url).header("Accept", accept);
            req = match &self.auth {
                Auth::None => req,
                Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
                Auth::Bearer(token) => req.bearer_auth(token),
            };
            let resp = match req.send() {
                Ok(r) => r,
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    last = format!("request failed: {}", without_url(&e));
                    continue;
                }
                Err(e) => return Err(fail(without_url(&e))),
            };
            let status = resp.status();
            if status.is_success() {
                let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                match resp.bytes() {
                    Ok(b) => return Ok((ct, b.to_vec())),
                    Err(e) => {
                        last = format!("connection dropped while reading the answer: {}", without_url(&e));
                        continue;
                    }
                }
            }
            let code = status.as_u16();
            match code {
                401 | 403 => {
                    return Err(fail(format!(
                        "HTTP {code}: not authorised; check the credentials (--basic-auth user:pass or --bearer-token)"
                    )))
                }
                404 => return Err(fail("HTTP 404: not found; check the study and series UIDs and the DICOMweb root".into())),
                429 | 500..=599 => last = format!("HTTP {code}"),
                _ => return Err(fail(format!("HTTP {code}: {}", status.canonical_reason().unwrap_or("error")))),
            }
        }
        Err(fail(format!("gave up after {} attempts; last: {last}", self.attempts)))
    }
}

/// reqwest errors embed the URL, which may carry credentials in user-info: drop it.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}
