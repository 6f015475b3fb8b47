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
    serde_json::to_string(record).map_err(|source| RecordCodecError { source })
}

/// Decodes stored text strictly: the current format, or a row in the format written before
/// the version field (see the migration rule under [`TwoFactorRecord`]), and nothing else.
///
/// # Errors
/// [`RecordCodecError`] for anything that is not such a record; treat it as a corrupt row.
pub fn decode_record(json: &str) -> Result<TwoFactorRecord, RecordCodecError> {
    serde_json::from_str(json).map_err(|source| RecordCodecError { source })
}
