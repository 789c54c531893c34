//! The transfers of an [`S3`] store: a put's parts and upload ([`Upload`]), a snapshot read's
//! ranges ([`Download`]).

use std::io::{self, Read, Write};
use std::sync::Arc;

use dstream::StorageError;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, MultipartUpload, ObjectStore, PutPayload};

use super::{READ_BYTES_MAX, S3};

/// A put in progress: the part being filled, and the multipart upload once the object is
/// larger than a part.
pub(super) struct Upload<'a> {
    pub(super) s3: &'a S3,
    pub(super) name: &'a str,
    pub(super) part: Vec<u8>,
    pub(super) multipart: Option<Box<dyn MultipartUpload>>,
    /// The store's error that failed a write, kept to return it typed.
    pub(super) failed: Option<StorageError>,
}

impl Upload<'_> {
    /// Uploads the full part as the next part of the multipart upload (started first).
    fn flush_part(&mut self) -> Result<(), StorageError> {
        let payload = PutPayload::from(std::mem::take(&mut self.part));
        let mut upload = match self.multipart.take() {
            Some(upload) => upload,
            None => {
                let (store, path) = (Arc::clone(&self.s3.client.store), Path::from(self.s3.key(self.name)));
                self.s3.run(self.name, "put", async move { store.put_multipart(&path).await })?
            }
        };
        let (upload, result) = self.s3.run_returning(self.name, "put", async move {
            let result = upload.put_part(payload).await;
            (upload, result)
        })?;
        self.multipart = Some(upload);
        result.map_err(|e| self.s3.error(self.name, "put", e))
    }

    /// Makes the object visible: one put, or the last part and the upload's completion.
    pub(super) fn finish(mut self) -> Result<(), StorageError> {
        let Some(mut upload) = self.multipart.take() else {
            let (store, path) = (Arc::clone(&self.s3.client.store), Path::from(self.s3.key(self.name)));
            let payload = PutPayload::from(std::mem::take(&mut self.part));
            return self.s3.run(self.name, "put", async move { store.put(&path, payload).await }).map(drop);
        };
        let payload = PutPayload::from(std::mem::take(&mut self.part));
        let s3 = self.s3;
        let last = payload.content_length() > 0;
        let done = s3.run_returning(self.name, "put", async move {
            if last {
                if let Err(e) = upload.put_part(payload).await {
                    let _ = upload.abort().await;
                    return Err(e);
                }
            }
            match upload.complete().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = upload.abort().await;
                    Err(e)
                }
            }
        })?;
        done.map_err(|e| s3.error(self.name, "put", e))
    }

    /// Abandons the upload: nothing of it becomes visible.
    pub(super) fn abort(mut self) {
        if let Some(mut upload) = self.multipart.take() {
            let _ = self.s3.run_returning(self.name, "put", async move { upload.abort().await });
        }
    }
}

impl Write for Upload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.s3.client.part_bytes - self.part.len();
        let n = buf.len().min(room);
        self.part.extend_from_slice(&buf[..n]);
        if self.part.len() == self.s3.client.part_bytes {
            if let Err(e) = self.flush_part() {
                let message = e.to_string();
                self.failed = Some(e);
                return Err(io::Error::other(message));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A read of one version of an object, range by range.
pub(super) struct Download<'a> {
    pub(super) s3: &'a S3,
    pub(super) name: String,
    pub(super) e_tag: Option<String>,
    pub(super) size: u64,
    pub(super) at: u64,
    pub(super) chunk: bytes::Bytes,
}

impl Read for Download<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.chunk.is_empty() {
            if self.at >= self.size {
                return Ok(0);
            }
            let end = (self.at + READ_BYTES_MAX).min(self.size);
            let (store, path) = (Arc::clone(&self.s3.client.store), Path::from(self.s3.key(&self.name)));
            let options = GetOptions {
                if_match: self.e_tag.clone(),
                range: Some(GetRange::Bounded(self.at..end)),
                ..GetOptions::default()
            };
            let fetched = self
                .s3
                .run_returning(&self.name, "read", async move { store.get_opts(&path, options).await?.bytes().await })
                .map_err(|e| io::Error::other(e.to_string()))?;
            self.chunk = match fetched {
                Ok(bytes) if bytes.len() as u64 == end - self.at => bytes,
                Ok(bytes) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} bytes of {}..{end} read", bytes.len(), self.at),
                    ))
                }
                // The `ETag` the read is pinned to no longer matches.
                Err(object_store::Error::Precondition { .. }) => {
                    return Err(io::Error::other("the object was replaced while it was read"))
                }
                Err(e) => return Err(io::Error::other(self.s3.error(&self.name, "read", e).to_string())),
            };
            self.at = end;
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}
