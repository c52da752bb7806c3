//! DICOMweb (QIDO-RS / WADO-RS) building blocks. So far: the `multipart/related` parser that
//! WADO-RS frame and bulk-data answers need. The client and the DICOMweb frame source come next
//! (issue 4).

pub mod multipart;
