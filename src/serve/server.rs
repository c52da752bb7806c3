//! The HTTP side: axum routes for Google's predict and health endpoints and a metrics route,
//! the request limits, optional caller authentication, and the answer shapes Google's server
//! uses (docs/SERVING_API.md): 400 for a body that is not JSON, 200 with `{"error": CODE}` for
//! a request that fails as a whole, 200 with one prediction per instance otherwise, 503 with
//! `Retry-After` when the encoder's queue is full, 504 past the time limit, 401 without a
//! valid key when keys are configured. Keys and bearer tokens never appear in answers or logs.

use super::api::{parse_request, prediction, read_request, ApiError, BodyError, Code, MAX_PARSED_BYTES};
use super::api::{Instance, Source};
use super::dicom::DicomStores;
use super::encode_queue::EncodeQueue;
use super::gcs::GcsBuckets;
use super::icc::IccTargets;
use super::listen::{self, ConnectionLimits};
use super::pixels::{self, PixelBudget};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The predict route (`AIP_PREDICT_ROUTE`, default `/predict`).
    pub predict_route: String,
    /// The health route (`AIP_HEALTH_ROUTE`, default `/health`).
    pub health_route: String,
    /// Patches per request, across its instances (Google's limit: 4,000).
    pub max_patches_per_request: usize,
    /// Largest request body in bytes (default 64 MiB).
    pub max_body_bytes: usize,
    /// Largest inline image, in pixels of area (default 100 million, the area of Google's
    /// 10,000-pixel side limit).
    pub max_image_pixels: u64,
    /// Patches per encoder batch.
    pub batch_size: usize,
    /// Longest wait for more patches to fill a batch.
    pub max_wait: Duration,
    /// Most patches waiting for the encoder; beyond, requests get 503 with `Retry-After`
    /// (a request larger than this is still taken when nothing is waiting).
    pub max_queued_patches: usize,
    /// Longest time a predict request may take (Google's gunicorn: 120 s); then 504.
    pub request_timeout: Duration,
    /// The metrics route (encoder busy time and counts, as JSON).
    pub metrics_route: String,
    /// Keys callers must present (`Authorization: Bearer KEY` or `X-API-Key: KEY`) on the
    /// predict and metrics routes; empty: no authentication. The health route stays open for
    /// load balancers.
    pub api_keys: ApiKeys,
    /// The approved DICOMweb stores (see [`DicomStores`]); None: every `dicom_path` instance
    /// is answered `UNAPPROVED_DICOM_STORE_ERROR`.
    pub dicom: Option<Arc<DicomStores>>,
    /// `dicom_path` instances (and `image_file_uri` objects) read at once from one store
    /// (one origin, `scheme://host:port`, of the approved prefixes; Cloud Storage is one), over
    /// all requests. Each holds a thread until its read really ends, also when its request has
    /// ended: a slow or dead store ties up at most these, never another store's reads or the
    /// inline images' decoding.
    pub max_dicom_reads: usize,
    /// The approved Cloud Storage buckets (see [`GcsBuckets`]); None: every `image_file_uri`
    /// without pixels is answered `UNAPPROVED_GCS_BUCKET_ERROR`.
    pub gcs: Option<Arc<GcsBuckets>>,
    /// The target profiles of `transform_imaging_to_icc_profile`.
    pub icc_targets: Arc<IccTargets>,
    /// Predict requests in progress at once; beyond, 503 with `Retry-After` (each holds its
    /// parsed body and patches in memory).
    pub max_concurrent_requests: usize,
    /// Pixels one request may decode and resize, over all its images (default 400 million).
    pub max_request_pixels: u64,
    /// Longest wait for a request's head (request line and headers), from the start of waiting
    /// for it (a new connection, or the next request on a kept-alive one): then the connection
    /// is closed. Default 30 s.
    pub header_read_timeout: Duration,
    /// Longest time a predict request's body may take to arrive, from its head; then 408 and
    /// the connection closed. Default 60 s.
    pub body_read_timeout: Duration,
    /// Longest TLS handshake, from accepting the connection; then it is closed. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// Longest time an answer may wait for the client to take any of it; then the connection
    /// is closed (a client that stops reading would otherwise hold its connection for ever).
    /// Default 60 s.
    pub write_stall_timeout: Duration,
    /// Connections open at once (idle kept-alive ones included); beyond, new connections wait
    /// in the kernel's backlog until one closes. Keep it under the process's file-descriptor
    /// limit (`ulimit -n`), which the stores' connections and the files share. Default 1,024,
    /// or half the open-file limit where that is lower (read from `/proc/self/limits`).
    pub max_connections: usize,
}

