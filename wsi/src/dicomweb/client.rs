//! A small blocking DICOMweb HTTP client: authentication, retries with backoff and jitter on
//! server-side failures, errors that say what the server answered.

use super::allowlist::UrlAllowlist;
use super::multipart::{parse_body, parse_content_type, MultipartType, Part};
use crate::error::{Result, WsiError};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How to authenticate to the DICOMweb server.
#[derive(Clone, Default)]
#[non_exhaustive]
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
    /// Attempts per request on 5xx, 429, timeouts and connection failures (4xx is not retried),
    /// waiting the server's `Retry-After` (at most 30 s) or an exponential backoff with jitter.
    pub attempts: u32,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Bytes of fetched (still compressed) frames and decoded tiles kept for the slide, over
    /// all its instances: one cache, as [`crate::OpenOptions::cache_bytes`] (0 keeps none, so
    /// every frame read is a request).
    pub cache_bytes: usize,
    /// Requests in flight at once, over all instances of the slide. A frame miss sends the
    /// frames the patch grid will need next as up to this many requests of
    /// `frames_per_request` frames, together. Against servers that answer small requests
    /// quickly and in parallel (cloud stores), a smaller `frames_per_request` with more requests
    /// in flight overlaps their latency.
    pub max_concurrent_requests: usize,
    /// Extra certificate authorities (PEM files) trusted for `https://`, on top of the
    /// system's trust store (which also honours `SSL_CERT_FILE`). For servers with an in-house CA.
    pub ca_certificates: Vec<PathBuf>,
    /// When set, every URL the client requests (series, frames, bulk data, and each redirect
    /// hop) must be under one of these prefixes; others are refused with
    /// [`WsiError::DicomWebRefused`] before anything is sent. For servers that fetch URLs their
    /// callers name. None: any URL.
    pub allowlist: Option<Arc<UrlAllowlist>>,
    /// The largest answer read from the server, in bytes (metadata, a frames request, bulk
    /// data); a larger one is an error naming this option, and is not read further. Default
    /// 1 GiB: far above any real answer (64 uncompressed 1024² RGB frames are 192 MiB), yet a
    /// bound for servers that fetch what strangers name.
    pub max_answer_bytes: u64,
    /// When set, asked before every request and retry (and during the wait before a retry):
    /// once it says stop, reading fails at once with an error saying so. For servers whose
    /// callers may leave: a read nobody waits for stops instead of running out its retries.
    pub stop: Option<StopWhen>,
}

/// A check that says when a slide's reads should stop (see [`DicomWebOptions::stop`]).
#[derive(Clone)]
pub struct StopWhen(pub Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for StopWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopWhen(..)")
    }
}

/// The problem of a read stopped by [`DicomWebOptions::stop`].
pub(crate) const STOPPED: &str = "stopped: nobody waits for this read any more";

impl Default for DicomWebOptions {
    fn default() -> Self {
        DicomWebOptions {
            auth: Auth::None,
            frames_per_request: 64,
            attempts: 4,
            timeout: Duration::from_secs(60),
            cache_bytes: crate::cache::DEFAULT_CACHE_BYTES,
            max_concurrent_requests: 4,
            ca_certificates: Vec::new(),
            allowlist: None,
            max_answer_bytes: 1 << 30,
            stop: None,
        }
    }
}

/// The HTTP side: one connection pool and one limit on requests in flight, shared by all
/// instances of a slide.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::blocking::Client,
    auth: Auth,
    attempts: u32,
    max_in_flight: usize,
    in_flight: Mutex<usize>,
    slot_free: Condvar,
    allowlist: Option<Arc<UrlAllowlist>>,
    max_answer_bytes: u64,
    stop: Option<StopWhen>,
}

/// A request slot, given back on drop.
struct Slot<'a>(&'a Client);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.slot_free.notify_one();
    }
}

