//! `otpauth://` Key URIs: building, parsing what real services emit, exact typed rejections,
//! and a property test of build → parse round trips.
use std::error::Error as _;

use proptest::prelude::*;
use twofactor::otp::{Algorithm, Hotp, ParamsError, SecretError, UnknownAlgorithm};
use twofactor::provision::{OtpKind, Provisioning, UriError};
use twofactor::{KeyUri, Secret, Totp};

const KEY: &str = "JBSWY3DPEHPK3PXP";

fn parse(uri: &str) -> KeyUri {
    match KeyUri::parse(uri) {
        Ok(key) => key,
        Err(err) => panic!("{uri} should parse, got {err:?}"),
    }
}

fn totp(key: &KeyUri) -> Totp {
    match key.kind() {
        OtpKind::Totp(t) => *t,
        other => panic!("expected TOTP, got {other:?}"),
    }
}

fn secret_b32(key: &KeyUri) -> String {
    key.secret().to_base32().as_str().to_owned()
}

fn err(uri: &str) -> UriError {
    match KeyUri::parse(uri) {
        Ok(key) => panic!("{uri} should be rejected, parsed as {key:?}"),
        Err(err) => err,
    }
}

// ---------------------------------------------------------------------------------------------
// Building

#[test]
fn builds_the_google_example() {
    let secret = Secret::from_base32(KEY).unwrap();
    let key = KeyUri::new(
        OtpKind::default(),
        secret,
        Some("Example"),
        "alice@google.com",
    )
    .unwrap();
    assert_eq!(
        key.to_uri_string().as_str(),
        "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example"
    );
}

#[test]
fn builds_non_default_parameters_and_encodes_names() {
    let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let totp = Totp::builder()
        .algorithm(Algorithm::Sha512)
        .digits(8)
        .period(60)
        .build()
        .unwrap();
    let key = KeyUri::new(
        OtpKind::Totp(totp),
        secret,
        Some("Ünïcode & Co: \"Bank\""),
        "a+b:c@example.com",
    )
    .unwrap();
    assert_eq!(
        key.to_uri_string().as_str(),
        "otpauth://totp/%C3%9Cn%C3%AFcode%20%26%20Co%3A%20%22Bank%22:a%2Bb%3Ac@example.com\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
         &issuer=%C3%9Cn%C3%AFcode%20%26%20Co%3A%20%22Bank%22\
         &algorithm=SHA512&digits=8&period=60"
    );
}

#[test]
fn builds_hotp_with_counter_and_without_issuer() {
    let secret = Secret::from_base32(KEY).unwrap();
    let hotp = Hotp::new(Algorithm::Sha256, 6, 0).unwrap();
    let kind = OtpKind::Hotp {
        params: hotp,
        counter: 42,
    };
    let key = KeyUri::new(kind, secret, None, "alice").unwrap();
    assert_eq!(
        key.to_uri_string().as_str(),
        "otpauth://hotp/alice?secret=JBSWY3DPEHPK3PXP&algorithm=SHA256&counter=42"
    );
    // Counter 0 is still written: it is required.
    let key = KeyUri::new(
        OtpKind::Hotp {
            params: Hotp::default(),
            counter: 0,
        },
        Secret::from_base32(KEY).unwrap(),
        Some("X"),
        "a",
    )
    .unwrap();
    assert!(key.to_uri_string().ends_with("&counter=0"));
}

#[test]
fn building_normalises_and_rejects_names() {
    let s = || Secret::from_base32(KEY).unwrap();
    let key = KeyUri::new(OtpKind::default(), s(), Some("  ACME "), " bob ").unwrap();
    assert_eq!((key.issuer(), key.account()), (Some("ACME"), "bob"));
    let key = KeyUri::new(OtpKind::default(), s(), Some("   "), "bob").unwrap();
    assert_eq!(key.issuer(), None);

    assert_eq!(
        KeyUri::new(OtpKind::default(), s(), Some("ACME"), " \t").unwrap_err(),
        UriError::EmptyAccount
    );
    assert_eq!(
        KeyUri::new(OtpKind::default(), s(), None, "a:b").unwrap_err(),
        UriError::AmbiguousAccount
    );
    assert_eq!(
        KeyUri::new(OtpKind::default(), s(), Some(" "), "a:b").unwrap_err(),
        UriError::AmbiguousAccount
    );
    // With an issuer, a colon in the account is fine.
    let key = KeyUri::new(OtpKind::default(), s(), Some("ACME"), "a:b").unwrap();
    let back = parse(&key.to_uri_string());
    assert_eq!((back.issuer(), back.account()), (Some("ACME"), "a:b"));
}

