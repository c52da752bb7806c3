//! The HTTP side: axum routes for Google's predict and health endpoints and a metrics route,
//! the request limits, optional caller authentication, and the answer shapes Google's server
//! uses (docs/SERVING_API.md): 400 for a body that is not JSON, 200 with `{"error": CODE}` for
//! a request that fails as a whole, 200 with one prediction per instance otherwise, 503 with
//! `Retry-After` when the encoder's queue is full, 504 past the time limit, 401 without a
//! valid key when keys are configured. Keys and bearer tokens never appear in answers or logs.

use super::api::{parse_request, prediction, ApiError, Code};
use super::api::{Instance, Source};
use super::dicom::DicomStores;
use super::encode_queue::EncodeQueue;
use super::gcs::GcsBuckets;
use super::icc::IccTargets;
use super::pixels::{self, PixelBudget};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
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
    /// `dicom_path` instances read at once, over all requests (each holds a thread while its
    /// store answers): a slow or dead store ties up at most these, never the inline images'
    /// decoding.
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
        }
    }
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
    /// `dicom_path` instances being read.
    reading: tokio::sync::Semaphore,
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
        reading: tokio::sync::Semaphore::new(opts.max_dicom_reads.max(1)),
        requests: Arc::new(tokio::sync::Semaphore::new(opts.max_concurrent_requests.max(1))),
    });
    let guarded = Router::new()
        .route(&opts.predict_route, post(predict))
        .route(&opts.metrics_route, get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new().route(&opts.health_route, get(health)).merge(guarded).layer(DefaultBodyLimit::max(limit)).with_state(state)
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

async fn predict(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(_request) = state.requests.clone().try_acquire_owned() else { return busy() };
    if !state.queue.is_running() {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "Internal server error."}))).into_response();
    }
    let limit = state.opts.request_timeout;
    match tokio::time::timeout(limit, answer(state, body)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, Json(json!({"error": format!("The request took longer than {} s.", limit.as_secs_f64())}))).into_response(),
    }
}

async fn answer(state: Arc<AppState>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "No JSON body."}))).into_response();
    };
    if body.is_null() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "No JSON body."}))).into_response();
    }
    let size = state.queue.patch_size as i64;
    let instances = match parse_request(&body, size, state.opts.max_patches_per_request) {
        Ok(i) => i,
        Err(e) => return Json(json!({"error": e.code.as_str()})).into_response(),
    };
    // Each instance's pixels, all instances at once; fetching and decoding are blocking work,
    // off the async threads. Inline images wait for a decoding slot (one per core), DICOMweb
    // reads for a reading slot, so that a slow store does not hold up inline images.
    let budget = Arc::new(PixelBudget::new(state.opts.max_request_pixels));
    let mut tasks = AbortOnDrop(
        instances
            .into_iter()
            .map(|i| {
                let (state, budget) = (state.clone(), budget.clone());
                tokio::spawn(async move {
                    let inst = i?;
                    let pixels = prepare(&state, &inst, &budget).await?;
                    Ok::<_, ApiError>((inst.patches, pixels))
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

/// The RGB8 patches of one instance.
async fn prepare(state: &Arc<AppState>, inst: &Instance, budget: &Arc<PixelBudget>) -> Result<Vec<Vec<u8>>, ApiError> {
    let internal = || ApiError::new(Code::DicomError, "internal error while reading the instance");
    let inst = inst.clone();
    // Without approved stores or buckets, such instances get their refusal from pixels::patches.
    if let (Source::Dicom { .. }, Some(stores)) = (&inst.source, state.opts.dicom.clone()) {
        let _slot = state.reading.acquire().await.map_err(|_| internal())?;
        let targets = state.opts.icc_targets.clone();
        return tokio::task::spawn_blocking(move || {
            let Source::Dicom { series_path, instance_uids } = &inst.source else { unreachable!("matched above") };
            stores.patches(series_path, instance_uids, &inst.bearer_token, &inst.patches, inst.fully_inside, &inst.icc_profile, inst.image_dimensions, &targets)
        })
        .await
        .map_err(|_| internal())?;
    }
    let mut inst = inst;
    // A fetched image is held from its reading slot until decoded: fetched objects waiting
    // for a decoding slot are bounded by the reading slots.
    let mut _reading = None;
    if let (Source::Uri(uri), Some(gcs)) = (&inst.source, state.opts.gcs.clone()) {
        let (uri, token) = (uri.clone(), inst.bearer_token.clone());
        _reading = Some(state.reading.acquire().await.map_err(|_| internal())?);
        let bytes = tokio::task::spawn_blocking(move || gcs.fetch(&uri, &token)).await.map_err(|_| internal())??;
        inst.source = Source::Image(bytes);
    }
    let max_pixels = state.opts.max_image_pixels;
    let _slot = state.decoding.acquire().await.map_err(|_| internal())?;
    let (targets, budget) = (state.opts.icc_targets.clone(), budget.clone());
    tokio::task::spawn_blocking(move || pixels::patches(&inst, max_pixels, &budget, &targets)).await.map_err(|_| internal())?
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, queue: EncodeQueue, opts: ServeOptions) -> std::io::Result<()> {
    axum::serve(listener, router(queue, opts)).await
}

/// The TLS set-up for [`serve_tls`]: the certificate chain and private key from PEM files
/// (the same file may hold both), with rustls and its ring provider.
pub fn tls_config(chain: &std::path::Path, key: &std::path::Path) -> std::io::Result<axum_server::tls_rustls::RustlsConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let bad = |what: &std::path::Path, m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{}: {m}", what.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| bad(chain, format!("cannot read the certificate chain (PEM): {e}")))?;
    if certs.is_empty() {
        return Err(bad(chain, "no -----BEGIN CERTIFICATE----- in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, format!("cannot read a private key (PEM): {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| bad(chain, format!("the certificate and key do not make a TLS set-up: {e}")))?;
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)))
}

/// Serves HTTPS on `listener` (see [`tls_config`]) until the process ends.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    queue: EncodeQueue,
    opts: ServeOptions,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    axum_server::from_tcp_rustls(listener, tls)?.serve(router(queue, opts).into_make_service()).await
}
