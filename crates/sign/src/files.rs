//! Reading the files an operator names (keys, PINs, certificates, configuration): only regular
//! files, and only up to a size, so `/dev/zero`, a FIFO or a mistyped multi-gigabyte path is
//! refused at once with a clear message instead of filling memory or hanging.

use std::io::Read;
use std::path::Path;

/// The most a key, PIN, certificate or configuration file may hold.
pub const MAX_OPERATOR_FILE: u64 = 1 << 20;

/// Reads `path` as text if it is a regular file of at most `max` bytes.
pub fn read_operator_file(path: &Path, max: u64) -> std::io::Result<String> {
    // Opened without blocking, so a FIFO with no writer does not hang the open itself.
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a device, FIFO, socket or folder is refused)",
        ));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes; at most {max} are read from such a file", meta.len()),
        ));
    }
    let mut text = String::new();
    // The file may grow while read: never past the bound.
    file.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("more than {max} bytes")));
    }
    Ok(text)
}

/// O_NONBLOCK where ocspd ships (Linux on x86_64, aarch64, arm, riscv64); opening a regular
/// file ignores it.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "riscv64")
))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000;
    std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path)
}

/// Elsewhere a plain open: the kind of file is still checked before anything is read (a FIFO
/// with no writer may block the open itself there).
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "riscv64")
)))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn devices_fifos_folders_and_large_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "key").unwrap();
        assert_eq!(read_operator_file(&small, 1024).unwrap(), "key");
        let e = read_operator_file(&big, 1024).unwrap_err().to_string();
        assert!(e.contains("2048 bytes"), "{e}");
        let e = read_operator_file(Path::new("/dev/zero"), 1024).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_operator_file(dir.path(), 1024).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let started = std::time::Instant::now();
        let e = read_operator_file(&fifo, 1024).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
