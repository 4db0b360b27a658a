//! The real `flametree` binary on a pseudo-terminal of our own: keys go in through the
//! master side and everything the program writes to its terminal comes back with the
//! time it arrived. tmux would add its own redraw and a client process per key or
//! capture, which is coarser than the milliseconds measured here.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Instant;

/// Bytes the program wrote to its terminal, stamped when they were read.
pub struct Chunk {
    pub at: Instant,
    pub bytes: Vec<u8>,
}

pub struct Pty {
    master: File,
    pub output: mpsc::Receiver<Chunk>,
    pub child: Child,
}

fn check(rc: libc::c_int, what: &str) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(rc)
}

impl Pty {
    /// Starts `cmd` as the session leader on a new `cols`×`rows` terminal.
    pub fn spawn(mut cmd: Command, cols: u16, rows: u16) -> std::io::Result<Pty> {
        // SAFETY: plain libc calls on a descriptor we own; ptsname_r writes into our
        // buffer and NUL-terminates it.
        let (master, slave) = unsafe {
            let fd = check(
                libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC),
                "posix_openpt",
            )?;
            let master = OwnedFd::from_raw_fd(fd);
            check(libc::grantpt(fd), "grantpt")?;
            check(libc::unlockpt(fd), "unlockpt")?;
            let mut name = [0 as libc::c_char; 128];
            check(
                libc::ptsname_r(fd, name.as_mut_ptr(), name.len()),
                "ptsname_r",
            )?;
            let size = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            check(libc::ioctl(fd, libc::TIOCSWINSZ, &size), "TIOCSWINSZ")?;
            let path = CStr::from_ptr(name.as_ptr());
            let sfd = check(
                libc::open(
                    path.as_ptr(),
                    libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
                ),
                "open the terminal's slave side",
            )?;
            (File::from(master), OwnedFd::from_raw_fd(sfd))
        };
        cmd.stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave.try_clone()?);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(slave);
        let mut reader = master.try_clone()?;
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            // EIO once the program has exited and its side of the terminal is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = Chunk {
                    at: Instant::now(),
                    bytes: buf[..n].to_vec(),
                };
                if tx.send(chunk).is_err() {
                    break;
                }
            }
        });
        Ok(Pty {
            master,
            output,
            child,
        })
    }

    /// Types `bytes` as the terminal's keyboard would.
    pub fn keys(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.master.write_all(bytes)?;
        self.master.flush()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
