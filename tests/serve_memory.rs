//! One large request body must not cost the server gigabytes (it did: a 63 MiB body of
//! `"pad": [0, 0, …]`, under the 64 MiB body limit, raised peak memory by 2.4 GB, parsed into a
//! generic JSON value on the async threads, which stalled `/health` for seconds). Alone in its
//! test binary, since it reads the process's own peak memory from /proc.

#[path = "support/server.rs"]
mod server;

use haidef_wsi::serve::ServeOptions;
use serde_json::Value;
use server::*;
use std::time::{Duration, Instant};

/// kB of a `/proc/self/status` field (VmRSS, VmHWM).
fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `{"instances": [], "pad": [0,0,…]}` of about `bytes`.
fn pad_body(bytes: usize) -> String {
    let mut b = String::with_capacity(bytes + 64);
    b.push_str(r#"{"instances": [], "pad": ["#);
    while b.len() + 4 < bytes {
        b.push_str("0,");
    }
    b.push_str("0]}");
    b
}

#[test]
fn a_large_body_costs_little_memory_and_does_not_stall_health() {
    let base = start(ServeOptions::default());
    let body = pad_body(63 << 20);
    let (status, answer) = post(&format!("{base}/predict"), r#"{"instances": []}"#);
    assert_eq!((status, answer.to_string()), (200, r#"{"predictions":[]}"#.to_string()));

    // Peak memory from here: writing 5 to clear_refs resets VmHWM to the current RSS; where
    // that is not allowed, the peak so far (building the bodies) is the baseline instead.
    let before = match std::fs::write("/proc/self/clear_refs", "5") {
        Ok(()) => status_kb("VmRSS:"),
        Err(_) => status_kb("VmHWM:"),
    };
    let r = client().post(format!("{base}/predict")).header("content-type", "application/json").body(body.clone()).send().unwrap();
    let status = r.status().as_u16();
    let answer: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!((status, answer.to_string()), (200, r#"{"predictions":[]}"#.to_string()));
    let rise_mib = (status_kb("VmHWM:").saturating_sub(before)) >> 10;
    // The body itself (63 MiB, held once by the server, and what the client sends) and little else.
    eprintln!("one 63 MiB body raised peak memory by {rise_mib} MiB");
    assert!(rise_mib <= 512, "one 63 MiB body raised peak memory by {rise_mib} MiB");

    // Two such bodies at once: /health answers within 1 s throughout.
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (base, body) = (base.clone(), body.clone());
            std::thread::spawn(move || client().post(format!("{base}/predict")).body(body).send().unwrap().status().as_u16())
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while senders.iter().any(|s| !s.is_finished()) {
        let t = Instant::now();
        assert_eq!(client().get(format!("{base}/health")).timeout(Duration::from_secs(10)).send().unwrap().status().as_u16(), 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in senders {
        assert_eq!(s.join().unwrap(), 200);
    }
    eprintln!("slowest /health while two such bodies were read: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "/health took {slowest:?} while two large bodies were read");
}
