//! The cluster's shared secret, which every member proves it knows in the handshake.
//!
//! It comes from the environment, never from the command line (where other users of the
//! machine can read it): the variable `DSTREAM_SECRET` holds it, or `DSTREAM_SECRET_FILE`
//! names a file that does (one trailing newline is dropped). It is never printed.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// The variable holding the secret itself.
pub const SECRET_ENV: &str = "DSTREAM_SECRET";

/// The variable naming a file that holds the secret.
pub const SECRET_FILE_ENV: &str = "DSTREAM_SECRET_FILE";

/// The shortest secret accepted, in bytes.
pub const SECRET_BYTES_MIN: usize = 16;

/// The longest secret accepted, in bytes (also the most read from a secret file).
pub const SECRET_BYTES_MAX: usize = 4096;

/// The secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither variable is set.
    #[error("no secret: set {SECRET_ENV} or {SECRET_FILE_ENV}")]
    Missing,
    /// Both variables are set; which one is meant is unclear.
    #[error("both {SECRET_ENV} and {SECRET_FILE_ENV} are set; set one")]
    Ambiguous,
    /// The secret is empty.
    #[error("the secret is empty")]
    Empty,
    /// The secret is shorter than [`SECRET_BYTES_MIN`].
    #[error("the secret has {bytes} bytes, fewer than {bytes_min}")]
    TooShort {
        /// Its length.
        bytes: usize,
        /// The minimum.
        bytes_min: usize,
    },
    /// The secret is longer than [`SECRET_BYTES_MAX`].
    #[error("the secret is longer than {bytes_max} bytes")]
    TooLong {
        /// The maximum.
        bytes_max: usize,
    },
    /// `DSTREAM_SECRET` is not valid UTF-8.
    #[error("{SECRET_ENV} is not valid UTF-8")]
    NotUtf8,
    /// The secret file could not be read.
    #[error("cannot read the secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A shared secret of [`SECRET_BYTES_MIN`] to [`SECRET_BYTES_MAX`] bytes. Its `Debug` shows
/// nothing of it.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A secret from its bytes, checked for length.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Secret, SecretError> {
        let bytes = bytes.into();
        match bytes.len() {
            0 => Err(SecretError::Empty),
            n if n < SECRET_BYTES_MIN => Err(SecretError::TooShort { bytes: n, bytes_min: SECRET_BYTES_MIN }),
            n if n > SECRET_BYTES_MAX => Err(SecretError::TooLong { bytes_max: SECRET_BYTES_MAX }),
            _ => Ok(Secret(bytes.into())),
        }
    }

    /// The secret from the process's environment: `DSTREAM_SECRET`, or the file named by
    /// `DSTREAM_SECRET_FILE`.
    pub fn from_env() -> Result<Secret, SecretError> {
        Secret::from_lookup(|name| std::env::var_os(name))
    }

    /// The secret from variables looked up by `var` (the environment in [`Secret::from_env`];
    /// a map in tests, which must not change the process's environment).
    pub fn from_lookup(var: impl Fn(&str) -> Option<OsString>) -> Result<Secret, SecretError> {
        match (var(SECRET_ENV), var(SECRET_FILE_ENV)) {
            (None, None) => Err(SecretError::Missing),
            (Some(_), Some(_)) => Err(SecretError::Ambiguous),
            (Some(value), None) => Secret::from_bytes(value.into_string().map_err(|_| SecretError::NotUtf8)?),
            (None, Some(path)) => Secret::from_file(PathBuf::from(path)),
        }
    }

    /// The secret held in the file at `path`, without one trailing newline (`\n` or `\r\n`).
    pub fn from_file(path: PathBuf) -> Result<Secret, SecretError> {
        let mut bytes = Vec::new();
        let read =
            std::fs::File::open(&path).and_then(|file| file.take(SECRET_BYTES_MAX as u64 + 3).read_to_end(&mut bytes));
        if let Err(source) = read {
            return Err(SecretError::File { path, source });
        }
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Secret::from_bytes(bytes)
    }

    /// The secret's bytes (the HMAC key).
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn from_the_variable_or_a_file() {
        let s = Secret::from_lookup(lookup(&[(SECRET_ENV, "0123456789abcdef")])).unwrap();
        assert_eq!(s.expose(), b"0123456789abcdef");
        let path = std::env::temp_dir().join(format!("dstream-secret-test-{}", std::process::id()));
        std::fs::write(&path, "0123456789abcdefXY\r\n").unwrap();
        let s = Secret::from_lookup(lookup(&[(SECRET_FILE_ENV, path.to_str().unwrap())])).unwrap();
        assert_eq!(s.expose(), b"0123456789abcdefXY");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            Secret::from_lookup(lookup(&[(SECRET_FILE_ENV, path.to_str().unwrap())])),
            Err(SecretError::File { .. })
        ));
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(Secret::from_lookup(lookup(&[])), Err(SecretError::Missing)));
        let both = lookup(&[(SECRET_ENV, "0123456789abcdef"), (SECRET_FILE_ENV, "/x")]);
        assert!(matches!(Secret::from_lookup(both), Err(SecretError::Ambiguous)));
        assert!(matches!(Secret::from_lookup(lookup(&[(SECRET_ENV, "")])), Err(SecretError::Empty)));
        assert!(matches!(Secret::from_bytes("short"), Err(SecretError::TooShort { bytes: 5, bytes_min: 16 })));
        assert!(matches!(Secret::from_bytes(vec![1; SECRET_BYTES_MAX + 1]), Err(SecretError::TooLong { .. })));
    }

    #[test]
    fn debug_shows_nothing_of_it() {
        let s = Secret::from_bytes("a-very-secret-key-0123").unwrap();
        let shown = format!("{s:?} {:?}", Some(s.clone()));
        assert!(!shown.contains("secret-key"), "{shown}");
        assert!(!shown.contains("97"), "{shown}");
    }
}
