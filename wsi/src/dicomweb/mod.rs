//! DICOMweb (WADO-RS) source: a slide from a series URL, with the same levels, regions and
//! patch grid as local files. Frames are fetched as stored (`transfer-syntax=*`), many per
//! request, using the patch grid's prefetch hints; answers are checked (part count,
//! Content-Location). A bounded number of requests go out together; HTTP or HTTPS (rustls).

mod allowlist;
mod client;
mod multipart;
mod open;
mod source;

pub use allowlist::UrlAllowlist;
pub use client::{Auth, DicomWebOptions, StopWhen};
pub use multipart::{parse_body, parse_content_type, MultipartType, Part};
pub use open::{dataset_from_json, parse_series_url};
