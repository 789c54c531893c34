//! [`S3`]: a [`Storage`] on an S3 bucket (AWS S3 or any server of its API), through the
//! `object_store` crate's S3 client, on a tokio runtime of its own.
//!
//! - **Atomic puts.** An object is written by one `PUT` when it fits in one part, else by a
//!   multipart upload completed at the end (aborted on any error). S3 makes either visible
//!   whole, at once, and only once it is durable; a crashed writer leaves nothing listed.
//! - **Snapshot reads.** [`Storage::open`] reads the object in ranges, each conditional on the
//!   `ETag` it had when opened: an object replaced during the read fails the read rather
//!   than mixing two versions.
//! - **Listing** is of the names under a string prefix, sorted (S3 lists by key); objects of
//!   unfinished uploads are never listed. **Delete** of a missing object is `NotFound`
//!   (checked first: S3 itself answers a delete of nothing with success).
//! - **Errors** are typed: [`StorageError::Unauthorized`] (401/403, such as an unknown access
//!   key or a bad signature), [`StorageError::BucketMissing`] (found when connecting),
//!   [`StorageError::Throttled`] (503 SlowDown or 429 past the retries), `NotFound`, and
//!   `Io` for the rest (a refused connection, a timeout).
//! - **Bounded retries.** Server errors, throttling, dropped connections and timeouts are
//!   retried with exponential backoff at most [`S3Config::retries_max`] times and within
//!   [`S3Config::retry_timeout`]; each request is bounded by [`S3Config::request_timeout`].
//!
//! The store works from any thread, a tokio runtime's (dstream-tcp's) included: each request
//! runs on the store's runtime while the caller waits.
mod config;
mod transfer;

pub use config::S3Config;

use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use dstream::storage::{validate_name, validate_prefix};
use dstream::{Storage, StorageError};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use transfer::{Download, Upload};

/// The smallest part of a multipart upload S3 accepts (but the last).
pub const PART_BYTES_MIN: usize = 5 << 20;
/// The default part size, and the most a put holds in memory.
pub const PART_BYTES_DEFAULT: usize = 8 << 20;
/// The bytes one ranged read of [`Storage::open`] fetches, and holds in memory.
pub const READ_BYTES_MAX: u64 = 8 << 20;

/// Objects in an S3 bucket; see the [module](self) documentation. Clones share the client
/// and its runtime.
///
/// # Examples
///
/// ```no_run
/// use dstream_storage::{S3Config, S3};
///
/// let store = S3::connect(S3Config::new("my-checkpoints").prefix("wordcount"))?;
/// let checkpointing = dstream_storage::checkpointing(store);
/// # Ok::<(), dstream::StorageError>(())
/// ```
#[derive(Clone)]
pub struct S3 {
    client: Arc<Client>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3").field("bucket", &self.client.bucket).field("prefix", &self.client.root).finish()
    }
}

struct Client {
    store: Arc<AmazonS3>,
    /// `Some` until dropped (see the `Drop` impl).
    runtime: Option<tokio::runtime::Runtime>,
    bucket: String,
    /// The key prefix of every object, `""` or ending in `/`.
    root: String,
    part_bytes: usize,
}

impl Drop for Client {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which a runtime's own thread (the last clone dropped in
        // dstream-tcp's tasks) may not do; its threads end by themselves.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl S3 {
    /// Connects to the bucket `config` names and checks that it is there and that the
    /// credentials may list it (one list request).
    pub fn connect(config: S3Config) -> Result<S3, StorageError> {
        let invalid = |reason: &'static str| StorageError::InvalidName { name: config.prefix.clone(), reason };
        if !config.prefix.is_empty() {
            validate_name(&config.prefix).map_err(|_| invalid("the prefix breaks the object-name rules"))?;
        }
        if config.part_bytes < PART_BYTES_MIN {
            return Err(invalid("the part size is below PART_BYTES_MIN"));
        }
        let io = |message: String| StorageError::Io {
            name: String::new(),
            path: format!("s3://{}", config.bucket),
            operation: "connect",
            kind: io::ErrorKind::Other,
            message,
        };
        // The environment's settings (AWS_*) first; what the configuration says wins.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: config.backoff_initial,
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: config.retries_max,
                retry_timeout: config.retry_timeout,
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(config.request_timeout)
                    .with_connect_timeout(config.request_timeout)
                    .with_allow_http(true),
            );
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some((key, secret, token)) = &config.credentials {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| io(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dstream-s3")
            .enable_all()
            .build()
            .map_err(|e| io(format!("cannot start the S3 client's runtime: {e}")))?;
        let root = if config.prefix.is_empty() { String::new() } else { format!("{}/", config.prefix) };
        let s3 = S3 {
            client: Arc::new(Client {
                store: Arc::new(store),
                runtime: Some(runtime),
                bucket: config.bucket.clone(),
                root,
                part_bytes: config.part_bytes,
            }),
        };
        // One list request: a missing bucket or refused credentials fail here, not at the
        // first checkpoint.
        let store = Arc::clone(&s3.client.store);
        let prefix = s3.key_path("");
        s3.run("", "list", async move {
            let mut listing = store.list(prefix.as_ref());
            listing.next().await.transpose().map(drop)
        })?;
        Ok(s3)
    }

    /// The bucket's key of object `name`.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.client.root)
    }

    /// The path to list to find the names starting with `prefix`: its last whole directory.
    fn key_path(&self, prefix: &str) -> Option<Path> {
        let full = self.key(prefix);
        let dir = full.rfind('/').map_or("", |i| &full[..i]);
        (!dir.is_empty()).then(|| Path::from(dir))
    }

