//! The physical floors a durable cluster on loopback is read against: one
//! 4 KiB write and `fdatasync` on the disk the data lives on, and one TCP
//! round trip of one byte on loopback. A synced write cannot be quicker than
//! the first; a replicated one, not quicker than the first plus the second.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Medians of the floors, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Floors {
    /// One 4 KiB `pwrite` at offset 0 and `fdatasync`.
    pub fdatasync_4k_us: f64,
    /// One byte to an echo thread and back, over TCP on 127.0.0.1 with
    /// `TCP_NODELAY`.
    pub loopback_rtt_us: f64,
}

impl Floors {
    /// The line `--floors` prints.
    pub fn line(&self) -> String {
        format!(
            "floors: fdatasync 4 KiB p50 {:.1} us  loopback TCP round trip p50 {:.1} us",
            self.fdatasync_4k_us, self.loopback_rtt_us
        )
    }
}

fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples.get(samples.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// Measures both floors: `syncs` syncs of a file in `dir`, `trips` round trips.
pub fn measure(dir: &Path, syncs: usize, trips: usize) -> std::io::Result<Floors> {
    Ok(Floors { fdatasync_4k_us: fdatasync_4k(dir, syncs)?, loopback_rtt_us: loopback_rtt(trips)? })
}

/// The median of `samples` 4 KiB writes at offset 0 of a file in `dir`, each
/// followed by `fdatasync` (the file is removed afterwards).
pub fn fdatasync_4k(dir: &Path, samples: usize) -> std::io::Result<f64> {
    let file = tempfile::tempfile_in(dir)?;
    let block = vec![0x5a_u8; 4096];
    // The first write allocates the block; the samples then overwrite it, as
    // a log's sync of a partly written page does.
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let began = Instant::now();
        file.write_all_at(&block, 0)?;
        file.sync_data()?;
        times.push(began.elapsed());
    }
    Ok(median_us(times))
}

/// The median of `samples` one-byte round trips to an echo thread over TCP
/// on loopback.
pub fn loopback_rtt(samples: usize) -> std::io::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        while stream.read(&mut byte)? == 1 {
            stream.write_all(&byte)?;
        }
        Ok(())
    });
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut byte = [1u8; 1];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let began = Instant::now();
        stream.write_all(&byte)?;
        stream.read_exact(&mut byte)?;
        times.push(began.elapsed());
    }
    drop(stream);
    echo.join().map_err(|_| std::io::Error::other("the echo thread panicked"))??;
    Ok(median_us(times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        let floors = measure(dir.path(), 3, 10).unwrap();
        assert!(floors.fdatasync_4k_us > 0.0 && floors.loopback_rtt_us > 0.0, "{floors:?}");
        assert!(floors.line().starts_with("floors: fdatasync 4 KiB p50 "));
    }
}
