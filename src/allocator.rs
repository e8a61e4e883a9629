//! Process-wide settings of the C allocator, made once at start by the command line.
//!
//! It owns only the allocator's thresholds, and the one call that hands free memory back; it
//! must not allocate on anyone's behalf.
//!
//! Big messages (a request of ten 600 KB tensors is 6 MB) are allocated and freed several
//! times per hop: tonic's decode and encode buffers, and each answer. glibc serves blocks
//! above its mmap threshold (128 KiB at first) with fresh `mmap`s and gives them back with
//! `munmap`, so every 6 MB buffer costs some 1,500 page faults and the zeroing of its pages.
//! Keeping such blocks in the heap, and keeping up to [`TRIM_THRESHOLD`] of free heap
//! instead of returning it at once, cut an executor's page faults tenfold and its CPU per MB
//! by about a fifth in `bench/run`'s B8 (see bench/RESULTS.md).

/// Blocks up to this size come from the heap, not from their own `mmap`: above a request of
/// ten 600 KB tensors. Not more: a vector growing past it (a big REST body's documents) is
/// grown by `mremap`, in place, while in the heap each growth copies it; at 32 MiB the
/// gateway's peak for a 2 MB REST body of 700,000 documents went from 81 to 111 MB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 8 << 20;

/// Free heap above this much goes back to the kernel: an idle process keeps at most this
/// much after a burst of big requests.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// A client's thresholds: its memory is bounded by its byte budget, so a big buffer goes back
/// to the kernel as soon as it is freed. Setting the mmap threshold also stops glibc from
/// raising it on its own after each big free, which would keep the next big buffers in the
/// heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const CLIENT_MMAP_THRESHOLD: libc::c_int = 1 << 20;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const CLIENT_TRIM_THRESHOLD: libc::c_int = 1 << 20;

/// Applies the client's settings. Call it first thing in `main`, before any thread starts.
pub(crate) fn tune_for_bounded_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as in `tune_for_big_messages`.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, CLIENT_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, CLIENT_TRIM_THRESHOLD);
    }
}

/// Arenas of a hosted Python executor: glibc gives each thread that allocates its own arena
/// (up to 8 per core). Its busy threads are the Python thread and the server's two workers:
/// with fewer arenas than that they queue on each other's arena lock (a tenth of the host's
/// samples under load, with two); more would only hold more memory. The free memory of each
/// goes back when the host is idle (`give_back_free_memory`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HOSTED_ARENAS: libc::c_int = 4;

/// A Python executor's host: memory per copy matters more than big messages, so freed memory
/// goes back at once (the client's thresholds), in few arenas. Call it before the server's
/// threads start.
pub(crate) fn tune_for_a_hosted_executor() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as in `tune_for_big_messages`.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, HOSTED_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, CLIENT_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, CLIENT_TRIM_THRESHOLD);
    }
}

/// Gives the kernel back the free memory of every arena, not only the top of each heap: a
/// hosted executor calls it when its queue runs dry, so that an idle copy holds what it
/// needs, not what a burst of queued requests once took.
pub fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Applies the settings above. Call it first thing in `main`, before any thread starts.
pub(crate) fn tune_for_big_messages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads
    // exist, and a value glibc refuses leaves its default in place (it returns 0).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
