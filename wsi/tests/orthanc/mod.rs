//! A real Orthanc (+ DICOMweb plugin) for tests and benches: the Debian packages `orthanc
//! orthanc-dicomweb` (installed by .ci/run), started on a free loopback port from the config in
//! `fixtures/dicomweb/orthanc.json` with a temporary storage directory, optionally with basic
//! authentication, loaded over STOW-RS, stopped when dropped. Shared by
//! `wsi/tests/dicomweb_orthanc.rs` and `benches/dicomweb.rs`.
//!
//! HTTPS: Debian's Orthanc 1.10.1 crashes (civetweb worker segfault with OpenSSL 3) on the first
//! HTTPS request, so, as nginx would in a hospital, a small TLS front door (rustls, certificate
//! from `fixtures/dicomweb/tls`) terminates HTTPS and forwards to Orthanc's plain HTTP port;
//! Orthanc's `DicomWeb.Host`/`Ssl` make its bulk-data URIs point at the front door.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const ORTHANC: &str = "/usr/sbin/Orthanc";
pub const PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";
/// The user registered in the config (used when authentication is on).
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pw";

/// How to start the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// HTTP basic authentication for [`USER`].
    pub auth: bool,
    /// HTTPS with `fixtures/dicomweb/tls/server.pem`.
    pub tls: bool,
}

pub struct Orthanc {
    child: Child,
    /// Orthanc's own (plain HTTP) port.
    pub port: u16,
    /// Where clients connect: Orthanc's port, or the TLS front door's.
    pub front_port: u16,
    pub setup: Setup,
    dir: PathBuf,
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn fixtures() -> PathBuf {
    // CARGO_MANIFEST_DIR is wsi/ for the tests and the repository root for the benches.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if here.join("fixtures").is_dir() {
        here.join("fixtures")
    } else {
        here.join("../fixtures")
    }
}

/// The test CA that signed the server's certificate.
pub fn test_ca() -> PathBuf {
    fixtures().join("dicomweb/tls/ca.pem")
}

