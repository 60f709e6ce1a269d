//! Any text as the path of a GET request, then what it decodes to as a request.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(der) = ocsp_proto::decode_get_path(path) {
            let _ = ocsp_proto::parse_request(&der);
        }
    }
});