/// Keys callers may present; Debug shows only how many there are, never the keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys(pub Vec<String>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys(<{} redacted>)", self.0.len())
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            predict_route: "/predict".into(),
            health_route: "/health".into(),
            max_patches_per_request: 4000,
            max_body_bytes: 64 << 20,
            max_image_pixels: 100_000_000,
            batch_size: 32,
            max_wait: Duration::from_millis(5),
            max_queued_patches: 16_000,
            request_timeout: Duration::from_secs(120),
            metrics_route: "/metrics".into(),
            api_keys: ApiKeys::default(),
            dicom: None,
            max_dicom_reads: 16,
            icc_targets: Arc::new(IccTargets::default()),
            gcs: None,
            max_concurrent_requests: 64,
            max_request_pixels: 400_000_000,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(60),
            max_connections: default_max_connections(),
        }
    }
}

/// 1,024, or half the process's soft open-file limit where that is lower (the other half for
/// the stores' connections, slides and files); 1,024 where the limit cannot be read.
fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| {
        let line = l.lines().find(|l| l.starts_with("Max open files"))?;
        line.trim_start_matches("Max open files").split_whitespace().next()?.parse::<usize>().ok()
    });
    soft.map_or(1024, |n| (n / 2).clamp(16, 1024))
}

impl ServeOptions {
    /// The defaults with the routes from `AIP_PREDICT_ROUTE` and `AIP_HEALTH_ROUTE` where set
    /// (Vertex AI's conventions).
    pub fn from_env() -> Self {
        let mut o = ServeOptions::default();
        if let Ok(r) = std::env::var("AIP_PREDICT_ROUTE") {
            o.predict_route = r;
        }
        if let Ok(r) = std::env::var("AIP_HEALTH_ROUTE") {
            o.health_route = r;
        }
        o
    }
}

struct AppState {
    queue: EncodeQueue,
    opts: ServeOptions,
    started: Instant,
    /// Requests decoding at once (one per core): decoding and cropping hold up to a few GB for
    /// the largest requests, so they wait their turn instead of all running together.
    decoding: tokio::sync::Semaphore,
    /// Reads in progress, per store (origin): at most `max_dicom_reads` each.
    reading: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Predict requests in progress.
    requests: Arc<tokio::sync::Semaphore>,
}

/// The server's routes over `queue` (see [`EncodeQueue::start`]).
pub fn router(queue: EncodeQueue, opts: ServeOptions) -> Router {
    let limit = opts.max_body_bytes;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let state = Arc::new(AppState {
        queue,
        opts: opts.clone(),
        started: Instant::now(),
        decoding: tokio::sync::Semaphore::new(cores),
        reading: std::sync::Mutex::new(std::collections::HashMap::new()),
        requests: Arc::new(tokio::sync::Semaphore::new(opts.max_concurrent_requests.max(1))),
    });
    let guarded = Router::new()
        .route(&opts.predict_route, post(predict))
        .route(&opts.metrics_route, get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new().route(&opts.health_route, get(health)).merge(guarded).layer(DefaultBodyLimit::max(limit)).with_state(state)
}

impl AppState {
    /// The reading slots of `store` (an approved origin: finitely many).
    fn store_slots(&self, store: &str) -> Arc<tokio::sync::Semaphore> {
        let mut all = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(store.to_string()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.opts.max_dicom_reads.max(1)))).clone()
    }
}

/// Whether `headers` carry one of `keys` (compared in constant time: no timing hints).
fn authorised(headers: &HeaderMap, keys: &[String]) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(given) = given else { return false };
    // Every key is compared, so the time does not tell which one matched (only, at most,
    // whether the lengths differ).
    keys.iter().fold(false, |ok, k| ok | bool::from(k.as_bytes().ct_eq(given.trim().as_bytes())))
}

async fn authenticate(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if state.opts.api_keys.0.is_empty() || authorised(request.headers(), &state.opts.api_keys.0) {
        return next.run(request).await;
    }
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Json(json!({"error": "Missing or wrong API key."}))).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Json<Value> {
    let (busy, patches, batches) = state.queue.stats.snapshot();
    let up = state.started.elapsed().as_secs_f64();
    Json(json!({
        "uptime_seconds": up,
        "encoder_busy_seconds": busy,
        "encoder_busy_fraction": if up > 0.0 { busy / up } else { 0.0 },
        "patches_embedded": patches,
        "batches": batches,
        "patches_per_batch": if batches > 0 { patches as f64 / batches as f64 } else { 0.0 },
        "patches_queued": state.queue.queued(),
    }))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    // As Google's server: "ok" while the model answers, "not ok" with 503 once it cannot.
    if state.queue.is_running() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ok").into_response()
    }
}

fn busy() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], Json(json!({"error": "The server is busy; retry later."}))).into_response()
}

