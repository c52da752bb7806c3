//! A Cloud Storage stand-in for the server's tests: the XML API's path form
//! (`GET /{bucket}/{object}`) over files given at start, `Authorization: Bearer <token>`
//! required, `…/moved.png` answering 302 to another host. It counts the requests it saw.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Bucket {
    objects: HashMap<String, Vec<u8>>,
    token: String,
    seen: Arc<AtomicUsize>,
}

/// Starts it with `objects` ("bucket/object" → bytes); its base URL and its request count.
pub fn start(objects: HashMap<String, Vec<u8>>, token: &str) -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(Bucket { objects, token: token.into(), seen: seen.clone() });
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route("/{bucket}/{*object}", axum::routing::get(get)).with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    (base, seen)
}

async fn get(State(b): State<Arc<Bucket>>, Path((bucket, object)): Path<(String, String)>, headers: HeaderMap) -> Response {
    b.seen.fetch_add(1, Ordering::SeqCst);
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(format!("Bearer {}", b.token).as_str()) {
        return (StatusCode::UNAUTHORIZED, "Anonymous caller does not have storage.objects.get access").into_response();
    }
    if object.ends_with("moved.png") {
        return (StatusCode::FOUND, [(header::LOCATION, "http://169.254.169.254/computeMetadata/v1/")]).into_response();
    }
    match b.objects.get(&format!("{bucket}/{object}")) {
        Some(bytes) => ([(header::CONTENT_TYPE, "image/png")], bytes.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "No such object").into_response(),
    }
}
