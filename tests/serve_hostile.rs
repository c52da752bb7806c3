//! The server under clients that do not play fair (issue "The server under hostile clients"):
//! request heads and bodies that never finish, TLS handshakes that never start, more
//! connections than the cap, bodies over the limit, and requests whose callers leave or time
//! out while their patches wait for the encoder. Each test fails on the server before that
//! issue (checked against its commit): connections stayed open, 413 was plain text, and a
//! request's patches kept the encoder busy after its 504.

#[path = "common/mod.rs"]
mod common;
#[path = "support/server.rs"]
mod server;

use haidef_wsi::serve::ServeOptions;
use serde_json::{json, Value};
use server::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// host:port of a base URL.
fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Whether the server has closed `s` (reads end, or fail other than by timing out), waiting
/// at most `within`; what it sent meanwhile.
fn closed_within(s: &mut TcpStream, within: Duration, mut trickle: impl FnMut(&mut TcpStream) -> bool) -> (bool, String) {
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    while t.elapsed() < within {
        if !trickle(s) {
            return (true, String::from_utf8_lossy(&got).into());
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (true, String::from_utf8_lossy(&got).into()),
        }
    }
    (false, String::from_utf8_lossy(&got).into())
}

fn short_limits() -> ServeOptions {
    ServeOptions {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        tls_handshake_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    }
}

#[test]
fn a_request_head_that_trickles_or_never_comes_is_closed() {
    let base = start(short_limits());
    // A head sent one header line every 200 ms, never ending.
    let mut s = TcpStream::connect(addr(&base)).unwrap();
    s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (closed, _) = closed_within(&mut s, Duration::from_secs(4), |s| s.write_all(b"X-Slow: 1\r\n").is_ok());
    assert!(closed, "a trickled request head kept its connection 4 s with a 1 s header timeout");
    // A connection that sends nothing at all, and one kept alive after an answer.
    let mut idle = TcpStream::connect(addr(&base)).unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(4), |_| true).0, "a silent connection stayed open");
    let mut kept = TcpStream::connect(addr(&base)).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (closed, got) = closed_within(&mut kept, Duration::from_secs(4), |_| true);
    assert!(got.starts_with("HTTP/1.1 200") && closed, "a kept-alive idle connection stayed open: {got:?}");
}

#[test]
fn a_client_that_stops_reading_its_answers_is_closed() {
    // Requests pipelined without end, answers never read: once the socket buffers are full the
    // server's writes wait, hyper reads no further request head (so the header timeout never
    // starts), and before the write-stall limit the connection was held for ever.
    let base = start(ServeOptions { write_stall_timeout: Duration::from_secs(1), ..ServeOptions::default() });
    let s = TcpStream::connect(addr(&base)).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let requests = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        for _ in 0..2000 {
            if let Err(e) = w.write_all(&requests) {
                return Some(e.kind());
            }
        }
        None
    });
    let t = Instant::now();
    while !writer.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(30), "the server still holds a connection whose client stopped reading");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ended = writer.join().unwrap();
    assert!(ended.is_some(), "72 MB of requests went through without their answers being read");
    drop(s);
}

#[test]
fn a_body_that_never_completes_gets_408_and_is_closed() {
    let base = start(short_limits());
    let mut s = TcpStream::connect(addr(&base)).unwrap();
    s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"instances\": [").unwrap();
    let t = Instant::now();
    let (closed, got) = closed_within(&mut s, Duration::from_secs(4), |_| true);
    assert!(closed && got.starts_with("HTTP/1.1 408"), "after {:?}: closed {closed}, answered {got:?}", t.elapsed());
    let body: Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("did not arrive"), "{body}");
}

#[test]
fn a_tls_handshake_that_never_starts_is_closed() {
    let port = start_tls(short_limits());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(4), |_| true).0, "a TLS connection without a handshake stayed open");
    // And the listener still serves a real client.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dicomweb/tls/ca.pem")).unwrap()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::blocking::Client::builder().add_root_certificate(ca).build().unwrap();
    assert_eq!(c.get(format!("https://127.0.0.1:{port}/health")).send().unwrap().status().as_u16(), 200);
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let base = start(ServeOptions { max_connections: 2, ..ServeOptions::default() });
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr(&base)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(addr(&base)).unwrap();
    third.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let (_, got) = closed_within(&mut third, Duration::from_secs(1), |_| true);
    assert!(got.is_empty(), "a third connection was served with a cap of two: {got:?}");
    drop(held);
    let (_, got) = closed_within(&mut third, Duration::from_secs(5), |_| true);
    assert!(got.starts_with("HTTP/1.1 200"), "the waiting connection was not served once others closed: {got:?}");
}