async fn predict(State(state): State<Arc<AppState>>, request: Request) -> Response {
    // The slot before the body: bodies in memory at once are at most max_concurrent_requests.
    let Ok(_request) = state.requests.clone().try_acquire_owned() else { return busy() };
    if !state.queue.is_running() {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "Internal server error."}))).into_response();
    }
    let body = match read_body(request, state.opts.max_body_bytes, state.opts.body_read_timeout).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let limit = state.opts.request_timeout;
    match tokio::time::timeout(limit, answer(state, body)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, Json(json!({"error": format!("The request took longer than {} s.", limit.as_secs_f64())}))).into_response(),
    }
}

/// The request's body, of at most `max` bytes, arrived within `within`; or the answer: 413 for
/// a larger body (before reading it, when its Content-Length says so), 408 for one too slow,
/// 400 for one cut off; all in the JSON error shape, and the connection closed.
async fn read_body(request: Request, max: usize, within: Duration) -> Result<Vec<u8>, Response> {
    use http_body_util::BodyExt;
    let refuse = |status: StatusCode, message: String| (status, [(header::CONNECTION, "close")], Json(json!({"error": message}))).into_response();
    let too_large = || refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("The request body is larger than {max} bytes."));
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = request.into_body();
    let read = async {
        let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Err(refuse(StatusCode::BAD_REQUEST, "The request body could not be read.".into())) };
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > max {
                    return Err(too_large());
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    };
    match tokio::time::timeout(within, read).await {
        Ok(r) => r,
        Err(_) => Err(refuse(StatusCode::REQUEST_TIMEOUT, format!("The request body did not arrive within {} s.", within.as_secs_f64()))),
    }
}

/// Set when a request ends, however it ends (answered, timed out, its caller gone): its reads
/// still running stop at their next step.
struct Ended(Arc<AtomicBool>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn answer(state: Arc<AppState>, body: Vec<u8>) -> Response {
    // Read and checked off the async threads (a 64 MiB body takes a while), keeping only what
    // the contract reads (see api::read_request), the body dropped as soon as it is read.
    let (size, max_patches) = (state.queue.patch_size as i64, state.opts.max_patches_per_request);
    let parsed = tokio::task::spawn_blocking(move || {
        let value = read_request(&body);
        drop(body);
        match value {
            Ok(Value::Null) => Err(BodyError::NotJson),
            Ok(v) => Ok(parse_request(&v, size, max_patches)),
            Err(e) => Err(e),
        }
    })
    .await;
    let instances = match parsed {
        Ok(Ok(Ok(i))) => i,
        Ok(Ok(Err(e))) => return Json(json!({"error": e.code.as_str()})).into_response(),
        Ok(Err(BodyError::NotJson)) => return (StatusCode::BAD_REQUEST, Json(json!({"error": "No JSON body."}))).into_response(),
        Ok(Err(BodyError::TooComplex)) => {
            let message = format!("The request holds more than {} MiB of values the server reads.", MAX_PARSED_BYTES >> 20);
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": message}))).into_response();
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "Internal server error."}))).into_response(),
    };
    let ended = Ended(Arc::new(AtomicBool::new(false)));
    // Each instance's pixels, all instances at once; fetching and decoding are blocking work,
    // off the async threads. Inline images wait for a decoding slot (one per core), reads for
    // their store's reading slot, so that a slow store holds up neither inline images nor
    // other stores.
    let budget = Arc::new(PixelBudget::new(state.opts.max_request_pixels));
    let mut tasks = AbortOnDrop(
        instances
            .into_iter()
            .map(|i| {
                let (state, budget, ended) = (state.clone(), budget.clone(), ended.0.clone());
                tokio::spawn(async move {
                    let inst = i?;
                    let coords = inst.patches.clone();
                    let pixels = prepare(&state, inst, &budget, ended).await?;
                    Ok::<_, ApiError>((coords, pixels))
                })
            })
            .collect(),
    );
    let mut prepared = Vec::with_capacity(tasks.0.len());
    for t in tasks.0.iter_mut() {
        let Ok(p) = t.await else {
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "Internal server error."}))).into_response();
        };
        prepared.push(p);
    }
    // One encoder job per instance, all queued before any is awaited, so that they share batches.
    let mut waiting = Vec::with_capacity(prepared.len());
    for p in prepared {
        waiting.push(match p {
            Ok((coords, pixels)) => match state.queue.submit(pixels) {
                Ok(rx) => Ok((coords, rx)),
                Err(_) => return busy(),
            },
            Err(e) => Err(e),
        });
    }
    let mut predictions = Vec::with_capacity(waiting.len());
    for w in waiting {
        let result = match w {
            Ok((coords, rx)) => match rx.await {
                Ok(Ok(rows)) => Ok(coords.into_iter().zip(rows).collect()),
                Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": format!("Internal server error: {e}")}))).into_response(),
                Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "Internal server error."}))).into_response(),
            },
            Err(e) => Err::<Vec<_>, ApiError>(e),
        };
        predictions.push(prediction(&result));
    }
    Json(json!({"predictions": predictions})).into_response()
}

