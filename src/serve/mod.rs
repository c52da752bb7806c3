//! An embedding server that speaks Google's Path Foundation serving API (docs/SERVING_API.md),
//! so that clients of Google's endpoint, EZ-WSI DICOMweb among them, can point at it.
//!
//! - `api`: the request and response contract with Google's error codes.
//! - `pixels`: inline images (`raw_image_bytes`, EZ-WSI's `ez_wsi_state.image` / `.patches`)
//!   decoded within a pixel limit and cut into patches.
//! - `dicom`: `dicom_path` instances read from DICOMweb stores on an allowlist (deny by
//!   default; redirects and bulk-data URIs checked too), the caller's bearer token sent to the
//!   store only, slides kept open per series and token.
//! - `gcs`: `image_file_uri` objects from Cloud Storage buckets on an allowlist, with the
//!   caller's token.
//! - `icc`: `transform_imaging_to_icc_profile` (SRGB, ADOBERGB, ROMMRGB) from the source's
//!   own profile.
//! - `encode_queue`: one encoder thread packing the patches of concurrent requests into shared
//!   batches, bounded in patches (503 with `Retry-After` when full).
//! - `server`: the axum routes (predict, health, metrics), request limits, optional API keys
//!   (constant-time compare), time limits per request body and per request.
//! - `listen`: the accept loop, HTTP or HTTPS (rustls): a cap on connections, time limits on
//!   request heads and TLS handshakes.
//!
//! Images and DICOM levels are resized for `image_dimensions` as Google's server does
//! (`resize`; enlarged DICOM levels within one grey level, see there).

mod api;
mod dicom;
mod encode_queue;
mod gcs;
mod icc;
mod listen;
mod pixels;
mod resize;
mod server;

pub use dicom::DicomStores;
pub use encode_queue::EncodeQueue;
pub use gcs::GcsBuckets;
pub use icc::IccTargets;
pub use server::{router, serve, serve_tls, tls_config, ApiKeys, ServeOptions};

// The request parsers and resizers are public for the fuzz targets and the parity tests, not
// part of the API.
#[doc(hidden)]
pub use api::{parse_request, read_request};
#[doc(hidden)]
pub use pixels::{patches, PixelBudget};
#[doc(hidden)]
pub use resize::{area_rgb8, cubic_rgb8, resize_rgb8};
