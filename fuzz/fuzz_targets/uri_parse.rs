#![no_main]
//! Fuzz target: see `twofactor_fuzz::check_uri_parse`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twofactor_fuzz::check_uri_parse(data));
