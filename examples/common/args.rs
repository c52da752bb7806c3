//! Minimal flag parsing shared by the examples (`--name value`, `--switch`, positionals).
#![allow(dead_code)]

use std::collections::HashMap;

pub struct Args {
    pub positional: Vec<String>,
    flags: HashMap<String, Option<String>>,
    usage: &'static str,
}

impl Args {
    /// Parses `std::env::args()`. `switches` are flags that take no value.
    pub fn parse(usage: &'static str, switches: &[&str]) -> Args {
        let mut positional = Vec::new();
        let mut flags = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if a == "-h" || a == "--help" {
                println!("{usage}");
                std::process::exit(0);
            }
            if let Some(name) = a.strip_prefix("--") {
                if let Some((k, v)) = name.split_once('=') {
                    flags.insert(k.to_string(), Some(v.to_string()));
                } else if switches.contains(&name) {
                    flags.insert(name.to_string(), None);
                } else {
                    let v = it.next().unwrap_or_else(|| fail(usage, &format!("--{name} needs a value")));
                    flags.insert(name.to_string(), Some(v));
                }
            } else {
                positional.push(a);
            }
        }
        Args { positional, flags, usage }
    }

    pub fn switch(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    pub fn opt(&self, name: &str) -> Option<&str> {
        self.flags.get(name).and_then(|v| v.as_deref())
    }

    pub fn num<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.opt(name).map(|v| v.parse().unwrap_or_else(|_| fail(self.usage, &format!("--{name}: cannot parse {v:?}"))))
    }

    pub fn required<T: std::str::FromStr>(&self, name: &str) -> T {
        self.num(name).unwrap_or_else(|| fail(self.usage, &format!("--{name} is required")))
    }

    pub fn slide(&self) -> &str {
        match self.positional.as_slice() {
            [one] => one,
            _ => fail(self.usage, "expected exactly one slide path"),
        }
    }
}

pub fn fail(usage: &str, msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{usage}");
    std::process::exit(2)
}

/// Opens the slide named on the command line: a folder or file path, or a DICOMweb series URL
/// (`http(s)://host:port/<root>/studies/<study>/series/<series>`, or a study URL holding one
/// slide), with `--bearer-token T` or `--basic-auth user:pass` (or the environment variables
/// HAIDEF_BEARER_TOKEN / HAIDEF_BASIC_AUTH, which keep credentials out of shell history),
/// `--ca-cert ca.pem` for an in-house certificate authority, `--frames-per-request N` and
/// `--requests-in-flight N`.
pub fn open_slide(args: &Args) -> Result<haidef_wsi::wsi::Slide, Box<dyn std::error::Error>> {
    use haidef_wsi::wsi::{Auth, DicomWebOptions, OpenOptions, Slide};
    let target = args.slide();
    if target.starts_with("http://") || target.starts_with("https://") {
        let bearer = args.opt("bearer-token").map(String::from).or_else(|| std::env::var("HAIDEF_BEARER_TOKEN").ok());
        let basic = args.opt("basic-auth").map(String::from).or_else(|| std::env::var("HAIDEF_BASIC_AUTH").ok());
        let auth = match (bearer, basic) {
            (Some(_), Some(_)) => return Err("give a bearer token or basic auth, not both".into()),
            (Some(t), None) => Auth::Bearer(t),
            (None, Some(b)) => {
                let (user, password) = b.split_once(':').ok_or("--basic-auth expects user:password")?;
                Auth::Basic { user: user.into(), password: password.into() }
            }
            (None, None) => Auth::None,
        };
        let defaults = DicomWebOptions::default();
        let options = DicomWebOptions {
            auth,
            ca_certificates: args.opt("ca-cert").map(std::path::PathBuf::from).into_iter().collect(),
            frames_per_request: args.num("frames-per-request").unwrap_or(defaults.frames_per_request),
            max_concurrent_requests: args.num("requests-in-flight").unwrap_or(defaults.max_concurrent_requests),
            ..defaults
        };
        return Ok(Slide::open_dicomweb(target, &options)?);
    }
    let options = OpenOptions { series_instance_uid: args.opt("series").map(String::from), ..Default::default() };
    Ok(Slide::open_with(target, &options)?)
}
