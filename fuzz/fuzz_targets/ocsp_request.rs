//! Any bytes as a DER OCSPRequest (the POST body): an error or a request, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ocsp_proto::parse_request(data) {
        // What parses must re-encode.
        let _ = ocsp_proto::encode_request(&request.cert_ids);
    }
});