    /// Runs `request` on the store's runtime and waits for it; its error is mapped for
    /// object `name`.
    fn run<T: Send + 'static>(
        &self,
        name: &str,
        operation: &'static str,
        request: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.run_returning(name, operation, request)?.map_err(|e| self.error(name, operation, e))
    }

    /// Runs `task` on the store's runtime and waits for what it returns; fails only if the
    /// runtime is gone.
    fn run_returning<T: Send + 'static>(
        &self,
        name: &str,
        operation: &'static str,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let Some(runtime) = &self.client.runtime else {
            return Err(self.stopped(name, operation));
        };
        runtime.spawn(async move {
            let _ = done.send(task.await);
        });
        result.recv().map_err(|_| self.stopped(name, operation))
    }

    fn stopped(&self, name: &str, operation: &'static str) -> StorageError {
        StorageError::Io {
            name: name.to_owned(),
            path: self.url(name),
            operation,
            kind: io::ErrorKind::Other,
            message: "the S3 client's runtime stopped".into(),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("s3://{}/{}", self.client.bucket, self.key(name))
    }

    /// The typed error of a failed request.
    fn error(&self, name: &str, operation: &'static str, e: object_store::Error) -> StorageError {
        let name = name.to_owned();
        let message = error_chain(&e);
        if message.contains("NoSuchBucket") {
            return StorageError::BucketMissing { name, bucket: self.client.bucket.clone() };
        }
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound { name },
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                StorageError::Unauthorized { name, message }
            }
            // Listing wraps every failure as a generic one: told by the status and S3's code.
            _ if is_refused_access(&message) => StorageError::Unauthorized { name, message },
            _ if is_throttling(&message) => StorageError::Throttled { name, message },
            _ => StorageError::Io { path: self.url(&name), name, operation, kind: io::ErrorKind::Other, message },
        }
    }
}

/// The error and its sources, one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// Whether a failed request's message is S3 refusing the credentials or their permission.
fn is_refused_access(message: &str) -> bool {
    ["403 Forbidden", "401 Unauthorized", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"]
        .iter()
        .any(|sign| message.contains(sign))
}

/// Whether a failed request's message is S3 throttling: `SlowDown` (503) or 429.
fn is_throttling(message: &str) -> bool {
    message.contains("SlowDown") || message.contains("503 Service Unavailable") || message.contains("429 Too Many")
}

impl Storage for S3 {
    fn put_with(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        validate_name(name)?;
        let mut upload = Upload { s3: self, name, part: Vec::new(), multipart: None, failed: None };
        if let Err(e) = write(&mut upload) {
            let failed = upload.failed.take();
            upload.abort();
            return Err(failed.unwrap_or_else(|| StorageError::from_io(name, self.url(name), "write", &e)));
        }
        upload.finish()
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, StorageError> {
        validate_name(name)?;
        let (store, path) = (Arc::clone(&self.client.store), Path::from(self.key(name)));
        let meta = self.run(name, "open", async move { store.head(&path).await })?;
        Ok(Box::new(Download {
            s3: self,
            name: name.to_owned(),
            e_tag: meta.e_tag,
            size: meta.size,
            at: 0,
            chunk: bytes::Bytes::new(),
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_prefix(prefix)?;
        let (store, dir) = (Arc::clone(&self.client.store), self.key_path(prefix));
        let keys = self.run(prefix, "list", async move {
            let mut listing = store.list(dir.as_ref());
            let mut keys = Vec::new();
            while let Some(meta) = listing.next().await {
                keys.push(meta?.location.to_string());
            }
            Ok(keys)
        })?;
        let full = self.key(prefix);
        let mut names: Vec<String> = keys
            .into_iter()
            .filter(|key| key.starts_with(&full))
            .map(|key| key[self.client.root.len()..].to_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        let (store, path) = (Arc::clone(&self.client.store), Path::from(self.key(name)));
        self.run(name, "delete", async move {
            // S3 answers a delete of a missing object with success; the contract says NotFound.
            store.head(&path).await?;
            store.delete(&path).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_told_by_the_servers_answer() {
        let table = [
            ("Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>", true),
            ("Error after 3 retries: 429 Too Many Requests", true),
            ("Server returned non-2xx status code: 500 Internal Server Error", false),
            ("error sending request: connection refused", false),
        ];
        for (message, throttled) in table {
            assert_eq!(is_throttling(message), throttled, "{message}");
        }
    }

    #[test]
    fn refused_access_is_told_by_the_status_or_the_code() {
        let table = [
            ("Server returned non-2xx status code: 403 Forbidden: <Code>InvalidAccessKeyId</Code>", true),
            ("<Error><Code>SignatureDoesNotMatch</Code></Error>", true),
            ("Server returned non-2xx status code: 401 Unauthorized", true),
            ("Server returned non-2xx status code: 404 Not Found: <Code>NoSuchBucket</Code>", false),
        ];
        for (message, refused) in table {
            assert_eq!(is_refused_access(message), refused, "{message}");
        }
    }

    #[test]
    fn a_bad_prefix_or_part_size_is_refused_before_any_request() {
        for config in
            [S3Config::new("b").prefix("../up"), S3Config::new("b").prefix("a//b"), S3Config::new("b").part_bytes(1024)]
        {
            let err = S3::connect(config.clone()).unwrap_err();
            assert!(matches!(err, StorageError::InvalidName { .. }), "{config:?}: {err}");
        }
    }

    #[test]
    fn credentials_are_not_printed() {
        let config = S3Config::new("b").credentials("AKIDEXAMPLE", "wJalrXUtnFEMI");
        let printed = format!("{config:?}");
        assert!(!printed.contains("AKIDEXAMPLE") && !printed.contains("wJalrXUtnFEMI"), "{printed}");
    }
}
