//! [`S3ArtifactStore`]: objects in an S3-compatible bucket (AWS, MinIO, moto, …).

use crate::objects::{Objects, object_path};
use crate::{ArtifactStore, ObjectInfo, StoreError};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::{RetryConfig, WriteMultipart};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Files larger than this are uploaded in parts of this size (S3 parts must be ≥ 5 MiB).
pub const MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once by [`ArtifactStore::put_file`].
const MULTIPART_CONCURRENCY: usize = 4;

/// Where and how to reach an S3-compatible bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name (it must exist; this store does not create buckets).
    pub bucket: String,
    /// Endpoint URL for S3-compatible servers (`http://127.0.0.1:9000`); `None` = AWS.
    pub endpoint: Option<String>,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Allow a plain `http://` endpoint.
    pub allow_http: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never printed).
    pub secret_access_key: String,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Query parameters [`S3Config::from_url`] understands.
const URL_PARAMS: &str = "endpoint, region, allow_http, access_key_id, secret_access_key, session_token";

impl S3Config {
    /// Parses `s3://BUCKET?endpoint=URL&region=REGION&allow_http=true&access_key_id=…&secret_access_key=…`.
    /// `region` defaults to `us-east-1`; credentials missing from the URL are read from
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let shown = crate::redact_url(url);
        let parsed = url::Url::parse(url).map_err(|e| {
            StoreError::Config(format!(
                "s3 artifact store: cannot parse URL {shown}: {e}; expected s3://BUCKET?endpoint=…&region=…"
            ))
        })?;
        if parsed.scheme() != "s3" {
            return Err(StoreError::Config(format!("s3 artifact store: URL {shown} does not start with s3://")));
        }
        let bucket = parsed.host_str().unwrap_or("").to_string();
        if bucket.is_empty() {
            return Err(StoreError::Config(format!(
                "s3 artifact store: URL {shown} names no bucket; use s3://BUCKET?…"
            )));
        }
        if !matches!(parsed.path(), "" | "/") {
            return Err(StoreError::Config(format!(
                "s3 artifact store: URL {shown} has a path '{}'; key prefixes inside a bucket are not supported, \
                 give Ferry a bucket of its own (s3://BUCKET)",
                parsed.path()
            )));
        }
        let mut config = S3Config {
            bucket,
            endpoint: None,
            region: "us-east-1".into(),
            allow_http: false,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: None,
        };
        let (mut key_id, mut secret) = (None, None);
        for (name, value) in parsed.query_pairs() {
            let value = value.into_owned();
            match name.as_ref() {
                "endpoint" => config.endpoint = Some(value),
                "region" => config.region = value,
                "allow_http" => {
                    config.allow_http = match value.as_str() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        other => {
                            return Err(StoreError::Config(format!(
                                "s3 artifact store: allow_http={other} in {shown} is not a boolean; use true or false"
                            )));
                        }
                    }
                }
                "access_key_id" => key_id = Some(value),
                "secret_access_key" => secret = Some(value),
                "session_token" => config.session_token = Some(value),
                other => {
                    return Err(StoreError::Config(format!(
                        "s3 artifact store: unknown URL parameter '{other}' in {shown}; known parameters: {URL_PARAMS}"
                    )));
                }
            }
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (key_id, secret) {
            (Some(k), Some(s)) => (config.access_key_id, config.secret_access_key) = (k, s),
            (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(k), Some(s)) => {
                    (config.access_key_id, config.secret_access_key) = (k, s);
                    if config.session_token.is_none() {
                        config.session_token = env("AWS_SESSION_TOKEN");
                    }
                }
                _ => {
                    return Err(StoreError::Config(format!(
                        "s3 artifact store for bucket '{}': no credentials; add access_key_id=…&secret_access_key=… \
                         to the URL or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                        config.bucket
                    )));
                }
            },
            _ => {
                return Err(StoreError::Config(format!(
                    "s3 artifact store: URL {shown} gives only one of access_key_id and secret_access_key; give both"
                )));
            }
        }
        if let Some(endpoint) = &config.endpoint {
            let ep = url::Url::parse(endpoint).map_err(|e| {
                StoreError::Config(format!(
                    "s3 artifact store: endpoint '{endpoint}' is not a URL: {e}; e.g. http://127.0.0.1:9000"
                ))
            })?;
            if ep.scheme() == "http" && !config.allow_http {
                return Err(StoreError::Config(format!(
                    "s3 artifact store: endpoint {endpoint} is plain http; add allow_http=true to the URL to allow it"
                )));
            }
        }
        Ok(config)
    }
}