#[test]
fn debug_never_shows_the_secret() {
    let key = parse("otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME");
    let debug = format!("{key:?}");
    assert!(!debug.contains("JBSW"), "{debug}");
    assert!(debug.contains("alice") && debug.contains("ACME"), "{debug}");
    let screen = Provisioning::new(&key).unwrap();
    let debug = format!("{screen:?}");
    assert!(!debug.contains("JBSW") && !debug.contains("svg"), "{debug}");
}

#[test]
fn provisioning_bundles_uri_svg_and_manual_key() {
    let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let key = KeyUri::new(OtpKind::default(), secret, Some("ACME"), "alice").unwrap();
    let screen = Provisioning::new(&key).unwrap();
    assert_eq!(screen.uri(), key.to_uri_string().as_str());
    assert_eq!(
        screen.manual_key(),
        "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
    );
    assert!(screen.qr_svg().starts_with("<svg") && screen.qr_svg().ends_with("</svg>"));
    assert_eq!(screen.issuer(), Some("ACME"));
    assert_eq!(screen.account(), "alice");
    assert_eq!(screen.kind(), &OtpKind::default());
    // The manual key decodes to the same secret.
    assert_eq!(
        Secret::from_base32(screen.manual_key())
            .unwrap()
            .expose_secret(),
        key.secret().expose_secret()
    );
}

// ---------------------------------------------------------------------------------------------
// Parsing what real services emit

#[test]
fn parses_the_google_examples() {
    let key =
        parse("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example");
    assert_eq!(key.issuer(), Some("Example"));
    assert_eq!(key.account(), "alice@google.com");
    assert_eq!(secret_b32(&key), KEY);
    assert_eq!(totp(&key), Totp::default());

    let key = parse(
        "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ\
         &issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
    );
    assert_eq!(key.issuer(), Some("ACME Co"));
    assert_eq!(key.account(), "john.doe@email.com");
    assert_eq!(secret_b32(&key), "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ");
    assert_eq!(totp(&key), Totp::default());
}

#[test]
fn issuer_only_in_the_label() {
    let key = parse("otpauth://totp/GitHub:octocat?secret=JBSWY3DPEHPK3PXP");
    assert_eq!((key.issuer(), key.account()), (Some("GitHub"), "octocat"));
}

#[test]
fn issuer_only_in_the_parameter() {
    let key = parse("otpauth://totp/octocat?secret=JBSWY3DPEHPK3PXP&issuer=GitHub");
    assert_eq!((key.issuer(), key.account()), (Some("GitHub"), "octocat"));
    // No issuer anywhere.
    let key = parse("otpauth://totp/octocat?secret=JBSWY3DPEHPK3PXP");
    assert_eq!((key.issuer(), key.account()), (None, "octocat"));
}

#[test]
fn differing_issuers_the_parameter_wins() {
    let key = parse("otpauth://totp/Example%20Inc.:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example");
    assert_eq!((key.issuer(), key.account()), (Some("Example"), "alice"));
    let key = parse("otpauth://totp/Old%20Name%3Aalice?secret=JBSWY3DPEHPK3PXP&issuer=New");
    assert_eq!((key.issuer(), key.account()), (Some("New"), "alice"));
    // An empty issuer parameter does not erase the label's issuer.
    let key = parse("otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=");
    assert_eq!((key.issuer(), key.account()), (Some("Example"), "alice"));
}

#[test]
fn encoded_colon_separator() {
    let key =
        parse("otpauth://totp/Example%3Aalice%40google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example");
    assert_eq!(
        (key.issuer(), key.account()),
        (Some("Example"), "alice@google.com")
    );
    let key = parse("otpauth://totp/Example%3aalice?secret=JBSWY3DPEHPK3PXP");
    assert_eq!((key.issuer(), key.account()), (Some("Example"), "alice"));
    // The issuer parameter itself contains a colon, and the separator is encoded too.
    let key = parse("otpauth://totp/A%3AB%3Aalice?secret=JBSWY3DPEHPK3PXP&issuer=A%3AB");
    assert_eq!((key.issuer(), key.account()), (Some("A:B"), "alice"));
}

