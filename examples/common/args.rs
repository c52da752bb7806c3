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
