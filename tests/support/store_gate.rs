//! A DICOM store's front door for the server's tests, as a hospital's API gateway would stand
//! before its archive: it takes only `Authorization: Bearer <token>` and forwards GETs to
//! Orthanc (which has no bearer tokens of its own), pointing the bulk-data URIs of its answers
//! back at itself. `/moved/…` answers 302 to the same path on Orthanc's own port, to test that
//! a redirect off the allowlist is not followed; under `/own-bulk/…` the bulk-data URIs keep
//! Orthanc's own port (off the allowlist); under `/garbled/…` JSON answers are cut short
//! (not JSON any more), under `/broken-frames/…` every JPEG's start marker is overwritten (the
//! multipart answer stays well formed, its frames undecodable). It counts what it saw.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the gate saw.
#[derive(Default)]
pub struct Seen {
    /// Requests carrying the right token.
    pub good: AtomicUsize,
    /// Requests refused for a missing or wrong token.
    pub refused: AtomicUsize,
    /// Paths of the requests forwarded, in order.
    pub paths: std::sync::Mutex<Vec<String>>,
}

struct Gate {
    orthanc: String,
    me: String,
    token: String,
    http: reqwest::Client,
    seen: Arc<Seen>,
}

/// Starts the gate before the Orthanc at `orthanc` (`http://127.0.0.1:PORT`); its base URL and
/// what it saw.
pub fn start(orthanc: &str, token: &str) -> (String, Arc<Seen>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let me = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let gate = Arc::new(Gate { orthanc: orthanc.into(), me: me.clone(), token: token.into(), http: reqwest::Client::new(), seen: seen.clone() });
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(forward).with_state(gate);
            axum::serve(listener, app).await.unwrap();
        });
    });
    (me, seen)
}

async fn forward(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    if let Some(rest) = path.strip_prefix("/moved") {
        return (StatusCode::FOUND, [(header::LOCATION, format!("{}{rest}", gate.orthanc))]).into_response();
    }
    let expected = format!("Bearer {}", gate.token);
    if request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        gate.seen.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, "bearer token required").into_response();
    }
    gate.seen.good.fetch_add(1, Ordering::SeqCst);
    gate.seen.paths.lock().unwrap().push(path.clone());
    let own_bulk = path.starts_with("/own-bulk/");
    let path = path.strip_prefix("/own-bulk").map_or(path.clone(), str::to_string);
    let (path, garble, break_frames) = match (path.strip_prefix("/garbled"), path.strip_prefix("/broken-frames")) {
        (Some(rest), _) => (rest.to_string(), true, false),
        (_, Some(rest)) => (rest.to_string(), false, true),
        _ => (path, false, false),
    };
    let mut out = gate.http.get(format!("{}{path}", gate.orthanc)).timeout(Duration::from_secs(30));
    if let Some(accept) = request.headers().get(header::ACCEPT) {
        out = out.header(header::ACCEPT, accept.clone());
    }
    let Ok(answer) = out.send().await else { return StatusCode::BAD_GATEWAY.into_response() };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let Ok(body) = answer.bytes().await else { return StatusCode::BAD_GATEWAY.into_response() };
    let body = if content_type.to_str().unwrap_or("").contains("json") {
        // Bulk-data URIs name Orthanc's own port: point them at the gate.
        let text = String::from_utf8_lossy(&body).to_string();
        let text = if own_bulk { text } else { text.replace(&gate.orthanc, &gate.me) };
        Bytes::from(if garble { text[..text.len() / 2].to_string() } else { text })
    } else if break_frames {
        let mut b = body.to_vec();
        for i in 0..b.len().saturating_sub(2) {
            if b[i..i + 3] == [0xFF, 0xD8, 0xFF] {
                b[i..i + 3].copy_from_slice(b"BAD");
            }
        }
        Bytes::from(b)
    } else {
        body
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
