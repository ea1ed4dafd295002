//! The process's allocator: jemalloc.
//!
//! Every connection holds two 128-aligned blocks (tokio's task cell and socket
//! registration). jemalloc serves them from size classes whose slots are already aligned,
//! and keeps no header beside a block; glibc's `memalign` left slack around each, about
//! 350 B per idle tokio connection in all (BENCHMARKS.md, "Idle memory").

/// The global allocator of the `hubbub` binary (the libraries leave the choice to whoever
/// embeds them).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
