//! Command-line flags of the benches: `--name value`, `--name=value` and bare flags. Anything
//! else (`cargo bench` passes `--bench`) is ignored.

use std::collections::BTreeMap;

pub struct Args(BTreeMap<String, Option<String>>);

impl Args {
    /// Flags named in `with_value` take a value; the others are bare.
    pub fn parse(with_value: &[&str]) -> Args {
        let mut flags = BTreeMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let value = if with_value.contains(&key.as_str()) {
                let v = inline.or_else(|| args.next());
                Some(v.unwrap_or_else(|| panic!("{key} needs a value")))
            } else {
                None
            };
            flags.insert(key, value);
        }
        Args(flags)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The value of `name` parsed, or `None` when it was not given.
    pub fn get<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        let raw = self.0.get(name)?.as_deref()?;
        Some(
            raw.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: cannot read `{raw}`")),
        )
    }

    /// `N[,N...]` (underscores allowed: `10_000`).
    pub fn list(&self, name: &str) -> Option<Vec<usize>> {
        let raw = self.0.get(name)?.as_deref()?;
        Some(parse_list(raw))
    }
}

pub fn parse_list(raw: &str) -> Vec<usize> {
    raw.split(',')
        .map(|s| s.trim().replace('_', "").parse().expect("N[,N...]"))
        .collect()
}