/// An [`ArtifactStore`] in an S3-compatible bucket (path-style requests when an endpoint is
/// given). `put` is one PUT; `put_file` streams large files as a multipart upload that
/// becomes visible only when complete. ETags are the server's.
pub struct S3ArtifactStore {
    config: S3Config,
    objects: Objects,
}

impl fmt::Debug for S3ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3ArtifactStore").field("config", &self.config).finish()
    }
}

impl S3ArtifactStore {
    /// A store for an existing bucket (no request is made until the first operation).
    pub fn new(config: S3Config) -> Result<Self, StoreError> {
        let retry = RetryConfig { max_retries: 5, retry_timeout: Duration::from_secs(60), ..RetryConfig::default() };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(|e| {
            StoreError::Config(format!("s3 artifact store for bucket '{}': invalid configuration: {e}", config.bucket))
        })?;
        let at = config.endpoint.clone().unwrap_or_else(|| format!("AWS region {}", config.region));
        let objects = Objects {
            store: Arc::new(store),
            desc: format!("s3 bucket '{}' at {at}", config.bucket),
            hint: "check that the endpoint is reachable, the bucket exists and the credentials may use it",
        };
        Ok(S3ArtifactStore { config, objects })
    }

    /// [`S3Config::from_url`] then [`S3ArtifactStore::new`].
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Self::new(S3Config::from_url(url)?)
    }

    /// The configuration (secrets are hidden from its `Debug`).
    pub fn config(&self) -> &S3Config {
        &self.config
    }
}

#[async_trait::async_trait]
impl ArtifactStore for S3ArtifactStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.objects.put(key, bytes).await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StoreError> {
        let location = object_path(key)?;
        let desc = &self.objects.desc;
        let io_err = |what: &str, e: std::io::Error| {
            StoreError::Object(format!("{desc}: uploading '{key}' from {}: {what}: {e}", path.display()))
        };
        let mut file = tokio::fs::File::open(path).await.map_err(|e| io_err("cannot open the file", e))?;
        let len = file.metadata().await.map_err(|e| io_err("cannot read its size", e))?.len();
        if len <= MULTIPART_PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).await.map_err(|e| io_err("read failed", e))?;
            return self.objects.put(key, Bytes::from(buf)).await;
        }
        let upload = self
            .objects
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| self.objects.err("start upload of", key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(io_err("read failed", e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(self.objects.err("upload part of", key, e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(|e| self.objects.err("complete upload of", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.objects.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.objects.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.objects.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.objects.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "s3://ferry?endpoint=http://127.0.0.1:9000&region=eu-west-1&allow_http=true\
                        &access_key_id=AK&secret_access_key=SECRET";

    #[test]
    fn parses_bucket_endpoint_region_and_credentials() {
        let c = S3Config::from_url(FULL).unwrap();
        assert_eq!(c.bucket, "ferry");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region, "eu-west-1");
        assert!(c.allow_http);
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("AK", "SECRET"));
        assert!(!format!("{c:?}").contains("SECRET"), "Debug leaks the secret");
    }

    #[test]
    fn rejects_unknown_parameters_naming_the_known_ones() {
        let err = S3Config::from_url(&format!("{FULL}&colour=blue")).unwrap_err().to_string();
        assert!(err.contains("colour") && err.contains("allow_http"), "{err}");
        assert!(!err.contains("SECRET"), "error leaks the secret: {err}");
    }

    #[test]
    fn plain_http_endpoint_needs_allow_http() {
        let url = "s3://b?endpoint=http://127.0.0.1:9000&access_key_id=a&secret_access_key=b";
        let err = S3Config::from_url(url).unwrap_err().to_string();
        assert!(err.contains("allow_http=true"), "{err}");
    }

    #[test]
    fn half_given_credentials_are_refused() {
        let url = "s3://b?endpoint=http://h:1&allow_http=true&access_key_id=a";
        let err = S3Config::from_url(url).unwrap_err().to_string();
        assert!(err.contains("both"), "{err}");
    }

    #[test]
    fn a_key_prefix_path_is_refused() {
        let err = S3Config::from_url("s3://b/some/prefix?access_key_id=a&secret_access_key=b").unwrap_err().to_string();
        assert!(err.contains("bucket of its own"), "{err}");
    }
}
