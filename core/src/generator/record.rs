//! [`Record`], one line of the benchmark input stamped with its emission time, and its compact
//! encoding (the line as one byte string, checked to be ASCII when decoded).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use super::{Line, RECORD_BYTES};
use crate::time::Time;

/// One input record: a line of [`RECORD_BYTES`] ASCII bytes and the time it was emitted.
///
/// The line is stored inline, so a record is plain data (112 bytes, `Copy`): a partition of
/// records is one contiguous allocation, cloning a record copies it without touching a shared
/// counter, and it crosses a process as its 100 bytes plus the time. `emitted` is the time the
/// generator's schedule gave the record (on the streaming context's clock), so an end-to-end
/// latency is `output time - emitted`, including any lag of the generator itself.
///
/// # Examples
///
/// ```
/// use dstream::generator::RecordPool;
/// use dstream::Time;
/// let record = RecordPool::new(42, 1).record(0, Time::from_millis(5));
/// assert_eq!(record.as_bytes().len(), 100);
/// assert_eq!(record.line().trim_end().split(' ').count(), record.words().count());
/// assert_eq!(record.emitted, Time::from_millis(5));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    /// When the record was emitted, on the streaming context's clock.
    pub emitted: Time,
    /// ASCII, so always valid UTF-8 (checked when a record is decoded).
    pub(super) line: Line,
}

impl Record {
    /// The line as text, with its padding.
    pub fn line(&self) -> &str {
        // Lines are ASCII by construction and by the check in `deserialize`, so this never
        // falls back to the empty string.
        std::str::from_utf8(&self.line).unwrap_or_default()
    }

    /// The line's bytes, with its padding.
    pub fn as_bytes(&self) -> &Line {
        &self.line
    }

    /// The words of the line, in order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.line().split_ascii_whitespace()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record").field("emitted", &self.emitted).field("line", &self.line().trim_end()).finish()
    }
}

/// Serializes the line as one byte string (serde derives only arrays of up to 32 elements).
struct LineBytes<'a>(&'a Line);

impl Serialize for LineBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.emitted)?;
        t.serialize_element(&LineBytes(&self.line))?;
        t.end()
    }
}

/// Reads a line back from bytes (or a sequence of numbers, for formats without bytes),
/// refusing anything but [`RECORD_BYTES`] ASCII bytes.
struct LineBuf(Line);

impl<'de> Deserialize<'de> for LineBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LineBuf, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LineBuf;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{RECORD_BYTES} ASCII bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<LineBuf, E> {
                let line: Line = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                if !line.is_ascii() {
                    return Err(E::invalid_value(de::Unexpected::Bytes(v), &self));
                }
                Ok(LineBuf(line))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LineBuf, A::Error> {
                let mut bytes = Vec::with_capacity(RECORD_BYTES);
                while let Some(b) = seq.next_element::<u8>()? {
                    if bytes.len() == RECORD_BYTES {
                        return Err(de::Error::invalid_length(RECORD_BYTES + 1, &self));
                    }
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        let (emitted, LineBuf(line)) = <(Time, LineBuf)>::deserialize(d)?;
        Ok(Record { emitted, line })
    }
}
