//! Errors of every job: what stopped it, in library terms (the examples translate options into
//! their command-line flags).

/// What can stop a pipeline run; each says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Reading the slide failed.
    #[error(transparent)]
    Slide(#[from] haidef_wsi_dicom::WsiError),
    /// A frame under a patch is broken: it does not decode, or the file ends inside it (the
    /// error names the file and frame).
    #[error("{0}; to embed the rest of the slide and list the patches over this frame in the output's metadata, set PipelineOptions::skip_unreadable_frames")]
    UnreadableFrame(#[source] haidef_wsi_dicom::WsiError),
    /// The encoder failed.
    #[error(transparent)]
    Encoder(#[from] haidef_wsi_encoders::EncoderError),
    /// An output could not be written.
    #[error("{path}: cannot write: {source}")]
    Output {
        /// The file or folder.
        path: String,
        /// What went wrong (an I/O, Parquet, Arrow or PNG error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The slide's ICC profile cannot be used.
    #[cfg(feature = "icc")]
    #[error("{what}: {source}")]
    Icc {
        /// What was being done.
        what: &'static str,
        /// LittleCMS's error.
        #[source]
        source: lcms2::Error,
    },
    /// k-means could not cluster the embeddings.
    #[error("k-means failed: {source}")]
    Clustering {
        /// linfa's (or ndarray's) error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An input file cannot be used (unreadable, not an image, too large, wrong size).
    #[error("{path}: {problem}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The options do not fit this slide (unknown level, µm/px out of range, k too large...).
    #[error("{0}")]
    Options(String),
    /// No patch passed the tissue filter.
    #[error("no tissue found: {0}")]
    NoTissue(String),
    /// The run was cancelled (Ctrl-C); nothing was left half-written.
    #[error("cancelled; no output was written")]
    Cancelled,
}

/// Result of the pipeline.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    /// The same error, with a path inside `from` (a staging folder) given as inside `to`.
    pub(crate) fn relocated(self, from: &std::path::Path, to: &std::path::Path) -> Self {
        match self {
            PipelineError::Output { path, source } => {
                let path = match std::path::Path::new(&path).strip_prefix(from) {
                    Ok(rest) => to.join(rest).display().to_string(),
                    Err(_) => path,
                };
                PipelineError::Output { path, source }
            }
            other => other,
        }
    }

    pub(crate) fn output(path: &std::path::Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let source = e.into();
        let source = if storage_full(source.as_ref()) { Box::new(StorageFull(source)) } else { source };
        PipelineError::Output { path: path.display().to_string(), source }
    }
}

/// A write that failed because the disk (or a quota, or the process's file-size limit) is full,
/// with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0}: the disk is full, or a quota or the process's file-size limit (ulimit -f) was reached; free some space, raise the limit, or write to another folder"
)]
struct StorageFull(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Whether an I/O error in `e`'s chain is ENOSPC, EDQUOT or EFBIG. Parquet and PNG wrap the
/// I/O error in their own, not always as a `source`, so their message is checked too.
fn storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let full =
        |io: &std::io::Error| matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded | std::io::ErrorKind::FileTooLarge);
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>().is_some_and(full) {
            return true;
        }
        let text = e.to_string();
        if ["os error 28)", "os error 122)", "os error 27)"].iter().any(|code| text.contains(code)) {
            return true;
        }
        next = e.source();
    }
    false
}
