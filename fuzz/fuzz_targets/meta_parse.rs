//! Fuzz target `meta_parse`: see `shoal_fuzz::meta_parse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::meta_parse(data));
