//! The one serialization seam: every record, block and message that crosses a process goes
//! through [`encode`] and [`decode`].
//!
//! The format is postcard: compact (variable-length integers), a documented and stable wire
//! format (checkpoints outlive the process that wrote them), and errors rather than panics on
//! values it cannot encode. The measurements behind the choice are in BENCHMARKS.md.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value's `Serialize` implementation failed, or the value has no encoding.
    #[error("cannot encode {type_name}: {message}")]
    Encode {
        /// The type that was being encoded.
        type_name: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode {type_name} from {len} bytes: {message}")]
    Decode {
        /// The type that was expected.
        type_name: &'static str,
        /// The number of bytes offered.
        len: usize,
        /// The decoder's message.
        message: String,
    },
}

/// Identifies this seam's format (postcard 1.x) in stored files, such as the checkpoint
/// header: a reader refuses files written with another id. It changes when the format does.
pub const CODEC_ID: u16 = 1;

/// Encodes `value` into a new byte vector.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value)
        .map_err(|e| CodecError::Encode { type_name: std::any::type_name::<T>(), message: e.to_string() })
}

/// Encodes `value` at the end of `out`, reusing its capacity: the form for writing many
/// records through one buffer. On error, `out` is left as it was.
///
/// ```
/// let mut out = Vec::new();
/// dstream::codec::encode_into(&("a", 1u64), &mut out)?;
/// dstream::codec::encode_into(&("b", 2u64), &mut out)?;
/// assert_eq!(out, [1, b'a', 1, 1, b'b', 2]);
/// # Ok::<(), dstream::codec::CodecError>(())
/// ```
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let len = out.len();
    postcard::serialize_with_flavor(value, AppendFlavor(out)).map_err(|e| {
        out.truncate(len);
        CodecError::Encode { type_name: std::any::type_name::<T>(), message: e.to_string() }
    })
}

/// A postcard output that appends to a vector, a slice at a time.
struct AppendFlavor<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendFlavor<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes a `T` from `bytes`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let err = |message: String| CodecError::Decode { type_name: std::any::type_name::<T>(), len: bytes.len(), message };
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| err(e.to_string()))?;
    if !rest.is_empty() {
        return Err(err(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_typed_errors() {
        let v: Vec<(String, u64)> = vec![("a".into(), 1), ("bb".into(), 300)];
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<Vec<(String, u64)>>(&bytes).unwrap(), v);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode::<Vec<(String, u64)>>(&longer), Err(CodecError::Decode { .. })));
        assert!(matches!(decode::<Vec<(String, u64)>>(&bytes[..bytes.len() - 1]), Err(CodecError::Decode { .. })));
    }

    /// A value whose encoding fails after its first field was written.
    struct FailsHalfway;

    impl Serialize for FailsHalfway {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeTuple};
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&7u8)?;
            let _ = t;
            Err(S::Error::custom("no encoding"))
        }
    }

    #[test]
    fn encode_into_appends_and_leaves_out_unchanged_on_error() {
        let mut out = vec![9];
        encode_into(&(1u8, 2u8), &mut out).unwrap();
        assert_eq!(out, [9, 1, 2]);
        assert!(matches!(encode_into(&FailsHalfway, &mut out), Err(CodecError::Encode { .. })));
        assert_eq!(out, [9, 1, 2]);
    }
}
