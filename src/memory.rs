//! The allocator's settings for the whole process, made before any thread starts.
//!
//! glibc's malloc raises its mmap threshold each time a large block that it mapped is freed (up
//! to 32 MiB), after which every large block (sled's node buffers are often 100 KiB or more)
//! comes from the heap arenas instead and fragments them: in `benches/scale.sh` (1M distinct
//! pages) peak RSS was 83 MiB with the default, and 51–57 MiB with the threshold fixed, for the
//! same live data. Fixing the thresholds turns that adjustment off: large blocks are mapped and
//! unmapped on their own, and freed heap tops go back to the system.

/// Blocks at least this big are mapped on their own (glibc's initial default, kept fixed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
/// Free memory at the top of a heap beyond this goes back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 * 1024;

/// Applies the settings. Call it first thing in `main`, before the runtime starts threads;
/// elsewhere than glibc it does nothing.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; it is called before any other thread
    // exists, with parameters glibc documents, and a refusal (return 0) leaves the defaults.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
