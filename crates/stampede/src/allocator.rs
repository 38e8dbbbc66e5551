//! The process's allocator, chosen once by mode (ADR 0035): mimalloc where it made reads faster
//! (`web`, `all`, and the commands), glibc's for `streaming` and `delivery`, where mimalloc
//! measured a higher p99 from a post to its streaming event, and more memory per connection.
//! `STAMPEDE_ALLOCATOR=mimalloc|system` overrides the choice for any mode.
//!
//! The choice is made by the first allocation, before `main` and before any other thread, and
//! never changes, so every block is freed by the allocator that gave it. It reads the
//! environment and `/proc/self/cmdline` through libc into a buffer on the stack: allocating while
//! choosing the allocator would recurse.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// mimalloc, or glibc's allocator, as the mode needs.
pub struct ByMode;

const UNDECIDED: u8 = 0;
const MIMALLOC: u8 = 1;
const SYSTEM: u8 = 2;

static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

#[inline]
fn system() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        MIMALLOC => false,
        SYSTEM => true,
        _ => decide(),
    }
}

#[cold]
fn decide() -> bool {
    let system = match override_from_env() {
        Some(system) => system,
        None => subcommand_is_one_of(&[b"streaming", b"delivery"]),
    };
    // Two threads deciding at once (there are none yet) would both read the same answer.
    CHOICE.store(if system { SYSTEM } else { MIMALLOC }, Ordering::Relaxed);
    system
}

/// `STAMPEDE_ALLOCATOR`: `system` or `mimalloc`; anything else is no override.
fn override_from_env() -> Option<bool> {
    // SAFETY: getenv with a NUL-terminated name; no thread exists yet that could change the
    // environment, and the value is read before anything else runs.
    let value = unsafe { libc::getenv(c"STAMPEDE_ALLOCATOR".as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string.
    match unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() {
        b"system" => Some(true),
        b"mimalloc" => Some(false),
        _ => None,
    }
}

/// This process's subcommand is one of `names`.
fn subcommand_is_one_of(names: &[&[u8]]) -> bool {
    let mut buffer = [0u8; 4096];
    // SAFETY: open, read and close on a NUL-terminated path and a buffer of the length given.
    let read = unsafe {
        let fd = libc::open(
            c"/proc/self/cmdline".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let read = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
        libc::close(fd);
        read
    };
    let Ok(read) = usize::try_from(read) else {
        return false;
    };
    subcommand(&buffer[..read]).is_some_and(|own| names.contains(&own))
}

/// The first argument after the program's name that is not an option, in a command line as
/// `/proc/self/cmdline` holds it (each argument followed by a NUL).
fn subcommand(cmdline: &[u8]) -> Option<&[u8]> {
    cmdline
        .split(|&b| b == 0)
        .skip(1)
        .find(|arg| !arg.is_empty() && !arg.starts_with(b"-"))
}

// SAFETY: every call goes to the one allocator chosen before the first block was handed out.
unsafe impl GlobalAlloc for ByMode {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if system() {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if system() {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the same allocator, chosen once.
        unsafe {
            if system() {
                System.dealloc(ptr, layout)
            } else {
                MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from the same allocator, chosen once.
        unsafe {
            if system() {
                System.realloc(ptr, layout, new_size)
            } else {
                MiMalloc.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// Which allocator this process uses, for its start-up log line.
pub fn name() -> &'static str {
    if system() { "system" } else { "mimalloc" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subcommand_is_the_first_argument_that_is_not_an_option() {
        assert_eq!(
            subcommand(b"stampede\0streaming\0"),
            Some(&b"streaming"[..])
        );
        assert_eq!(
            subcommand(b"/usr/bin/stampede\0--verbose\0web\0"),
            Some(&b"web"[..])
        );
        assert_eq!(
            subcommand(b"streaming\0"),
            None,
            "the program's own name is not one"
        );
        assert_eq!(subcommand(b"stampede\0--help\0"), None);
        assert_eq!(subcommand(b""), None);
    }

    #[test]
    fn the_command_line_is_read_from_proc() {
        let expected = std::env::args()
            .skip(1)
            .find(|arg| !arg.is_empty() && !arg.starts_with('-'));
        match expected {
            Some(arg) => assert!(subcommand_is_one_of(&[b"web", arg.as_bytes()]), "{arg}"),
            None => assert!(!subcommand_is_one_of(&[b"streaming", b"delivery"])),
        }
    }
}