impl Client {
    pub fn new(options: &DicomWebOptions) -> Result<Self> {
        let fail = |location: String, problem: String| WsiError::DicomWeb { location, problem };
        // rustls needs a crypto provider: ring, unless the application installed its own.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut extra = Vec::new();
        for path in &options.ca_certificates {
            let pem = std::fs::read(path).map_err(|e| fail(path.display().to_string(), format!("cannot read the CA certificate file: {e}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| fail(path.display().to_string(), "expected PEM certificates (-----BEGIN CERTIFICATE-----)".into()))?;
            extra.extend(certs);
        }
        // With an allowlist, a redirect is followed only to an allowed URL.
        let redirects = match options.allowlist.clone() {
            None => reqwest::redirect::Policy::default(),
            Some(list) => reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    attempt.error("too many redirects")
                } else if list.allows(attempt.url()) {
                    attempt.follow()
                } else {
                    let target = shown(attempt.url().as_str());
                    attempt.error(RedirectRefused(target))
                }
            }),
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(options.timeout)
            .tls_certs_merge(extra)
            .redirect(redirects)
            .build()
            .map_err(|e| fail("HTTP client".into(), e.to_string()))?;
        Ok(Client {
            http,
            auth: options.auth.clone(),
            attempts: options.attempts.max(1),
            max_in_flight: options.max_concurrent_requests.max(1),
            in_flight: Mutex::new(0),
            slot_free: Condvar::new(),
            allowlist: options.allowlist.clone(),
            max_answer_bytes: options.max_answer_bytes,
            stop: options.stop.clone(),
        })
    }

    /// The most requests this client sends at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Waits for a request slot.
    fn slot(&self) -> Slot<'_> {
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.max_in_flight {
            n = self.slot_free.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(self)
    }

    /// GETs `url` with `Accept: accept` (waiting for a request slot); returns (Content-Type, body).
    pub fn get(&self, url: &str, accept: &str) -> Result<(String, Vec<u8>)> {
        self.get_with(url, accept, true)
    }

    /// GETs a `multipart/related` answer (WADO-RS frames, bulk data) and splits it into its
    /// parts; returns the answer's Content-Type parameters and the parts.
    ///
    /// An answer that ends before its closing boundary was cut short on the way (a proxy or
    /// server that stopped mid-answer yet closed the connection cleanly, which HTTP cannot tell
    /// from an ending) and is requested again, like a dropped connection.
    pub fn get_multipart(&self, url: &str, accept: &str, credentials: bool) -> Result<(MultipartType, Vec<Part>)> {
        let (content_type, body) = self.get_checked(url, accept, credentials, &has_closing_boundary)?;
        let fail = |problem: String| WsiError::DicomWeb { location: url.to_string(), problem };
        let t = parse_content_type(&content_type).map_err(fail)?;
        let parts = parse_body(&body, &t.boundary).map_err(|p| fail(format!("malformed multipart answer: {p}")))?;
        Ok((t, parts))
    }

    /// Like [`Client::get`]; credentials are sent only when `credentials` (not to other hosts).
    pub fn get_with(&self, url: &str, accept: &str, credentials: bool) -> Result<(String, Vec<u8>)> {
        self.get_checked(url, accept, credentials, &|_, _| true)
    }

    /// Like [`Client::get_with`]; a successful answer for which `complete(content type, body)`
    /// is false counts as cut short and is retried.
    fn get_checked(&self, url: &str, accept: &str, credentials: bool, complete: &dyn Fn(&str, &[u8]) -> bool) -> Result<(String, Vec<u8>)> {
        let fail = |problem: String| WsiError::DicomWeb { location: url.to_string(), problem };
        if let Some(list) = &self.allowlist {
            if !list.allows_str(url) {
                return Err(WsiError::DicomWebRefused { location: shown(url), problem: "not under an approved DICOMweb prefix".into() });
            }
        }
        let stopped = || self.stop.as_ref().is_some_and(|s| (s.0)());
        let _slot = self.slot();
        let mut last = String::new();
        let mut retry_after: Option<Duration> = None;
        for attempt in 0..self.attempts {
            if stopped() {
                return Err(fail(STOPPED.into()));
            }
            if attempt > 0 {
                // The server's Retry-After when it gave one (at most 30 s), else exponential
                // backoff with jitter: 100 ms, 200 ms, 400 ms, ... ±50%.
                let base = 100u64 << (attempt - 1).min(6);
                let jitter = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) as u64) % base;
                let backoff = Duration::from_millis(base / 2 + jitter);
                let wait = retry_after.take().map_or(backoff, |d: Duration| d.min(Duration::from_secs(30)));
                // In steps, so that a stop is noticed within 100 ms.
                let until = std::time::Instant::now() + wait;
                while let Some(left) = until.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) {
                    if stopped() {
                        return Err(fail(STOPPED.into()));
                    }
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
            }
            let mut req = self.http.get(url).header("Accept", accept);
            req = match &self.auth {
                _ if !credentials => req,
                Auth::None => req,
                Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
                Auth::Bearer(token) => req.bearer_auth(token),
            };
            let mut resp = match req.send() {
                Ok(r) => r,
                Err(e) if tls_failure(&e).is_some() => {
                    let detail = tls_failure(&e).unwrap_or_default();
                    return Err(fail(format!(
                        "TLS failed: {detail}; if the server uses an in-house certificate authority, pass its PEM file with --ca-cert (DicomWebOptions::ca_certificates) or SSL_CERT_FILE"
                    )));
                }
                Err(e) if e.is_redirect() && refused_redirect(&e).is_some() => {
                    // The hop's target, kept by the policy (the error's own URL is the request's).
                    let to = refused_redirect(&e).unwrap_or_default();
                    return Err(WsiError::DicomWebRefused {
                        location: shown(url),
                        problem: format!("redirected to {to}, which is not under an approved DICOMweb prefix"),
                    });
                }
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    last = format!("request failed: {}", without_url(&e));
                    continue;
                }
                Err(e) => return Err(fail(without_url(&e))),
            };
            let status = resp.status();
            if status.is_success() {
                let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let limit = self.max_answer_bytes;
                let too_large = |n: String| fail(format!("the answer is {n} bytes; at most {limit} are read (DicomWebOptions::max_answer_bytes)"));
                if let Some(n) = resp.content_length().filter(|n| *n > limit) {
                    return Err(too_large(n.to_string()));
                }
                // Read up to one byte past the limit, never the whole of an answer without end.
                let mut body = Vec::new();
                let read = std::io::Read::read_to_end(&mut std::io::Read::take(&mut resp, limit.saturating_add(1)), &mut body);
                match read {
                    Ok(_) if body.len() as u64 > limit => return Err(too_large(format!("over {limit}"))),
                    Ok(_) if !complete(&ct, &body) => {
                        last = format!("the answer ({} bytes) ended before its closing multipart boundary: cut short, or not multipart", body.len());
                        continue;
                    }
                    Ok(_) => return Ok((ct, body)),
                    Err(e) => {
                        last = format!("connection dropped while reading the answer: {}", e.to_string().replace(url, "<url>"));
                        continue;
                    }
                }
            }
            let code = status.as_u16();
            match code {
                401 | 403 => return Err(WsiError::DicomWebDenied { location: url.to_string(), status: code }),
                404 => return Err(fail("HTTP 404: not found; check the study and series UIDs and the DICOMweb root".into())),
                429 | 500..=599 => {
                    // Retry-After in seconds (the HTTP-date form is rare from DICOMweb servers).
                    retry_after =
                        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
                    last = format!("HTTP {code}");
                }
                _ => return Err(fail(format!("HTTP {code}: {}", status.canonical_reason().unwrap_or("error")))),
            }
        }
        Err(fail(format!("gave up after {} attempts; last: {last}", self.attempts)))
    }
}

