//! An embedding server that speaks Google's Path Foundation serving API (docs/SERVING_API.md):
//! `POST` predict and `GET` health routes, routes from `AIP_PREDICT_ROUTE` / `AIP_HEALTH_ROUTE`
//! and the port from `AIP_HTTP_PORT` (Vertex AI's conventions; defaults `/predict`, `/health`,
//! 8080). Inline images (`raw_image_bytes`, EZ-WSI's in-memory images), `dicom_path` instances
//! from approved DICOMweb stores and `image_file_uri` images from approved Cloud Storage buckets
//! are served.
//!
//! `cargo run --release --example serve -- --weights W.safetensors --allow-dicomweb URL_PREFIX [--allow-dicomweb …] [--allow-gcs gs://BUCKET …] [--model NAME] [--host H] [--port P] [--batch B] [--device D] [--api-keys-file F] [--tls-cert PEM --tls-key PEM] [--icc-profile NAME=FILE]`

#[path = "common/model_args.rs"]
mod model_args;

use clap::Parser;
use haidef_wsi::encoders::device_name;
use haidef_wsi::serve::{serve, serve_tls, tls_config, ApiKeys, DicomStores, EncodeQueue, GcsBuckets, IccTargets, ServeOptions};
use haidef_wsi::wsi::DicomWebOptions;
use std::sync::Arc;
use std::time::Duration;

/// Serve embeddings over HTTP with Path Foundation's API.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    model: model_args::ModelArgs,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port [default: $AIP_HTTP_PORT, else 8080].
    #[arg(long, env = "AIP_HTTP_PORT", default_value_t = 8080)]
    port: u16,
    /// Patches per encoder batch [default: 32 on CPU, 256 on CUDA].
    #[arg(long)]
    batch: Option<usize>,
    /// Longest wait, in milliseconds, for more patches to fill a batch.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Most patches waiting for the encoder; beyond, requests get 503 with Retry-After.
    #[arg(long, default_value_t = 16_000)]
    max_queued: usize,
    /// Predict requests in progress at once; beyond, 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    max_requests: usize,
    /// Pixels one request may decode and resize, over all its images.
    #[arg(long, default_value_t = 400_000_000)]
    max_request_pixels: u64,
    /// Longest time a predict request may take, in seconds (then 504).
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// A file of API keys, one per line: callers must send one (`Authorization: Bearer KEY` or
    /// `X-API-Key: KEY`). Without it the server takes any caller; bind to 127.0.0.1 then.
    #[arg(long)]
    api_keys_file: Option<std::path::PathBuf>,
    /// A DICOMweb store the server may read `dicom_path` instances from: URLs under this prefix
    /// (e.g. https://store.example.org/dicom-web). Repeat for more stores. None by default:
    /// every `dicom_path` is refused (UNAPPROVED_DICOM_STORE_ERROR).
    #[arg(long = "allow-dicomweb", value_name = "URL_PREFIX")]
    allow_dicomweb: Vec<String>,
    /// A Cloud Storage bucket (gs://BUCKET, or gs://BUCKET/PREFIX/) the server may read
    /// `image_file_uri` images from, with the caller's bearer_token. Repeat for more. None by
    /// default: such instances are refused (UNAPPROVED_GCS_BUCKET_ERROR).
    #[arg(long = "allow-gcs", value_name = "gs://BUCKET")]
    allow_gcs: Vec<String>,
    /// Where Cloud Storage is reached (an emulator's URL for tests).
    #[arg(long, default_value = "https://storage.googleapis.com")]
    gcs_endpoint: String,
    /// Extra certificate authority (PEM) trusted for https DICOMweb stores.
    #[arg(long)]
    ca_cert: Vec<std::path::PathBuf>,
    /// Slides kept open between requests (metadata, fetched frames and decoded tiles).
    #[arg(long, default_value_t = 16)]
    open_slides: usize,
    /// MiB of frames and decoded tiles cached per open slide.
    #[arg(long, default_value_t = 64)]
    slide_cache_mib: usize,
    /// Serve HTTPS with this certificate chain (PEM; may also hold the key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// A target profile of transform_imaging_to_icc_profile from a file: SRGB=FILE,
    /// ADOBERGB=FILE or ROMMRGB=FILE (e.g. the ICC files EZ-WSI bundles, which Google's server
    /// uses). Default: profiles built from the published definitions.
    #[arg(long = "icc-profile", value_name = "NAME=FILE")]
    icc_profile: Vec<String>,
    /// Timeout of one request to a DICOMweb store, in seconds.
    #[arg(long, default_value_t = 30)]
    store_timeout_s: u64,
    /// Reads from one store (origin) at once, over all requests; each store has its own.
    #[arg(long, default_value_t = 16)]
    max_store_reads: usize,
    /// Largest answer read from a DICOMweb store (metadata, frames, bulk data), in MiB.
    #[arg(long, default_value_t = 256)]
    max_store_answer_mib: u64,
    /// Longest wait for a request's head (request line and headers), in seconds; then the
    /// connection is closed.
    #[arg(long, default_value_t = 30)]
    header_timeout_s: u64,
    /// Longest time a request body may take to arrive, in seconds (then 408).
    #[arg(long, default_value_t = 60)]
    body_timeout_s: u64,
    /// Connections open at once; beyond, new ones wait. Keep it under `ulimit -n`
    /// [default: 1024, or half the open-file limit where that is lower].
    #[arg(long)]
    max_connections: Option<usize>,
}

