//! Any text as lines of an index.txt, a CSV or a serial list that staff import.
#![no_main]
use ocspctl::input::{parse_line, Format};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [Format::Index, Format::Csv, Format::Serials] {
        for (i, line) in text.lines().enumerate() {
            let _ = parse_line(format, line, i == 0);
        }
    }
});