/// Whether a `multipart/related` body holds its closing delimiter (`--boundary--`), which only
/// its end can; searched from the end, where it is. An answer whose Content-Type is not
/// multipart passes (the parser names that problem; asking again would not mend it).
fn has_closing_boundary(content_type: &str, body: &[u8]) -> bool {
    let Ok(t) = parse_content_type(content_type) else { return true };
    let close = format!("--{}--", t.boundary).into_bytes();
    body.windows(close.len()).rev().any(|w| w == &close[..])
}

/// The error a redirect policy raises for a hop off the allowlist, with the hop's target (as
/// [`shown`] writes it).
#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redirect to {}, which is off the allowlist", self.0)
    }
}

impl std::error::Error for RedirectRefused {}

/// The refused target, when a redirect error is the allowlist's refusal.
fn refused_redirect(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(r) = cause.downcast_ref::<RedirectRefused>() {
            return Some(r.0.clone());
        }
        source = cause.source();
    }
    None
}

/// A URL for messages: without user-info, query or fragment (which may carry credentials).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<not a URL>".into(),
    }
}

/// The error and its causes, without the URL: reqwest errors embed the URL, which may carry
/// credentials in user-info.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}

/// The TLS problem behind a failed request (certificate not trusted, wrong name, handshake
/// failure), which retrying cannot mend.
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        // tokio-rustls and hyper wrap the rustls error in io::Errors, whose source() skips it.
        let mut inner = Some(cause);
        while let Some(err) = inner {
            if let Some(tls) = err.downcast_ref::<rustls::Error>() {
                return Some(tls.to_string());
            }
            inner = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &(dyn std::error::Error + 'static));
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server on a free port that answers every request with `head` and then `body_bytes`
    /// zeros (the connection then closed); its URL.
    fn answering(head: &'static str, body_bytes: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/dicom-web/studies/1/series/2/metadata", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = c.write_all(head.as_bytes());
                let zeros = vec![b'0'; 64 << 10];
                let mut left = body_bytes;
                while left > 0 {
                    let n = left.min(zeros.len());
                    if c.write_all(&zeros[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
            }
        });
        url
    }

    #[test]
    fn answers_past_the_limit_are_refused_not_read() {
        let client = Client::new(&DicomWebOptions { max_answer_bytes: 1 << 20, attempts: 1, ..Default::default() }).unwrap();
        // Announced: refused before reading a byte of it.
        let url = answering("HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nContent-Length: 209715200\r\nConnection: close\r\n\r\n", 0);
        let e = client.get(&url, "application/dicom+json").unwrap_err().to_string();
        assert!(e.contains("209715200 bytes") && e.contains("max_answer_bytes"), "{e}");
        // Not announced (ends when the connection closes): read up to the limit, then refused.
        let url = answering("HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nConnection: close\r\n\r\n", 3 << 20);
        let e = client.get(&url, "application/dicom+json").unwrap_err().to_string();
        assert!(e.contains("over 1048576 bytes") && e.contains("max_answer_bytes"), "{e}");
        // Within the limit: read whole.
        let url = answering("HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nConnection: close\r\n\r\n", 1000);
        assert_eq!(client.get(&url, "application/dicom+json").unwrap().1.len(), 1000);
    }

    #[test]
    fn a_stopped_read_makes_no_further_attempt() {
        // A server that answers 503 and counts requests; attempts 4, but stopped after the first.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = c.write_all(b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let options =
            DicomWebOptions { attempts: 4, stop: Some(StopWhen(Arc::new(move || flag.load(std::sync::atomic::Ordering::SeqCst)))), ..Default::default() };
        let client = Client::new(&options).unwrap();
        let t = std::time::Instant::now();
        let reader = std::thread::spawn(move || client.get(&url, "*/*").unwrap_err().to_string());
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let e = reader.join().unwrap();
        assert!(e.contains(STOPPED), "{e}");
        // Stopped during the 2 s Retry-After wait, within about 100 ms of the flag.
        assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
