//! An embedding server that speaks Google's Path Foundation serving API (docs/SERVING_API.md),
//! so that clients of Google's endpoint, EZ-WSI DICOMweb among them, can point at it.
//!
//! Built so far (issue 14, first part): the predict and health routes, the whole request and
//! response contract with Google's error codes ([`api`]), inline images (`raw_image_bytes`,
//! and EZ-WSI's `ez_wsi_state.image` / `.patches`) cut into patches ([`pixels`]), and one
//! encoder thread that packs the patches of concurrent requests into shared batches, bounded
//! in patches, answering 503 with `Retry-After` when full ([`encode_queue`]); a time limit per
//! request, optional API keys (constant-time compare), and a metrics route with the encoder's
//! busy fraction ([`server`]).
//!
//! Not yet: DICOMweb sources (answered `UNAPPROVED_DICOM_STORE_ERROR`: no store is approved),
//! fetching `image_file_uri` (`UNAPPROVED_GCS_BUCKET_ERROR`), `image_dimensions` resizing and
//! ICC transforms of images that carry a profile (errors saying so), TLS, and the EZ-WSI and
//! load tests.

pub mod api;
pub mod dicom;
pub mod encode_queue;
pub mod pixels;
pub mod server;

pub use dicom::DicomStores;
pub use encode_queue::EncodeQueue;
pub use server::{router, serve, serve_tls, tls_config, ServeOptions};
