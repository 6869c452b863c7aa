//! Configuration errors that name the key and, where it is known, the line.
//!
//! Every error an operator can get from a config file says *where*: the dotted key path
//! (`models.gpt-4o.providers`) and the line it sits on, so a typo stops start-up with a
//! message that points at it instead of being ignored.

use std::fmt;
use std::path::PathBuf;

/// A problem with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML did not parse or did not fit the schema (unknown key, wrong type, ...).
    /// toml's message already names the line, the column and the offending key.
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// A value parsed but is not acceptable.
    #[error("{origin}:{}: {key}: {message}", line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()))]
    Invalid {
        origin: String,
        key: String,
        line: Option<usize>,
        message: String,
    },
}

/// A validation failure before the origin (file name) and line are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Dotted path of the key, e.g. `providers.openai.base_url` or `keys[1].key`.
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            key: key.into(),
            message: message.to_string(),
        }
    }
}
