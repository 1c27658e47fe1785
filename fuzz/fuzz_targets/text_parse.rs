//! Fuzz target `text_parse`: see `shoal_fuzz::text_parse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::text_parse(data));
