//! [`S3Config`]: the bucket, the credentials and the bounds of an [`S3`](super::S3) store.

use std::time::Duration;

use super::PART_BYTES_DEFAULT;

/// Where an [`S3`](super::S3) store keeps its objects, the credentials, and its bounds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use dstream_storage::S3Config;
///
/// let config = S3Config::new("checkpoints")
///     .endpoint("http://127.0.0.1:9000") // a local S3 server; AWS when not set
///     .credentials("access-key", "secret-key")
///     .prefix("wordcount")
///     .retries_max(5)
///     .request_timeout(Duration::from_secs(10));
/// assert_eq!(config.bucket(), "checkpoints");
/// ```
#[derive(Clone)]
pub struct S3Config {
    pub(super) bucket: String,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) credentials: Option<(String, String, Option<String>)>,
    pub(super) prefix: String,
    pub(super) retries_max: usize,
    pub(super) retry_timeout: Duration,
    pub(super) backoff_initial: Duration,
    pub(super) request_timeout: Duration,
    pub(super) part_bytes: usize,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are never printed.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("retries_max", &self.retries_max)
            .field("retry_timeout", &self.retry_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("part_bytes", &self.part_bytes)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The bucket `bucket` on AWS, with what the `AWS_*` environment variables say
    /// (credentials, `AWS_REGION` or `AWS_DEFAULT_REGION`, else `us-east-1`; `AWS_ENDPOINT`)
    /// where this configuration does not; 10 retries within 3 minutes, requests of at most
    /// 30 s, parts of 8 MiB.
    pub fn new(bucket: impl Into<String>) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            credentials: None,
            prefix: String::new(),
            retries_max: 10,
            retry_timeout: Duration::from_secs(180),
            backoff_initial: Duration::from_millis(100),
            request_timeout: Duration::from_secs(30),
            part_bytes: PART_BYTES_DEFAULT,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Another S3 server (MinIO, Ceph, a local test server): its URL, `http://` allowed.
    /// Requests then name the bucket in the path, not in the host.
    pub fn endpoint(mut self, url: impl Into<String>) -> S3Config {
        self.endpoint = Some(url.into());
        self
    }

    /// The bucket's region (instead of the environment's).
    pub fn region(mut self, region: impl Into<String>) -> S3Config {
        self.region = Some(region.into());
        self
    }

    /// Static credentials: an access key and its secret (instead of the environment's).
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> S3Config {
        self.credentials = Some((access_key_id.into(), secret_access_key.into(), None));
        self
    }

    /// Temporary credentials: an access key, its secret and the session token.
    pub fn session_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        token: impl Into<String>,
    ) -> S3Config {
        self.credentials = Some((access_key_id.into(), secret_access_key.into(), Some(token.into())));
        self
    }

    /// Keeps the objects under `prefix/` in the bucket (several programs can share a bucket).
    /// The prefix follows the object-name rules of [`dstream::storage`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> S3Config {
        self.prefix = prefix.into();
        self
    }

    /// How many times a failed request is retried at most (0: never).
    pub fn retries_max(mut self, retries: usize) -> S3Config {
        self.retries_max = retries;
        self
    }

    /// How long after a request's first attempt no retry starts.
    pub fn retry_timeout(mut self, timeout: Duration) -> S3Config {
        self.retry_timeout = timeout;
        self
    }

    /// The first retry's backoff (doubled for each next one, up to 15 s).
    pub fn backoff_initial(mut self, backoff: Duration) -> S3Config {
        self.backoff_initial = backoff;
        self
    }

    /// The most one request may take.
    pub fn request_timeout(mut self, timeout: Duration) -> S3Config {
        self.request_timeout = timeout;
        self
    }

    /// The size of a multipart upload's parts, at least [`PART_BYTES_MIN`](super::PART_BYTES_MIN): an object up to
    /// this size is written with one request.
    pub fn part_bytes(mut self, bytes: usize) -> S3Config {
        self.part_bytes = bytes;
        self
    }
}