impl Orthanc {
    /// Starts Orthanc, or returns None (with a message) where it is not installed and this is
    /// not CI (where `.ci/run` installs it, so its absence is a failure).
    pub fn start(setup: Setup) -> Option<Orthanc> {
        if !Path::new(ORTHANC).exists() || !Path::new(PLUGIN).exists() {
            assert!(std::env::var_os("CI").is_none(), "CI must install orthanc and orthanc-dicomweb (.ci/run does)");
            eprintln!("Orthanc or its DICOMweb plugin is not installed (apt install orthanc orthanc-dicomweb): DICOMweb tests not run");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let front = setup.tls.then(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let front_port = front.as_ref().map_or(port, |l| l.local_addr().unwrap().port());
        let dir = std::env::temp_dir().join(format!("haidef-orthanc-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let template = std::fs::read(fixtures().join("dicomweb/orthanc.json")).unwrap();
        let mut config: serde_json::Value = serde_json::from_slice(&template).unwrap();
        config["HttpPort"] = port.into();
        config["StorageDirectory"] = dir.join("db").to_str().unwrap().into();
        config["IndexDirectory"] = dir.join("db").to_str().unwrap().into();
        config["AuthenticationEnabled"] = setup.auth.into();
        // Bulk-data URIs in the metadata point at the door clients use.
        config["DicomWeb"]["Host"] = format!("127.0.0.1:{front_port}").into();
        config["DicomWeb"]["Ssl"] = setup.tls.into();
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("orthanc.log")).unwrap();
        let child = Command::new(ORTHANC).arg(dir.join("config.json")).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let server = Orthanc { child, port, front_port, setup, dir };
        if let Some(listener) = front {
            tls_front_door(listener, port);
        }
        let http = server.http();
        let start = Instant::now();
        while server.with_auth(http.get(format!("{}/system", server.direct()))).send().map(|r| !r.status().is_success()).unwrap_or(true) {
            assert!(start.elapsed() < Duration::from_secs(20), "Orthanc did not start; see {}", server.log().display());
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// Where clients connect: `http://127.0.0.1:<port>`, or `https://…` through the front door.
    pub fn base(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.setup.tls { "https" } else { "http" }, self.front_port)
    }

    /// Orthanc's own plain-HTTP address, for setting it up.
    pub fn direct(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("orthanc.log")
    }

    /// An HTTP client for setting the server up (trusts the test CA).
    pub fn http(&self) -> reqwest::blocking::Client {
        install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(test_ca()).unwrap()).unwrap();
        reqwest::blocking::Client::builder().tls_certs_merge([ca]).build().unwrap()
    }

    /// Adds the registered user's credentials when authentication is on.
    pub fn with_auth(&self, r: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        if self.setup.auth {
            r.basic_auth(USER, Some(PASSWORD))
        } else {
            r
        }
    }

    /// Stores every file of `folder` with one STOW-RS request (multipart/related of
    /// application/dicom parts). reqwest sends no `Expect: 100-continue`, so Orthanc answers at once.
    pub fn stow(&self, folder: &Path) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let boundary = "haidef-wsi-stow-7d1c0f5e2b9a4e8c9b6d3a1f0e5c7b2a";
        let mut body = Vec::new();
        for file in &files {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
            body.extend_from_slice(&std::fs::read(file).unwrap());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let r = self
            .with_auth(self.http().post(format!("{}/dicom-web/studies", self.direct())))
            .header("Content-Type", format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
            .header("Accept", "application/dicom+json")
            .body(body)
            .send()
            .unwrap();
        let status = r.status();
        let answer: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap_or_default();
        assert!(status.is_success(), "STOW-RS: HTTP {status}: {answer}");
        // Failed SOP Sequence (0008,1198): instances the server refused.
        let refused = answer["00081198"]["Value"].as_array().map_or(0, Vec::len);
        assert_eq!(refused, 0, "STOW-RS refused {refused} instances: {}", answer["00081198"]);
        let stored = answer["00081199"]["Value"].as_array().map_or(0, Vec::len);
        assert_eq!(stored, files.len(), "STOW-RS stored {stored} of {} files", files.len());
    }

    /// A plain-HTTP door to this server that waits `delay` before forwarding each request, as a
    /// distant server would (round-trip time); returns its base URL. (Bulk-data URIs in the
    /// metadata still point at Orthanc itself.)
    pub fn slow_door(&self, delay: Duration) -> String {
        self.door(delay, |_| {})
    }

    /// Like [`Orthanc::slow_door`], calling `seen(path)` as each request arrives, before it is
    /// forwarded (a test can stop the server at a chosen request).
    pub fn door(&self, delay: Duration, seen: impl Fn(&str) + Send + Sync + 'static) -> String {
        install_crypto_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (http, orthanc_port) = (reqwest::blocking::Client::new(), self.port);
        let seen = std::sync::Arc::new(seen);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let (http, seen) = (http.clone(), seen.clone());
                std::thread::spawn(move || {
                    forward_one(&mut tcp, &http, orthanc_port, delay, &*seen);
                });
            }
        });
        format!("http://127.0.0.1:{port}")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The DICOMweb series URL of a stored series.
    pub fn series_url(&self, study: &str, series: &str) -> String {
        format!("{}/dicom-web/studies/{study}/series/{series}", self.base())
    }

    /// Stops the server (as a crash would: SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves HTTPS on `listener` (test certificate, rustls) and forwards each GET, with its
/// Accept and Authorization headers, to Orthanc's plain HTTP port; one request per connection.
fn tls_front_door(listener: std::net::TcpListener, orthanc_port: u16) {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    use std::io::Write;
    let pem = fixtures().join("dicomweb/tls/server.pem");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pem).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(&pem).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = std::sync::Arc::new(config);
    install_crypto_provider();
    let http = reqwest::blocking::Client::new();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let (config, http) = (config.clone(), http.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                if !forward_one(&mut tls, &http, orthanc_port, Duration::ZERO, &|_| {}) {
                    return;
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
}

/// reqwest (built without a default crypto provider) needs one installed before a client is built.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The path and headers (names lower-cased) of one request read from `stream`; None if the
/// client hung up first (as a client that refuses a TLS certificate does).
pub fn read_request<R: std::io::Read>(stream: R) -> Option<(String, Vec<(String, String)>)> {
    use std::io::{BufRead, BufReader};
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) <= 2 {
            return Some((path, headers));
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

/// Writes a whole answer (the connection is closed after it).
pub fn write_answer<W: std::io::Write>(stream: &mut W, status: u16, content_type: &str, body: &[u8]) {
    let head = format!("HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// Reads one GET from `stream`, tells `seen` its path, waits `delay`, forwards it (with its
/// Accept and Authorization headers) to Orthanc's plain HTTP port and writes the answer back;
/// false if the client hung up first or Orthanc did not answer.
fn forward_one<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    http: &reqwest::blocking::Client,
    orthanc_port: u16,
    delay: Duration,
    seen: &dyn Fn(&str),
) -> bool {
    let Some((path, headers)) = read_request(&mut *stream) else { return false };
    seen(&path);
    std::thread::sleep(delay);
    let mut request = http.get(format!("http://127.0.0.1:{orthanc_port}{path}"));
    for (k, v) in headers.into_iter().filter(|(k, _)| k == "accept" || k == "authorization") {
        request = request.header(k, v);
    }
    let Ok(answer) = request.send() else { return false };
    let status = answer.status().as_u16();
    let ct = answer.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // Orthanc dying mid-answer: close without answering, as a proxy would, rather than pass on
    // an empty 200 (which no real server sends and the client rightly calls malformed).
    let Ok(body) = answer.bytes() else { return false };
    write_answer(stream, status, &ct, &body);
    true
}
