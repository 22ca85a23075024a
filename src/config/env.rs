//! Reading variables: where they come from, and the parsers every section
//! shares (lists, durations, flags, URLs). Errors name the variable, never
//! its value when it is a secret.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

/// A configuration problem, phrased as one sentence that names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var} {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    problem: String,
}

impl ConfigError {
    pub(super) fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

/// Where variables come from: the process environment in production, a map in tests.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// A set variable with surrounding whitespace removed; empty counts as unset.
    pub(super) fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A comma-separated list; blanks between commas are ignored; unset is empty.
    pub(super) fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn require(&self, var: &'static str, hint: &str) -> Result<&str, ConfigError> {
        self.get(var)
            .ok_or_else(|| ConfigError::new(var, format!("is not set: {hint}")))
    }

    pub(super) fn parse_or<T: FromStr>(
        &self,
        var: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::new(var, format!("must be {expected}, got {raw:?}"))),
        }
    }

    pub(super) fn duration_or(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => parse_duration(raw).ok_or_else(|| {
                ConfigError::new(
                    var,
                    format!(
                        "must be a duration such as `10s`, `500ms`, `5m` or `72h`, got {raw:?}"
                    ),
                )
            }),
        }
    }

    pub(super) fn flag(&self, var: &'static str) -> Result<bool, ConfigError> {
        self.flag_or(var, false)
    }

    pub(super) fn flag_or(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some(other) => Err(ConfigError::new(
                var,
                format!("must be true or false, got {other:?}"),
            )),
        }
    }

    pub(super) fn url(&self, var: &'static str, raw: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(raw)
            .map_err(|e| ConfigError::new(var, format!("is not a valid URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::new(var, "must be an http(s) URL with a host"));
        }
        Ok(url)
    }
}

/// `10s`, `500ms`, `2m`, `72h`, `7d` or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(n.checked_mul(86_400)?)),
        _ => None,
    }
}
