//! The `fineo-batch` binary: parsing, logging and dispatch live in `cli`.

mod cli;

/// Compaction allocates and frees many small values per record (decoded fields, resolved
/// names); mimalloc serves them in a fraction of the time glibc malloc took.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run());
}