#[test]
fn spaces_as_percent_20_or_plus() {
    for uri in [
        "otpauth://totp/ACME%20Co:john?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co",
        "otpauth://totp/ACME+Co:john?secret=JBSWY3DPEHPK3PXP&issuer=ACME+Co",
        "otpauth://totp/ACME+Co:john?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/john?secret=JBSWY3DPEHPK3PXP&issuer=ACME+Co",
        "otpauth://totp/ACME Co:john?secret=JBSWY3DPEHPK3PXP&issuer=ACME Co",
    ] {
        let key = parse(uri);
        assert_eq!(
            (key.issuer(), key.account()),
            (Some("ACME Co"), "john"),
            "{uri}"
        );
    }
    // Optional spaces before the account name (the Key URI format allows them).
    let key = parse("otpauth://totp/Example:%20%20alice?secret=JBSWY3DPEHPK3PXP");
    assert_eq!((key.issuer(), key.account()), (Some("Example"), "alice"));
}

#[test]
fn plus_in_the_account_stays_a_plus() {
    let key =
        parse("otpauth://totp/Example:john+2fa@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example");
    assert_eq!(key.account(), "john+2fa@example.com");
    let key = parse("otpauth://totp/Example:john%2B2fa%40example.com?secret=JBSWY3DPEHPK3PXP");
    assert_eq!(key.account(), "john+2fa@example.com");
}

#[test]
fn lowercase_and_hyphenated_algorithms() {
    for (name, expected) in [
        ("sha1", Algorithm::Sha1),
        ("Sha256", Algorithm::Sha256),
        ("sha512", Algorithm::Sha512),
        ("SHA-256", Algorithm::Sha256),
        ("sha-512", Algorithm::Sha512),
        ("SHA512", Algorithm::Sha512),
    ] {
        let key = parse(&format!(
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&algorithm={name}"
        ));
        assert_eq!(totp(&key).algorithm(), expected, "{name}");
    }
}

#[test]
fn unknown_and_empty_parameters_are_ignored() {
    let key = parse(
        "otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&&issuer=ACME\
         &image=https%3A%2F%2Fexample.com%2Flogo.png&color=ff0000&lock=true&foo&=bar&",
    );
    assert_eq!((key.issuer(), key.account()), (Some("ACME"), "alice"));
    assert_eq!(secret_b32(&key), KEY);
    // Unknown parameters may even be malformed or repeated: they are never decoded.
    let key = parse("otpauth://totp/alice?image=%ZZ&image=1&secret=JBSWY3DPEHPK3PXP");
    assert_eq!(key.account(), "alice");
}

#[test]
fn lenient_secrets() {
    let padded = {
        let s = Secret::from_bytes(b"12345678901".to_vec()).unwrap();
        format!("{}======", s.to_base32().as_str())
    };
    let encoded_padding = padded.replace('=', "%3D");
    for secret in [
        "jbswy3dpehpk3pxp",
        "JBSW%20Y3DP%20EHPK%203PXP",
        "JBSW+Y3DP+EHPK+3PXP",
        "jbsw-y3dp-ehpk-3pxp",
    ] {
        let key = parse(&format!("otpauth://totp/a?secret={secret}"));
        assert_eq!(secret_b32(&key), KEY, "{secret}");
    }
    for secret in [padded.as_str(), encoded_padding.as_str()] {
        let key = parse(&format!("otpauth://totp/a?secret={secret}"));
        assert_eq!(key.secret().expose_secret(), b"12345678901", "{secret}");
    }
}

#[test]
fn case_whitespace_and_fragment_leniency() {
    let key = parse("  OTPAUTH://TOTP/ACME:alice?SECRET=JBSWY3DPEHPK3PXP&Issuer=ACME#top\n");
    assert_eq!((key.issuer(), key.account()), (Some("ACME"), "alice"));
    assert_eq!(secret_b32(&key), KEY);
    let key: KeyUri = "otpauth://Hotp/alice?secret=JBSWY3DPEHPK3PXP&counter=7"
        .parse()
        .unwrap();
    assert_eq!(
        key.kind(),
        &OtpKind::Hotp {
            params: Hotp::default(),
            counter: 7
        }
    );
}

