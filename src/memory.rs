//! The allocator's settings for the whole process, made before any thread starts, and the
//! periodic return of freed memory to the system.
//!
//! glibc's malloc raises its mmap threshold each time a large block that it mapped is freed (up
//! to 32 MiB), after which every large block (sled's node buffers are often 100 KiB or more)
//! comes from the heap arenas instead and fragments them. Fixing the thresholds turns that
//! adjustment off: large blocks are mapped and unmapped on their own, and freed heap tops go
//! back to the system.
//!
//! glibc also gives threads up to eight heap arenas per core, and sled's I/O threads, the
//! runtime's workers and the flusher's blocking thread each fill their own: one arena per core
//! keeps that memory down, at no cost in speed.
//!
//! The static (musl) build allocates with mimalloc (the binary's `#[global_allocator]`): musl's
//! own malloc serialises the threads and lost a fifth of the throughput. mimalloc is told to
//! give freed pages back at once rather than after a delay, and to commit arena memory only as
//! it is used.

/// Blocks at least this big are mapped on their own (glibc's initial default, kept fixed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
/// Free memory at the top of a heap beyond this goes back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 * 1024;

/// Heap arenas at most: one per core (at least two), rather than glibc's eight per core.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn arena_max() -> libc::c_int {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX)
}

/// mimalloc's `mi_option_arena_eager_commit` and `mi_option_purge_delay` (their places in
/// `mi_option_t`, mimalloc 3's `mimalloc.h`; the bindings name neither).
#[cfg(target_env = "musl")]
const MI_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(target_env = "musl")]
const MI_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings. Call it first thing in `main`, before the runtime starts threads;
/// elsewhere than glibc and musl it does nothing.
pub fn tune_allocator() {
    #[cfg(target_env = "musl")]
    // SAFETY: mi_option_set only stores an option's value; both are options mimalloc documents.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_PURGE_DELAY, 0);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; it is called before any other thread
    // exists, with parameters glibc documents, and a refusal (return 0) leaves the defaults.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, arena_max());
    }
}

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`), wherever they are in
/// the heap, and returns whether any were. glibc itself only ever gives back the free top of a
/// heap; a page freed in the middle stays resident. Under musl it is mimalloc's `mi_collect`,
/// which frees what threads left behind and reports nothing (false). Elsewhere it does nothing.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks malloc's own free lists, under its arena locks.
    unsafe {
        libc::malloc_trim(0) == 1
    }
    #[cfg(target_env = "musl")]
    // SAFETY: mi_collect only walks mimalloc's own heaps, under its own locks.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// This process's resident set, in bytes.
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|field| field.parse().ok())
            .unwrap_or(0);
        // SAFETY: sysconf only reads a system setting.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages * u64::try_from(page_size).unwrap_or(4096)
    }

    #[test]
    fn memory_freed_in_the_middle_of_the_heap_goes_back() {
        const MIB: u64 = 1024 * 1024;
        // 64 MiB in 1 KiB blocks, all freed but every 256th: the heap keeps its top, and between
        // the blocks kept are free pages that glibc does not give back by itself.
        let blocks: Vec<Box<[u8; 1024]>> = (0..65_536_u32)
            .map(|i| Box::new([(i % 251) as u8; 1024]))
            .collect();
        let kept: Vec<Box<[u8; 1024]>> = blocks.into_iter().step_by(256).collect();
        let before = resident_bytes();
        assert!(release_free_memory(), "nothing was released");
        let after = resident_bytes();
        assert!(
            before.saturating_sub(after) >= 32 * MIB,
            "resident {} MiB before, {} MiB after",
            before / MIB,
            after / MIB
        );
        assert_eq!(kept.len(), 256);
        assert!(kept.iter().all(|block| block[1023] == block[0]));
    }
}
