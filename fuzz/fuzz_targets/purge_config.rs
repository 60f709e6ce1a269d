//! Any text as a purge configuration file (`--purge-config`): every problem reported, no panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ocsp_purge::PurgeConfig::parse("fuzz", text);
    }
});