#[test]
fn digits_period_and_counter() {
    let key = parse("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=8&period=60");
    let t = totp(&key);
    assert_eq!(
        (t.digits(), t.period(), t.skew()),
        (8, 60, Totp::default().skew())
    );
    let key = parse("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=07&period=1");
    assert_eq!((totp(&key).digits(), totp(&key).period()), (7, 1));
    let key = parse(&format!(
        "otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter={}&digits=8&algorithm=SHA512",
        u64::MAX
    ));
    assert_eq!(
        key.kind(),
        &OtpKind::Hotp {
            params: Hotp::new(Algorithm::Sha512, 8, 0).unwrap(),
            counter: u64::MAX
        }
    );
    // Parameters of the other kind are ignored.
    let key = parse("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter=1&period=0");
    assert!(matches!(key.kind(), OtpKind::Hotp { counter: 1, .. }));
    let key = parse("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&counter=x");
    assert_eq!(totp(&key), Totp::default());
}

#[test]
fn parsed_uri_generates_the_services_codes() {
    // RFC 6238 Appendix B, SHA-256 seed, T = 59, through a URI.
    let seed = Secret::from_bytes(b"12345678901234567890123456789012".to_vec()).unwrap();
    let uri = format!(
        "otpauth://totp/RFC:6238?secret={}&algorithm=SHA256&digits=8",
        seed.to_base32().as_str()
    );
    let key = parse(&uri);
    assert_eq!(
        totp(&key).generate(key.secret(), 59).to_string(),
        "46119246"
    );
    let secret = key.into_secret();
    assert_eq!(secret.len(), 32);
}

// ---------------------------------------------------------------------------------------------
// Rejections, each with its exact error

#[test]
fn rejects_wrong_scheme() {
    for uri in [
        "",
        "   ",
        "https://totp/a?secret=JBSWY3DPEHPK3PXP",
        "otpauth:/totp/a?secret=JBSWY3DPEHPK3PXP",
        "otpauth:totp/a?secret=JBSWY3DPEHPK3PXP",
        "otpauth",
        "otpauth:/",
        "xotpauth://totp/a?secret=JBSWY3DPEHPK3PXP",
        "ötpauth://totp/a",
    ] {
        assert_eq!(err(uri), UriError::WrongScheme, "{uri:?}");
    }
}

#[test]
fn rejects_unknown_types() {
    assert_eq!(
        err("otpauth://motp/a?secret=JBSWY3DPEHPK3PXP"),
        UriError::UnknownType("motp".into())
    );
    assert_eq!(
        err("otpauth://steam/a?secret=JBSWY3DPEHPK3PXP"),
        UriError::UnknownType("steam".into())
    );
    assert_eq!(err("otpauth://"), UriError::UnknownType(String::new()));
    assert_eq!(
        err("otpauth://?secret=JBSWY3DPEHPK3PXP"),
        UriError::UnknownType(String::new())
    );
    assert_eq!(
        err("otpauth://totpx/a"),
        UriError::UnknownType("totpx".into())
    );
}

#[test]
fn rejects_missing_secret() {
    assert_eq!(err("otpauth://totp/a"), UriError::MissingSecret);
    assert_eq!(err("otpauth://totp/a?issuer=X"), UriError::MissingSecret);
    assert_eq!(
        err("otpauth://totp/a?secrets=JBSWY3DPEHPK3PXP"),
        UriError::MissingSecret
    );
}

#[test]
fn rejects_invalid_secrets_keeping_the_cause() {
    let cases = [
        ("secret=", SecretError::Empty),
        ("secret", SecretError::Empty),
        ("secret=%20", SecretError::Empty),
        (
            "secret=JBSWY3DP1",
            SecretError::InvalidCharacter {
                character: '1',
                position: 8,
            },
        ),
        (
            "secret=JBSWY3DP%C3%A9",
            SecretError::InvalidCharacter {
                character: 'é',
                position: 8,
            },
        ),
        ("secret=ABC", SecretError::InvalidLength { symbols: 3 }),
        ("secret=AB%3DCD", SecretError::InvalidPadding),
    ];
    for (query, cause) in cases {
        let error = err(&format!("otpauth://totp/a?{query}"));
        assert_eq!(error, UriError::InvalidSecret(cause.clone()), "{query}");
        let source = error.source().expect("the SecretError is the source");
        assert_eq!(source.downcast_ref::<SecretError>(), Some(&cause));
    }
    // Past the 1 KiB bound (MAX_SECRET_BYTES); 200 symbols (125 bytes) import.
    let long = "A".repeat(1648);
    assert_eq!(
        err(&format!("otpauth://totp/a?secret={long}")),
        UriError::InvalidSecret(SecretError::TooLong { bytes: 1030 })
    );
    let fine = "A".repeat(200);
    assert!(KeyUri::parse(&format!("otpauth://totp/a?secret={fine}")).is_ok());
}

