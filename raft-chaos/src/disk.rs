//! Disk faults on one node's data directory (RocksDB runs): the disk
//! fills up, or turns read-only under the running node.
//!
//! Root ignores file modes, so neither fault can be made with `chmod`.
//! Each node slot gets a filesystem of its own instead: an ext4 image
//! (`OUT/disk-SLOT.img`, [`DISK_MIB`] MiB) on a loop device, mounted at
//! `OUT/disk-SLOT` with `errors=remount-ro`; the slot's data directories
//! live in it. That needs root with `CAP_SYS_ADMIN` (losetup, mount), and
//! `mkfs.ext4`, `e2fsck`, `losetup` on the `PATH`.
//!
//! - **Full**: a ballast file takes every free block (root's reserve
//!   included: the image is made with `-m 0`); removed to heal.
//! - **Read-only**: `/sys/fs/ext4/DEV/trigger_fs_error` reports a
//!   filesystem error, and `errors=remount-ro` stops every write from then
//!   on, as a disk that failed would. (`mount -o remount,ro` cannot do it:
//!   the kernel refuses it, EBUSY, while a file is open for writing.)
//!   Healed once the node is gone: unmount, `e2fsck -fy`, mount again.
//!
//! When the probe at the start cannot set this up (not root, no loop
//! devices, a tool missing), the run leaves the disk kinds out and its
//! report says so and why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Each slot's filesystem size: room for a short run's RocksDB files.
pub const DISK_MIB: u64 = 256;

/// Why a disk could not be set up or changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DiskError(pub String);

/// Runs `program args`, failing with its standard error.
fn run(program: &str, args: &[&str]) -> Result<String, DiskError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DiskError(format!("{program}: {e}")))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        return Err(DiskError(format!("{program} {}: {} {}", args.join(" "), output.status, err.trim())));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// One slot's filesystem: image, loop device and mount point. Unmounted
/// and detached when dropped.
#[derive(Debug)]
pub struct Disk {
    image: PathBuf,
    device: String,
    mount: PathBuf,
}

impl Disk {
    /// Makes, attaches and mounts the filesystem of slot `slot` under `out`.
    pub fn create(out: &Path, slot: u64) -> Result<Disk, DiskError> {
        let image = out.join(format!("disk-{slot}.img"));
        let mount = out.join(format!("disk-{slot}"));
        let file =
            std::fs::File::create(&image).map_err(|e| DiskError(format!("{}: {e}", image.display())))?;
        file.set_len(DISK_MIB << 20).map_err(|e| DiskError(format!("{}: {e}", image.display())))?;
        drop(file);
        std::fs::create_dir_all(&mount).map_err(|e| DiskError(format!("{}: {e}", mount.display())))?;
        let image_s = image.display().to_string();
        run("mkfs.ext4", &["-q", "-F", "-m", "0", &image_s])?;
        let device = run("losetup", &["-f", "--show", &image_s])?;
        let disk = Disk { image, device, mount };
        disk.mount()?;
        Ok(disk)
    }

    fn mount(&self) -> Result<(), DiskError> {
        let mount = self.mount.display().to_string();
        run("mount", &["-t", "ext4", "-o", "errors=remount-ro", &self.device, &mount]).map(drop)
    }

    /// Where the slot's data directories go.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    fn ballast(&self) -> PathBuf {
        self.mount.join("ballast")
    }

    /// Fills every free block with a ballast file; says how much it took.
    pub fn fill(&self) -> Result<u64, DiskError> {
        use std::io::Write;
        let path = self.ballast();
        let mut file =
            std::fs::File::create(&path).map_err(|e| DiskError(format!("{}: {e}", path.display())))?;
        let mut written = 0u64;
        // Big chunks, then small ones for the last blocks.
        for size in [1 << 20, 4096] {
            let chunk = vec![0u8; size];
            while file.write_all(&chunk).is_ok() {
                written += size as u64;
            }
        }
        // Flushing makes the kernel allocate what the page cache holds.
        let _ = file.sync_all();
        Ok(written)
    }

    /// Removes the ballast.
    pub fn unfill(&self) -> Result<(), DiskError> {
        let path = self.ballast();
        std::fs::remove_file(&path).map_err(|e| DiskError(format!("{}: {e}", path.display())))
    }

    /// Makes the filesystem fail every write from now on.
    pub fn fail(&self) -> Result<(), DiskError> {
        let name = Path::new(&self.device).file_name().map(|n| n.to_string_lossy().to_string());
        let name = name.ok_or_else(|| DiskError(format!("no device name in {}", self.device)))?;
        let trigger = format!("/sys/fs/ext4/{name}/trigger_fs_error");
        std::fs::write(&trigger, "raft-chaos disk-read-only\n")
            .map_err(|e| DiskError(format!("{trigger}: {e}")))
    }

    /// After [`Disk::fail`], with no process left on it: unmounts, checks
    /// and mounts it again, writable.
    pub fn repair(&self) -> Result<(), DiskError> {
        run("umount", &[&self.mount.display().to_string()])?;
        // 1: errors were corrected, which is expected after the error.
        match run("e2fsck", &["-fy", &self.device]) {
            Ok(_) => {}
            Err(DiskError(e)) if e.contains("exit status: 1") => {}
            Err(e) => return Err(e),
        }
        self.mount()
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = run("umount", &[&self.mount.display().to_string()]);
        let _ = run("losetup", &["-d", &self.device]);
        let _ = std::fs::remove_file(&self.image);
    }
}
