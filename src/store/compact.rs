//! The record's canonical JSON, written faster: the same bytes `serde_json::to_writer`
//! writes, for the shapes the record is made of.
//!
//! A sealed save encodes the record and MACs the bytes; serde_json scans every byte of every
//! string for characters to escape, one byte at a time, and the record is mostly hex
//! (digests, salts, nonces, ciphertext): that scan was most of the encoding's cost. Here a
//! string is checked in one pass the compiler vectorizes, copied as it is when nothing in it
//! needs escaping (always, for hex), and handed to serde_json otherwise, so every escape is
//! serde_json's own. Integers are written as serde_json writes them (decimal, no sign for
//! unsigned). Anything else serde_json would write differently or that the record never holds
//! (floats, 128-bit integers, bytes, characters, maps with keys that are not strings) is
//! [`Unsupported`]: the caller then encodes the whole value with serde_json. The output is
//! held to serde_json's byte for byte by differential tests (every fuzz seed, records of every
//! flow, arbitrary strings).

use serde::ser::{self, Serialize};

/// A shape this writer leaves to serde_json (see the module documentation).
#[derive(Debug)]
pub(crate) struct Unsupported;

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a shape the compact writer leaves to serde_json")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: core::fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// `serialize_*` methods that write an integer as serde_json does.
macro_rules! integers {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<(), Unsupported> {
            self.integer(v);
            Ok(())
        }
    )*};
}

/// `serialize_*` methods for what is left to serde_json.
macro_rules! unsupported {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, _: $t) -> Result<(), Unsupported> {
            Err(Unsupported)
        }
    )*};
}

/// Appends `value` to `out` exactly as `serde_json::to_writer` would, or fails with
/// [`Unsupported`] (what was appended is then meaningless: truncate it).
pub(crate) fn write<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), Unsupported> {
    value.serialize(&mut Writer { out })
}

/// Appends `value` as `serde_json::to_writer` would, through [`write`] when it can.
///
/// # Errors
/// serde_json's, when neither can encode it.
pub(crate) fn write_or_serde_json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> serde_json::Result<()> {
    let start = out.len();
    if write(out, value).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    serde_json::to_writer(&mut *out, value)
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    fn string(&mut self, s: &str) {
        self.string_then(s, b"");
    }

    /// `s` as a JSON string, then `after` (a key's `:`), with one check of the room left.
    fn string_then(&mut self, s: &str, after: &[u8]) {
        if !needs_escape(s.as_bytes()) {
            self.out.reserve(s.len() + 2 + after.len());
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            self.out.push(b'"');
        } else {
            // serde_json's own escapes; writing to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.out, s);
        }
        self.out.extend_from_slice(after);
    }

    /// `{"variant":`, how serde_json opens an externally tagged variant.
    fn variant(&mut self, variant: &str) {
        self.out.push(b'{');
        self.string_then(variant, b":");
    }

    /// Opens an array or object (`open`), closed by `close` when the compound ends.
    fn open<'w>(&'w mut self, open: u8, close: &'static [u8]) -> Compound<'w, 'a> {
        self.out.push(open);
        Compound {
            w: self,
            first: true,
            close,
        }
    }

    fn integer(&mut self, v: impl itoa::Integer) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
}

/// Whether serde_json escapes anything in `s`: `"`, `\` or a control character below 0x20.
/// Eight bytes at a time, in a word (the exact presence tests of "Bit Twiddling Hacks": a
/// byte below `n` for `n` ≤ 128, a zero byte after an exclusive or), with no early exit.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let is = |x: u64, b: u8| below(x ^ (ONES * u64::from(b)), 1);
    let flags = |w: [u8; 8]| {
        let x = u64::from_le_bytes(w);
        below(x, 0x20) | is(x, b'"') | is(x, b'\\')
    };
    let mut found = 0u64;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        found |= flags(w);
    }
    // The last 1 to 7 bytes: the last eight again (overlapping the words checked), or, for a
    // string shorter than a word (most keys), byte by byte.
    match s.len().checked_sub(8) {
        Some(last) if !words.remainder().is_empty() => {
            let mut w = [0u8; 8];
            w.copy_from_slice(&s[last..]);
            found |= flags(w);
        }
        Some(_) => {}
        None => {
            return s.iter().fold(false, |any, &b| {
                any | (b < 0x20) | (b == b'"') | (b == b'\\')
            });
        }
    }
    found != 0
}