fn main() {
    haidef_wsi::encoders::tune_cpu_inference();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let model_args::Loaded { entry, model, device, dtype } = cli.model.load(None)?;
    let batch = cli.batch.unwrap_or(if device.is_cpu() { 32 } else { 256 });
    let api_keys: Vec<String> = match &cli.api_keys_file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| format!("{}: cannot read the API keys: {e}", f.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    if cli.api_keys_file.is_some() && api_keys.is_empty() {
        return Err("the API keys file holds no key".into());
    }
    let dicom = if cli.allow_dicomweb.is_empty() {
        None
    } else {
        let options = DicomWebOptions {
            ca_certificates: cli.ca_cert.clone(),
            cache_bytes: cli.slide_cache_mib << 20,
            timeout: Duration::from_secs(cli.store_timeout_s),
            attempts: 2,
            max_answer_bytes: cli.max_store_answer_mib << 20,
            ..Default::default()
        };
        Some(Arc::new(DicomStores::new(&cli.allow_dicomweb, options, cli.open_slides)?))
    };
    let gcs = if cli.allow_gcs.is_empty() {
        None
    } else {
        Some(Arc::new(GcsBuckets::new(&cli.allow_gcs, &cli.gcs_endpoint, Duration::from_secs(cli.store_timeout_s), 256 << 20)?))
    };
    let mut icc_targets = IccTargets::default();
    for spec in &cli.icc_profile {
        let (name, file) = spec.split_once('=').ok_or_else(|| format!("--icc-profile {spec}: expected NAME=FILE, e.g. SRGB=sRGB.icc"))?;
        let bytes = std::fs::read(file).map_err(|e| format!("--icc-profile {spec}: cannot read {file}: {e}"))?;
        icc_targets.set(name, bytes).map_err(|e| format!("--icc-profile {spec}: {e}"))?;
    }
    let opts = ServeOptions {
        batch_size: batch,
        max_wait: Duration::from_millis(cli.max_wait_ms),
        max_queued_patches: cli.max_queued,
        request_timeout: Duration::from_secs(cli.timeout_s),
        api_keys: ApiKeys(api_keys),
        max_concurrent_requests: cli.max_requests,
        max_request_pixels: cli.max_request_pixels,
        dicom,
        gcs,
        icc_targets: Arc::new(icc_targets),
        max_dicom_reads: cli.max_store_reads,
        header_read_timeout: Duration::from_secs(cli.header_timeout_s),
        body_read_timeout: Duration::from_secs(cli.body_timeout_s),
        ..ServeOptions::from_env()
    };
    let opts = ServeOptions { max_connections: cli.max_connections.unwrap_or(opts.max_connections), ..opts };
    let trained = if model.is_trained() { model.weights_id().to_string() } else { "UNTRAINED".to_string() };
    let queue = EncodeQueue::start(model, opts.batch_size, opts.max_wait, opts.max_queued_patches)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(c), Some(k)) => Some(tls_config(c, k)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    rt.block_on(async {
        let listener = std::net::TcpListener::bind((cli.host.as_str(), cli.port))?;
        let addr = listener.local_addr()?;
        println!(
            "serving {} ({trained}) on {device_name} {dtype:?}, batch {batch}: POST {scheme}://{addr}{}  GET {scheme}://{addr}{}",
            entry.name,
            opts.predict_route,
            opts.health_route,
            device_name = device_name(&device)
        );
        match &opts.dicom {
            Some(d) => println!("DICOMweb stores approved: {}", d.approved().join(", ")),
            None => println!("no DICOMweb store approved: dicom_path instances are refused (--allow-dicomweb URL_PREFIX)"),
        }
        match tls {
            Some(tls) => serve_tls(listener, tls, queue, opts).await,
            None => {
                listener.set_nonblocking(true)?;
                serve(tokio::net::TcpListener::from_std(listener)?, queue, opts).await
            }
        }
    })?;
    Ok(())
}
