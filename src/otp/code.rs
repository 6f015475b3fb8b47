//! One-time codes: parsing what a person typed, and printing zero-padded.

use core::fmt;

use super::MAX_DIGITS;

/// Why typed input is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Nothing but white space.
    #[error("no code entered")]
    Empty,
    /// Something other than an ASCII digit or white space.
    #[error("codes contain digits only (found a non-digit at position {position})")]
    NotDigits {
        /// Position (in characters) of the first offending character.
        position: usize,
    },
    /// Asked to parse a code of a length no OTP configuration supports (above
    /// [`MAX_DIGITS`](crate::otp::MAX_DIGITS) or zero).
    #[error("codes have at most {max} digits, {0} requested", max = MAX_DIGITS)]
    UnsupportedDigits(u8),
    /// The wrong number of digits.
    #[error("expected {expected} digits, got {actual}")]
    WrongLength {
        /// Digits the configuration expects.
        expected: u8,
        /// Digits entered.
        actual: usize,
    },
}

/// A one-time code: its numeric value and its digit count.
///
/// `Display` prints it zero-padded (`004217`); `Debug` redacts it, because a code is a
/// credential for as long as it is valid.
#[derive(Clone, Copy)]
pub struct Code {
    value: u32,
    digits: u8,
}

impl Code {
    pub(crate) const fn new(value: u32, digits: u8) -> Self {
        Code { value, digits }
    }

    /// Parses what a person typed: surrounding and inner white space is ignored
    /// (`" 123 456 "`), anything else must be exactly `digits` ASCII digits.
    ///
    /// Allocates nothing.
    ///
    /// ```
    /// use twofactor::otp::{Code, CodeError};
    /// assert_eq!(Code::parse(" 012 345 ", 6)?.to_string(), "012345");
    /// assert_eq!(
    ///     Code::parse("12345", 6).unwrap_err(),
    ///     CodeError::WrongLength { expected: 6, actual: 5 }
    /// );
    /// # Ok::<(), CodeError>(())
    /// ```
    ///
    /// # Errors
    /// [`CodeError::Empty`], [`CodeError::NotDigits`] or [`CodeError::WrongLength`];
    /// [`CodeError::UnsupportedDigits`] if `digits` is 0 or above 8.
    pub fn parse(input: &str, digits: u8) -> Result<Self, CodeError> {
        if digits == 0 || digits > MAX_DIGITS {
            return Err(CodeError::UnsupportedDigits(digits));
        }
        let mut value: u32 = 0;
        let mut count: usize = 0;
        for (position, c) in input.chars().enumerate() {
            if c.is_whitespace() {
                continue;
            }
            let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) else {
                return Err(CodeError::NotDigits { position });
            };
            count += 1;
            if count <= usize::from(MAX_DIGITS) {
                value = value * 10 + d;
            }
        }
        if count == 0 {
            return Err(CodeError::Empty);
        }
        if count != usize::from(digits) {
            return Err(CodeError::WrongLength {
                expected: digits,
                actual: count,
            });
        }
        Ok(Code { value, digits })
    }

    /// The numeric value (`4217` for `004217`).
    #[must_use]
    pub const fn value(&self) -> u32 {
        self.value
    }

    /// The number of digits.
    #[must_use]
    pub const fn digits(&self) -> u8 {
        self.digits
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits)
        )
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Code")
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_lengths_no_configuration_supports() {
        assert_eq!(
            Code::parse("123456789", 9).unwrap_err(),
            CodeError::UnsupportedDigits(9)
        );
        assert_eq!(
            Code::parse("", 0).unwrap_err(),
            CodeError::UnsupportedDigits(0)
        );
        assert_eq!(Code::parse("12345678", 8).unwrap().to_string(), "12345678");
        assert_eq!(
            Code::parse(" 0 1 2 3 4 5\t", 6).unwrap().to_string(),
            "012345"
        );
        assert_eq!(
            Code::parse("12a456", 6).unwrap_err(),
            CodeError::NotDigits { position: 2 }
        );
        assert_eq!(
            Code::parse("١٢٣٤٥٦", 6).unwrap_err(),
            CodeError::NotDigits { position: 0 }
        );
    }
}
