//! The slide arguments shared by the examples that open a slide, as clap argument groups.
#![allow(dead_code)]

use clap::Args;
use std::path::PathBuf;

/// Which slide to open and how to reach it.
#[derive(Args, Debug)]
pub struct SlideArgs {
    /// Slide folder or file, or a DICOMweb series URL (http(s)://host/<root>/studies/<study>/series/<series>) or a study URL holding one slide.
    pub slide: String,
    /// The SeriesInstanceUID to open when a folder holds several series.
    #[arg(long)]
    pub series: Option<String>,
    #[command(flatten)]
    pub dicomweb: DicomWebArgs,
}

/// How to reach DICOMweb slides.
#[derive(Args, Debug)]
pub struct DicomWebArgs {
    /// DICOMweb bearer token (the environment variable keeps it out of shell history).
    #[arg(long, env = "HAIDEF_BEARER_TOKEN", hide_env_values = true, conflicts_with = "basic_auth")]
    pub bearer_token: Option<String>,
    /// DICOMweb HTTP basic authentication, user:password.
    #[arg(long, env = "HAIDEF_BASIC_AUTH", hide_env_values = true)]
    pub basic_auth: Option<String>,
    /// PEM file of an in-house certificate authority for https.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// DICOMweb frames per request [default: 64].
    #[arg(long)]
    pub frames_per_request: Option<usize>,
    /// DICOMweb requests in flight [default: 4].
    #[arg(long)]
    pub requests_in_flight: Option<usize>,
}

/// The DICOMweb client's options from the command line.
pub fn dicomweb_options(args: &DicomWebArgs) -> Result<haidef_wsi::wsi::DicomWebOptions, Box<dyn std::error::Error>> {
    use haidef_wsi::wsi::{Auth, DicomWebOptions};
    let auth = match (&args.bearer_token, &args.basic_auth) {
        (Some(_), Some(_)) => return Err("give a bearer token or basic auth, not both".into()),
        (Some(t), None) => Auth::Bearer(t.clone()),
        (None, Some(b)) => {
            let (user, password) = b.split_once(':').ok_or("--basic-auth expects user:password")?;
            Auth::Basic { user: user.into(), password: password.into() }
        }
        (None, None) => Auth::None,
    };
    let defaults = DicomWebOptions::default();
    let options = DicomWebOptions {
        auth,
        ca_certificates: args.ca_cert.iter().cloned().collect(),
        frames_per_request: args.frames_per_request.unwrap_or(defaults.frames_per_request),
        max_concurrent_requests: args.requests_in_flight.unwrap_or(defaults.max_concurrent_requests),
        ..defaults
    };
    Ok(options)
}

/// Opens the slide named on the command line: a folder or file path, or a DICOMweb URL.
pub fn open_slide(args: &SlideArgs) -> Result<haidef_wsi::wsi::Slide, Box<dyn std::error::Error>> {
    use haidef_wsi::wsi::{OpenOptions, Slide};
    let target = args.slide.as_str();
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(Slide::open_dicomweb(target, &dicomweb_options(&args.dicomweb)?)?);
    }
    let options = OpenOptions { series_instance_uid: args.series.clone(), ..Default::default() };
    Ok(Slide::open_with(target, &options)?)
}

/// Prints `error: …` and exits with status 1.
pub fn exit_with(e: Box<dyn std::error::Error>) -> ! {
    eprintln!("error: {}", with_flags(&e.to_string()));
    std::process::exit(1)
}

/// A library error's advice in this command line's terms: the options it names become flags.
pub fn with_flags(message: &str) -> String {
    const FLAGS: [(&str, &str); 6] = [
        ("set PipelineOptions::skip_unreadable_frames", "rerun with --skip-unreadable-frames"),
        ("choose a level by index (LevelChoice::Index)", "choose a level with --level"),
        ("or a level by index (LevelChoice::Index)", "or --level"),
        ("lower the tissue threshold (min_tissue) or embed every patch (all_patches)", "lower --min-tissue or pass --all-patches"),
        ("lower k or embed more patches", "lower --k or embed more patches"),
        ("; lower k", "; lower --k"),
    ];
    FLAGS.iter().fold(message.to_string(), |m, (library, flag)| m.replace(library, flag))
}
