#![no_main]
//! Fuzz target: see `twofactor_fuzz::check_record_decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| twofactor_fuzz::check_record_decode(data));
