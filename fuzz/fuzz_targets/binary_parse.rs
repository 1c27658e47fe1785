//! Fuzz target `binary_parse`: see `shoal_fuzz::binary_parse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::binary_parse(data));