#[test]
fn rejects_digits_out_of_range_or_not_numbers() {
    let base = "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP";
    for (digits, expected) in [
        ("5", UriError::InvalidParams(ParamsError::Digits(5))),
        ("9", UriError::InvalidParams(ParamsError::Digits(9))),
        ("0", UriError::InvalidParams(ParamsError::Digits(0))),
        (
            "4294967295",
            UriError::InvalidParams(ParamsError::Digits(u32::MAX)),
        ),
    ] {
        let error = err(&format!("{base}&digits={digits}"));
        assert_eq!(error, expected, "{digits}");
        assert!(error.source().unwrap().is::<ParamsError>());
    }
    for (digits, value) in [
        ("", ""),
        ("six", "six"),
        ("6.0", "6.0"),
        ("-6", "-6"),
        ("+6", " 6"),
        ("%2B6", "+6"),
        ("%206", " 6"),
        ("4294967296", "4294967296"),
        ("\u{ff16}", "\u{ff16}"),
    ] {
        assert_eq!(
            err(&format!("{base}&digits={digits}")),
            UriError::InvalidNumber {
                parameter: "digits",
                value: value.to_owned()
            },
            "{digits:?}"
        );
    }
    // HOTP checks digits too.
    assert_eq!(
        err("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter=0&digits=10"),
        UriError::InvalidParams(ParamsError::Digits(10))
    );
}

#[test]
fn rejects_bad_periods() {
    let base = "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP";
    assert_eq!(
        err(&format!("{base}&period=0")),
        UriError::InvalidParams(ParamsError::Period(0))
    );
    for period in ["", "30s", "-30", "thirty", "1e3", "18446744073709551616"] {
        assert_eq!(
            err(&format!("{base}&period={period}")),
            UriError::InvalidNumber {
                parameter: "period",
                value: period.to_owned()
            },
            "{period:?}"
        );
    }
}

#[test]
fn rejects_unknown_algorithms() {
    for name in ["MD5", "SHA384", "sha3-256", ""] {
        let error = err(&format!(
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&algorithm={name}"
        ));
        assert_eq!(
            error,
            UriError::UnknownAlgorithm(UnknownAlgorithm(name.to_owned())),
            "{name:?}"
        );
        assert!(error.source().unwrap().is::<UnknownAlgorithm>());
    }
}

#[test]
fn rejects_hotp_without_a_valid_counter() {
    assert_eq!(
        err("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP"),
        UriError::MissingCounter
    );
    assert_eq!(
        err("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter=-1"),
        UriError::InvalidNumber {
            parameter: "counter",
            value: "-1".into()
        }
    );
    assert_eq!(
        err("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter="),
        UriError::InvalidNumber {
            parameter: "counter",
            value: String::new()
        }
    );
}

#[test]
fn rejects_malformed_percent_encoding() {
    for (uri, component) in [
        ("otpauth://totp/ACME%ZZ:a?secret=JBSWY3DPEHPK3PXP", "label"),
        ("otpauth://totp/a%?secret=JBSWY3DPEHPK3PXP", "label"),
        ("otpauth://totp/a%4?secret=JBSWY3DPEHPK3PXP", "label"),
        ("otpauth://totp/%FF%FE?secret=JBSWY3DPEHPK3PXP", "label"),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&issuer=%E2%82",
            "issuer",
        ),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&issuer=100%",
            "issuer",
        ),
        ("otpauth://totp/a?secret=JBSW%Y3DPEHPK3PXP", "secret"),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&algorithm=SHA%2",
            "algorithm",
        ),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=%G6",
            "digits",
        ),
        (
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&period=%",
            "period",
        ),
        (
            "otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter=%80",
            "counter",
        ),
    ] {
        assert_eq!(err(uri), UriError::InvalidEncoding { component }, "{uri}");
    }
}

#[test]
fn rejects_empty_account_labels() {
    for uri in [
        "otpauth://totp?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/%20?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/Example:?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/Example%3A%20?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        "otpauth://totp/Example:?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    ] {
        assert_eq!(err(uri), UriError::EmptyAccount, "{uri}");
    }
}

