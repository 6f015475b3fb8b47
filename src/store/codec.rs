//! The one way every store turns a [`TwoFactorRecord`] into stored text and back (feature
//! `serde`): the strict, versioned JSON format described under
//! [`TwoFactorRecord`]'s "Stored format".
//!
//! A custom [`UserStore`](super::UserStore) should use these two functions too, and map a
//! [`RecordCodecError`] from [`decode_record`] to its "corrupt row" error: never to `Ok(None)`,
//! which means "this user has no 2FA".
//!
//! ```
//! use twofactor::account::TwoFactorRecord;
//! use twofactor::store::codec::{decode_record, encode_record};
//!
//! let json = encode_record(&TwoFactorRecord::default())?;
//! let back = decode_record(&json)?;
//! assert_eq!(encode_record(&back)?, json); // canonical: the same bytes again
//! assert!(decode_record(r#"{"active":null}"#).is_err()); // not a record we wrote
//! # Ok::<(), twofactor::store::codec::RecordCodecError>(())
//! ```

use core::fmt;

use std::sync::Arc;

use crate::account::TwoFactorRecord;

/// A record could not be encoded, or stored text is not a record this crate wrote (bad JSON,
/// a missing or unknown field, a wrong type, an unknown format version). The cause is kept
/// as the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("not a valid stored 2FA record")]
pub struct RecordCodecError {
    #[source]
    source: serde_json::Error,
}

/// The record as stored text: canonical JSON of the current format.
///
/// # Errors
/// [`RecordCodecError`] if serialization fails (not expected: every field serializes).
pub fn encode_record(record: &TwoFactorRecord) -> Result<String, RecordCodecError> {
    let mut out = Vec::with_capacity(2048);
    super::compact::write_or_serde_json(&mut out, record)
        .map_err(|source| RecordCodecError { source })?;
    // JSON text of UTF-8 strings and ASCII: always UTF-8.
    String::from_utf8(out).map_err(|e| RecordCodecError {
        source: serde::ser::Error::custom(e),
    })
}

/// Decodes stored text strictly: the current format, or a row in the format written before
/// the version field (see the migration rule under [`TwoFactorRecord`]), and nothing else.
///
/// # Errors
/// [`RecordCodecError`] for anything that is not such a record; treat it as a corrupt row.
pub fn decode_record(json: &str) -> Result<TwoFactorRecord, RecordCodecError> {
    serde_json::from_str(json).map_err(|source| RecordCodecError { source })
}

/// A record together with its stored text: `text` is exactly what the store writes (or what
/// it read), and `record` is what that text decodes to. The two only come together through
/// [`encode`](Self::encode) and [`decode`](Self::decode), so they cannot disagree.
///
/// It is what the encoded fast path of a [`UserStore`](super::UserStore)
/// ([`load_encoded`](super::UserStore::load_encoded),
/// [`save_encoded`](super::UserStore::save_encoded)) carries: a
/// [`SealedStore`](crate::seal::SealedStore) encodes a record once, authenticates exactly the
/// bytes the store writes, and on load checks them again without encoding the record anew.
///
/// ```
/// use twofactor::account::TwoFactorRecord;
/// use twofactor::store::codec::{EncodedRecord, encode_record};
///
/// let encoded = EncodedRecord::encode(TwoFactorRecord::default())?;
/// assert_eq!(encoded.text(), encode_record(&TwoFactorRecord::default())?);
/// let read = EncodedRecord::decode(encoded.text().to_owned())?;
/// assert_eq!(read.text(), encoded.text());
/// assert!(EncodedRecord::decode("{}".to_owned()).is_err());
/// # Ok::<(), twofactor::store::codec::RecordCodecError>(())
/// ```
///
/// The text is shared, not copied, when the value is cloned (a memory store handing out its
/// row, a sealed store remembering what it wrote).
#[derive(Clone)]
pub struct EncodedRecord {
    record: TwoFactorRecord,
    text: Arc<str>,
}

impl EncodedRecord {
    /// `record` and its stored text ([`encode_record`]).
    ///
    /// # Errors
    /// As [`encode_record`].
    pub fn encode(record: TwoFactorRecord) -> Result<Self, RecordCodecError> {
        let text = encode_record(&record)?.into();
        Ok(EncodedRecord { record, text })
    }

    /// Stored `text` and the record it decodes to ([`decode_record`]); the text is kept as it
    /// is, byte for byte.
    ///
    /// # Errors
    /// As [`decode_record`]: treat it as a corrupt row.
    pub fn decode(text: String) -> Result<Self, RecordCodecError> {
        let record = decode_record(&text)?;
        Ok(EncodedRecord {
            record,
            text: text.into(),
        })
    }

    /// Pairs a record with text the caller has just produced with the canonical encoder (the
    /// sealed store, which writes the record tag into the encoding itself). Tests check that
    /// it equals [`encode_record`].
    pub(crate) fn from_canonical(record: TwoFactorRecord, text: Arc<str>) -> Self {
        debug_assert_eq!(encode_record(&record).ok().as_deref(), Some(&*text));
        EncodedRecord { record, text }
    }

    /// The record.
    #[must_use]
    pub fn record(&self) -> &TwoFactorRecord {
        &self.record
    }

    /// The stored text.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The record, without the text.
    #[must_use]
    pub fn into_record(self) -> TwoFactorRecord {
        self.record
    }

    /// The record and the text.
    #[must_use]
    pub fn into_parts(self) -> (TwoFactorRecord, String) {
        (self.record, String::from(&*self.text))
    }

    /// The record and the shared text (no copy).
    pub(crate) fn into_shared_parts(self) -> (TwoFactorRecord, Arc<str>) {
        (self.record, self.text)
    }
}

/// The record's `Debug` (no secrets, digests or codes) and the length of the text, never the
/// text itself.
impl fmt::Debug for EncodedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedRecord")
            .field("record", &self.record)
            .field("text_len", &self.text.len())
            .finish()
    }
}
