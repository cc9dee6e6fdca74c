//! The `scimd` binary.

/// mimalloc: a request allocates many small JSON values; the system allocator took about a sixth
/// of the CPU time of `GET /Users/{id}` under load (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    scimd::cli::main()
}