/// A JSON object or array being written: whether a comma comes before the next item.
struct Compound<'w, 'a> {
    w: &'w mut Writer<'a>,
    first: bool,
    /// Closing bytes: `]`, `}`, or `]}` / `}}` for a variant.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
    }
    fn key(&mut self, key: &str) {
        self.comma();
        self.w.string_then(key, b":");
    }
    fn end(self) {
        self.w.out.extend_from_slice(self.close);
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64
    );
    unsupported!(serialize_f32: f32, serialize_f64: f64, serialize_char: char, serialize_bytes: &[u8]);
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.string(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.variant(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'w, 'a>, Unsupported> {
        Ok(self.open(b'[', b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'w, 'a>, Unsupported> {
        self.variant(variant);
        Ok(self.open(b'[', b"]}"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'w, 'a>, Unsupported> {
        Ok(self.open(b'{', b"}"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>, Unsupported> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'w, 'a>, Unsupported> {
        self.variant(variant);
        Ok(self.open(b'{', b"}}"))
    }
}

/// The array-like compounds: elements separated by commas.
macro_rules! array_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Unsupported;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
                self.comma();
                value.serialize(&mut *self.w)
            }
            fn end(self) -> Result<(), Unsupported> {
                Compound::end(self);
                Ok(())
            }
        }
    )*};
}

array_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.comma();
        key.serialize(KeyWriter { w: self.w })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.key(key);
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self);
        Ok(())
    }
}

/// A map key: a string, written as one; anything else serde_json turns into a string its own
/// way, so it is left to serde_json.
struct KeyWriter<'w, 'a> {
    w: &'w mut Writer<'a>,
}

impl ser::Serializer for KeyWriter<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = ser::Impossible<(), Unsupported>;
    type SerializeTuple = ser::Impossible<(), Unsupported>;
    type SerializeTupleStruct = ser::Impossible<(), Unsupported>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = ser::Impossible<(), Unsupported>;
    type SerializeStruct = ser::Impossible<(), Unsupported>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.w.string(v);
        Ok(())
    }
    unsupported!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_char: char,
        serialize_bytes: &[u8]
    );
    fn serialize_none(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.w.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same<T: Serialize + ?Sized>(value: &T) {
        let mut out = Vec::new();
        write(&mut out, value).expect("a supported shape");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(value).unwrap()
        );
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    enum E {
        Unit,
        New(u64),
        Tuple(u8, i64),
        Struct { a: Option<String>, b: Vec<u16> },
    }

    #[derive(serde::Serialize)]
    struct S<'a> {
        t: bool,
        f: bool,
        min: i64,
        max: u64,
        s: &'a str,
        none: Option<u8>,
        some: Option<Option<i32>>,
        list: Vec<E>,
        empty: Vec<u8>,
        unit: (),
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        map: std::collections::BTreeMap<String, u32>,
    }

    #[test]
    fn every_shape_of_the_record_is_written_as_serde_json_writes_it() {
        let map = [("k\"ey".to_owned(), 1), ("é".to_owned(), 2)]
            .into_iter()
            .collect();
        same(&S {
            t: true,
            f: false,
            min: i64::MIN,
            max: u64::MAX,
            s: "plain hex 0123456789abcdef",
            none: None,
            some: Some(None),
            list: vec![
                E::Unit,
                E::New(7),
                E::Tuple(0, -1),
                E::Struct {
                    a: Some("a\u{1}b\n\t\\\"\u{7f}é".to_owned()),
                    b: vec![],
                },
            ],
            empty: vec![],
            unit: (),
            skipped: None,
            map,
        });
        same(&E::Struct {
            a: None,
            b: vec![1, 2],
        });
        same(&Vec::<E>::new());
        same("");
    }

    #[test]
    fn what_serde_json_writes_its_own_way_is_left_to_it() {
        let mut out = Vec::new();
        assert!(write(&mut out, &1.5f64).is_err());
        assert!(write(&mut out, &'x').is_err());
        assert!(write(&mut out, &1u128).is_err());
        let by_number: std::collections::BTreeMap<u8, u8> = [(1, 2)].into_iter().collect();
        assert!(write(&mut out, &by_number).is_err());
        // The fallback writes serde_json's bytes.
        for v in [serde_json::json!(1.5), serde_json::json!({"1": [0.25]})] {
            let mut out = b"prefix".to_vec();
            write_or_serde_json(&mut out, &v).unwrap();
            assert_eq!(
                out,
                [&b"prefix"[..], &serde_json::to_vec(&v).unwrap()].concat()
            );
        }
    }

    #[test]
    fn the_word_at_a_time_check_finds_every_byte_serde_json_escapes() {
        for b in 0..=u8::MAX {
            let escaped = b < 0x20 || b == b'"' || b == b'\\';
            for len in 1..=17 {
                for at in 0..len {
                    for fill in [b'a', 0xff, 0x80, b'!'] {
                        let mut s = vec![fill; len];
                        s[at] = b;
                        assert_eq!(needs_escape(&s), escaped, "{b:#x} at {at} of {len}");
                    }
                }
            }
        }
        assert!(!needs_escape(b""));
    }

    proptest! {
        #[test]
        fn the_check_agrees_with_byte_by_byte(s in proptest::collection::vec(any::<u8>(), 0..64)) {
            let slow = s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(needs_escape(&s), slow);
        }

        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in any::<String>(), hex in "[0-9a-f]{0,80}") {
            same(s.as_str());
            same(hex.as_str());
            let bytes: Vec<char> = s.chars().collect();
            same(&bytes.iter().collect::<String>());
        }
    }
}