#[test]
fn rejects_a_colon_in_the_account_without_issuer() {
    for uri in [
        "otpauth://totp/::alice?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/%20:a:b?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/%3Aa%3Ab?secret=JBSWY3DPEHPK3PXP&issuer=%20",
    ] {
        assert_eq!(err(uri), UriError::AmbiguousAccount, "{uri}");
    }
}

#[test]
fn rejects_duplicate_known_parameters() {
    let base = "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP";
    for (extra, name) in [
        ("secret=KRSXG5CTMVRXEZLU", "secret"),
        ("SECRET=JBSWY3DPEHPK3PXP", "secret"),
        ("issuer=A&issuer=A", "issuer"),
        ("algorithm=SHA1&algorithm=SHA256", "algorithm"),
        ("digits=6&digits=6", "digits"),
        ("period=30&Period=60", "period"),
        ("counter=1&counter=2", "counter"),
    ] {
        assert_eq!(
            err(&format!("{base}&{extra}")),
            UriError::DuplicateParameter(name),
            "{extra}"
        );
    }
}

#[test]
fn error_messages_are_readable() {
    assert_eq!(
        err("otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP").to_string(),
        "an HOTP URI needs a counter parameter"
    );
    assert_eq!(
        err("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=x").to_string(),
        "the digits parameter is not a decimal number: \"x\""
    );
    assert_eq!(
        err("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=x&digits=y").to_string(),
        "the digits parameter appears more than once"
    );
}

// ---------------------------------------------------------------------------------------------
// Property: build → parse round trip

fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::char::range('a', 'z'),
        1 => prop::sample::select(vec![
            ':', '&', '?', '%', ' ', '+', '=', '#', '/', '@', '\t', 'é', '日', '🔑', '%', '\u{a0}',
        ]),
    ]
}

fn name(min: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(name_char(), min..24).prop_map(String::from_iter)
}

fn kind() -> impl Strategy<Value = OtpKind> {
    let algorithm =
        prop::sample::select(vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]);
    let totp = (
        algorithm.clone(),
        6u32..=8,
        prop_oneof![Just(30u64), Just(60), 1u64..=u64::MAX],
    )
        .prop_map(|(a, d, p)| {
            OtpKind::Totp(
                Totp::builder()
                    .algorithm(a)
                    .digits(d)
                    .period(p)
                    .build()
                    .unwrap(),
            )
        });
    let hotp = (algorithm, 6u32..=8, any::<u64>()).prop_map(|(a, d, counter)| OtpKind::Hotp {
        params: Hotp::new(a, d, 0).unwrap(),
        counter,
    });
    prop_oneof![totp, hotp]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn build_parse_round_trip(
        bytes in prop::collection::vec(any::<u8>(), 1..=64),
        kind in kind(),
        issuer in prop::option::of(name(0)),
        account in name(0),
    ) {
        let secret = Secret::from_bytes(bytes.clone()).unwrap();
        let want_issuer = issuer.as_deref().map(str::trim).filter(|i| !i.is_empty());
        let want_account = account.trim();
        let built = KeyUri::new(kind, secret, issuer.as_deref(), &account);
        if want_account.is_empty() {
            prop_assert_eq!(built.unwrap_err(), UriError::EmptyAccount);
            return Ok(());
        }
        if want_issuer.is_none() && want_account.contains(':') {
            prop_assert_eq!(built.unwrap_err(), UriError::AmbiguousAccount);
            return Ok(());
        }
        let built = built.unwrap();
        let text = built.to_uri_string();
        prop_assert!(text.is_ascii(), "URI must be ASCII: {}", text.as_str());
        let parsed = KeyUri::parse(&text).map_err(|e| TestCaseError::fail(format!("{e:?} for {}", text.as_str())))?;
        prop_assert_eq!(parsed.issuer(), want_issuer);
        prop_assert_eq!(parsed.account(), want_account);
        prop_assert_eq!(parsed.kind(), &kind);
        prop_assert_eq!(parsed.secret().expose_secret(), &bytes[..]);
        // Canonical: printing the parsed URI gives the same text.
        let again = parsed.to_uri_string();
        prop_assert_eq!(again.as_str(), text.as_str());
    }

    #[test]
    fn parse_never_panics(input in "otpauth://(totp|hotp|[a-z]{0,4})/[ -~]{0,40}(\\?[ -~]{0,80})?") {
        let _ = KeyUri::parse(&input);
    }

    #[test]
    fn parse_never_panics_on_any_text(input in any::<String>()) {
        let _ = KeyUri::parse(&input);
    }
}