/// A request's instance tasks, stopped when the request ends early (time limit, caller gone).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<InstanceResult>>);

/// An instance's patches and their pixels, or its error.
type InstanceResult = Result<(Vec<super::api::Patch>, Vec<Vec<u8>>), ApiError>;

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The RGB8 patches of one instance. Reads hold their store's slot in the thread that reads,
/// until it returns (not until the request ends: a request that ended early leaves its read
/// running, and the slot taken, until the read notices `ended`).
async fn prepare(state: &Arc<AppState>, mut inst: Instance, budget: &Arc<PixelBudget>, ended: Arc<AtomicBool>) -> Result<Vec<Vec<u8>>, ApiError> {
    let internal = || ApiError::new(Code::DicomError, "internal error while reading the instance");
    // Without approved stores or buckets, such instances get their refusal from pixels::patches.
    if let (Source::Dicom { series_path, .. }, Some(stores)) = (&inst.source, state.opts.dicom.clone()) {
        // Only approved stores get slots (others are refused at once, without reading).
        let slot = match stores.store_of(series_path) {
            Some(store) => Some(state.store_slots(&store).acquire_owned().await.map_err(|_| internal())?),
            None => None,
        };
        let targets = state.opts.icc_targets.clone();
        return tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let Source::Dicom { series_path, instance_uids } = &inst.source else { unreachable!("matched above") };
            let read = super::dicom::Read {
                token: &inst.bearer_token,
                fully_inside: inst.fully_inside,
                icc: &inst.icc_profile,
                dims: inst.image_dimensions,
                ended: &ended,
            };
            stores.patches(series_path, instance_uids, &inst.patches, &read, &targets)
        })
        .await
        .map_err(|_| internal())?;
    }
    // A fetched image is held, with its store's slot, until decoded: fetched objects waiting
    // for a decoding slot are bounded by the reading slots. The slot goes into the fetching
    // thread and comes back with the object, so that a request that ends mid-fetch leaves it
    // taken until the fetch (one request, within the store timeout) returns.
    let mut _reading = None;
    if let (Source::Uri(uri), Some(gcs)) = (&inst.source, state.opts.gcs.clone()) {
        let (uri, token) = (uri.clone(), inst.bearer_token.clone());
        let slot = match gcs.is_approved(&uri) {
            true => Some(state.store_slots("gs://").acquire_owned().await.map_err(|_| internal())?),
            false => None,
        };
        let (bytes, slot) = tokio::task::spawn_blocking(move || (gcs.fetch(&uri, &token), slot)).await.map_err(|_| internal())?;
        _reading = slot;
        inst.source = Source::Image(bytes?);
    }
    let max_pixels = state.opts.max_image_pixels;
    let _slot = state.decoding.acquire().await.map_err(|_| internal())?;
    let (targets, budget) = (state.opts.icc_targets.clone(), budget.clone());
    tokio::task::spawn_blocking(move || pixels::patches(&inst, max_pixels, &budget, &targets)).await.map_err(|_| internal())?
}

/// The connection limits of `opts`.
fn limits(opts: &ServeOptions) -> ConnectionLimits {
    ConnectionLimits {
        header_read: opts.header_read_timeout,
        tls_handshake: opts.tls_handshake_timeout,
        write_stall: opts.write_stall_timeout,
        max_connections: opts.max_connections,
    }
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, queue: EncodeQueue, opts: ServeOptions) -> std::io::Result<()> {
    let limits = limits(&opts);
    listen::run(listener, None, router(queue, opts), limits).await
}

/// The TLS set-up for [`serve_tls`]: the certificate chain and private key from PEM files
/// (the same file may hold both), with rustls and its ring provider.
pub fn tls_config(chain: &std::path::Path, key: &std::path::Path) -> std::io::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let bad = |what: &std::path::Path, m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{}: {m}", what.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| bad(chain, format!("cannot read the certificate chain (PEM): {e}")))?;
    if certs.is_empty() {
        return Err(bad(chain, "no -----BEGIN CERTIFICATE----- in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, format!("cannot read a private key (PEM): {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| bad(chain, format!("the certificate and key do not make a TLS set-up: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves HTTPS on `listener` (see [`tls_config`]) until the process ends.
pub async fn serve_tls(listener: std::net::TcpListener, tls: Arc<rustls::ServerConfig>, queue: EncodeQueue, opts: ServeOptions) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let limits = limits(&opts);
    listen::run(tokio::net::TcpListener::from_std(listener)?, Some(tokio_rustls::TlsAcceptor::from(tls)), router(queue, opts), limits).await
}