#[test]
fn bodies_over_the_limit_get_413_in_the_json_shape() {
    let base = start(ServeOptions { max_body_bytes: 1000, ..ServeOptions::default() });
    let r = client().post(format!("{base}/predict")).body("x".repeat(2000)).send().unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("larger than 1000 bytes"), "{body}");
    // Without a Content-Length (chunked): refused once the limit is passed.
    let mut s = TcpStream::connect(addr(&base)).unwrap();
    s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for _ in 0..3 {
        s.write_all(format!("1f4\r\n{}\r\n", "y".repeat(500)).as_bytes()).unwrap();
    }
    let (_, got) = closed_within(&mut s, Duration::from_secs(4), |_| true);
    assert!(got.starts_with("HTTP/1.1 413") && got.contains("\"error\""), "{got:?}");
}

/// A request of `n` patches of the fixture PNG.
fn many_patches(n: usize) -> String {
    let png = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reference/ihc-full-l0-frame-corner.png")).unwrap();
    let coords: Vec<Value> = (0..n).map(|i| json!({"x_origin": i % 60, "y_origin": i / 60 % 60})).collect();
    json!({"instances": [{"raw_image_bytes": b64(&png), "patch_coordinates": coords}]}).to_string()
}

/// (patches queued, patches embedded) from the metrics route.
fn queue(base: &str) -> (u64, u64) {
    let m = metrics(base);
    (m["patches_queued"].as_u64().unwrap(), m["patches_embedded"].as_u64().unwrap())
}

/// Waits until nothing is queued (at most `within`); then the embedded count stays put.
fn drains(base: &str, within: Duration) {
    let t = Instant::now();
    while queue(base).0 > 0 {
        assert!(t.elapsed() < within, "patches still queued {:?} after the request ended: {:?}", t.elapsed(), queue(base));
        std::thread::sleep(Duration::from_millis(50));
    }
    let embedded = queue(base).1;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(queue(base).1, embedded, "the encoder kept embedding for a request that had ended");
}

#[test]
fn a_request_that_times_out_leaves_the_encoder_within_a_batch() {
    // 600 patches take the stand-in model tens of seconds on two cores; the request gives up
    // after 1 s.
    let base = start(ServeOptions { request_timeout: Duration::from_secs(1), batch_size: 8, ..ServeOptions::default() });
    let r = client().post(format!("{base}/predict")).body(many_patches(600)).send().unwrap();
    assert_eq!(r.status().as_u16(), 504);
    drains(&base, Duration::from_secs(5));
    assert!(queue(&base).1 < 600, "every patch was embedded: {:?}", queue(&base));
}

#[test]
fn a_caller_that_hangs_up_leaves_the_encoder_within_a_batch() {
    let base = start(ServeOptions { batch_size: 8, ..ServeOptions::default() });
    let body = many_patches(600);
    let mut s = TcpStream::connect(addr(&base)).unwrap();
    s.write_all(format!("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
        .unwrap();
    let t = Instant::now();
    while queue(&base).0 == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "the request's patches never reached the queue");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    drains(&base, Duration::from_secs(5));
    assert!(queue(&base).1 < 600, "every patch was embedded: {:?}", queue(&base));
}

#[test]
fn the_serve_example_takes_the_limits_from_its_flags() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(common::example("serve"))
        .args(["--port", "0", "--header-timeout-s", "1", "--body-timeout-s", "1", "--max-connections", "8", "--max-store-reads", "2"])
        .current_dir(common::root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // "serving … POST http://127.0.0.1:PORT/predict  GET …"
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("serving") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the serve example ended before serving");
    }
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).map(|u| u.trim_end_matches("/predict").to_string());
    let base = base.unwrap_or_else(|| panic!("no address in {line:?}"));
    let outcome = std::panic::catch_unwind(|| {
        assert_eq!(client().get(format!("{base}/health")).send().unwrap().status().as_u16(), 200);
        let mut s = TcpStream::connect(addr(&base)).unwrap();
        s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\n").unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(4), |_| true).0, "--header-timeout-s 1 did not close a half-sent head");
        let mut s = TcpStream::connect(addr(&base)).unwrap();
        s.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{").unwrap();
        let (_, got) = closed_within(&mut s, Duration::from_secs(4), |_| true);
        assert!(got.starts_with("HTTP/1.1 408"), "--body-timeout-s 1: {got:?}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}
