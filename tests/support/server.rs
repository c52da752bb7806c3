//! Helpers for the server's tests: a server on a free port, a client, the library's offline
//! embeddings to compare with.
#![allow(dead_code)]

use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::Batcher;
use haidef_wsi::encoders::{registry, Encoder, ImageRef};
use haidef_wsi::serve::{serve, serve_tls, tls_config, EncodeQueue, ServeOptions};
use serde_json::Value;
use std::time::Duration;

pub fn model() -> Box<dyn Encoder> {
    registry::find("path-foundation").unwrap().untrained(&Device::Cpu, DType::F32).unwrap()
}

/// Starts a server on a free port; its base URL.
pub fn start(opts: ServeOptions) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let queue = EncodeQueue::start(model(), opts.batch_size, opts.max_wait, opts.max_queued_patches).unwrap();
            serve(listener, queue, opts).await.unwrap();
        });
    });
    format!("http://{}", rx.recv_timeout(Duration::from_secs(30)).unwrap())
}

pub fn offline(patches: &[Vec<u8>]) -> Vec<Vec<f32>> {
    let m = model();
    let mut b = Batcher::new(m.input_spec().clone(), patches.len(), Device::Cpu, DType::F32).unwrap();
    let imgs: Vec<ImageRef<'_>> = patches.iter().map(|p| ImageRef::rgb(224, 224, p)).collect();
    m.embed(&b.pack(&imgs).unwrap()).unwrap().to_vec2::<f32>().unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An HTTP client (rustls needs its crypto provider named once per process).
pub fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}

pub fn post(url: &str, body: &str) -> (u16, Value) {
    let r = client().post(url).header("content-type", "application/json").body(body.to_string()).send().unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().unwrap()).unwrap())
}

/// The server's metrics route, parsed.
pub fn metrics(base: &str) -> Value {
    serde_json::from_str(&client().get(format!("{base}/metrics")).send().unwrap().text().unwrap()).unwrap()
}

pub fn max_diff(a: &Value, b: &[f32]) -> f32 {
    let a: Vec<f32> = a.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The 224² patch at (x, y), zeros outside the image.
pub fn crop(rgb: &[u8], w: usize, h: usize, x: i64, y: i64) -> Vec<u8> {
    let mut out = vec![0u8; 224 * 224 * 3];
    for r in 0..224i64 {
        for c in 0..224i64 {
            let (sx, sy) = (x + c, y + r);
            if (0..w as i64).contains(&sx) && (0..h as i64).contains(&sy) {
                let s = (sy as usize * w + sx as usize) * 3;
                let d = ((r * 224 + c) * 3) as usize;
                out[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
            }
        }
    }
    out
}

/// Starts an HTTPS server with the test certificate (`fixtures/dicomweb/tls/server.pem`, for
/// 127.0.0.1, signed by `ca.pem`); its port.
pub fn start_tls(opts: ServeOptions) -> u16 {
    let pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dicomweb/tls/server.pem");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let queue = EncodeQueue::start(model(), opts.batch_size, opts.max_wait, opts.max_queued_patches).unwrap();
            serve_tls(listener, tls_config(&pem, &pem).unwrap(), queue, opts).await.unwrap();
        });
    });
    port
}
